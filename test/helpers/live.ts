import { randomBytes } from 'node:crypto';
import { request, type IncomingHttpHeaders } from 'node:http';
import { createClient, type Client, type ClientOptions } from 'graphql-ws';
import WebSocket from 'ws';
import { within } from './time.js';

/**
 * graphql-ws clients and subscriptions for live-event tests. Every client is
 * kept in a list and disposed by `disposeClients()` (call it in afterEach), and
 * every wait is bounded.
 */

export interface Closed {
  code: number;
  reason: string;
}

export interface LiveClient {
  client: Client;
  closed: Closed[];
}

const clients: Client[] = [];

/** A graphql-ws client over `ws` that never retries and records how it closed. */
export function liveClient(url: string, options: Partial<ClientOptions> = {}): LiveClient {
  const closed: Closed[] = [];
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    onNonLazyError: () => {},
    ...options,
    on: { closed: (event) => void closed.push({ code: (event as Closed).code, reason: (event as Closed).reason }) },
  });
  clients.push(client);
  return { client, closed };
}

export async function disposeClients(): Promise<void> {
  await Promise.all(clients.splice(0).map((c) => c.dispose()));
}

export interface Subscription<T = any> {
  /** `data` of every `next` so far. */
  results: T[];
  /** GraphQL errors of any `next`, and the error that ended the subscription. */
  errors: any[];
  ended: Promise<void>;
  /** Resolves once `n` results have arrived (bounded). */
  next(n: number, ms?: number): Promise<T[]>;
  /** Resolves once a result satisfies `test` (bounded). */
  until(test: (result: T) => boolean, what: string, ms?: number): Promise<T>;
  unsubscribe(): void;
}

export function subscribe<T = any>(client: Client, query: string, variables: Record<string, unknown> = {}): Subscription<T> {
  const results: T[] = [];
  const errors: any[] = [];
  const waiters = new Set<() => void>();
  const changed = () => {
    for (const w of waiters) w();
  };
  let end!: () => void;
  const ended = new Promise<void>((resolve) => (end = resolve));
  const unsubscribe = client.subscribe<T>(
    { query, variables },
    {
      next: (result) => {
        if (result.errors) errors.push(...result.errors);
        if (result.data) results.push(result.data as T);
        changed();
      },
      error: (error) => {
        errors.push(error);
        end();
        changed();
      },
      complete: () => {
        end();
        changed();
      },
    },
  );
  const waitFor = <R>(check: () => R | undefined, ms: number, what: string) =>
    within(
      new Promise<R>((resolve) => {
        const attempt = () => {
          const value = check();
          if (value !== undefined) {
            waiters.delete(attempt);
            resolve(value);
          }
        };
        waiters.add(attempt);
        attempt();
      }),
      ms,
      what,
    );
  return {
    results,
    errors,
    ended,
    next: (n, ms = 10_000) =>
      waitFor(
        () => (results.length >= n ? results.slice(0, n) : undefined),
        ms,
        `${n} results (have ${results.length}: ${JSON.stringify(results).slice(0, 500)}; errors ${JSON.stringify(errors).slice(0, 300)})`,
      ),
    until: (test, what, ms = 10_000) => waitFor(() => results.find(test), ms, what),
    unsubscribe,
  };
}

/** Polls `check` until it returns something other than undefined/false (bounded). */
export async function eventually<T>(check: () => T | undefined | false | Promise<T | undefined | false>, what: string, ms = 10_000): Promise<T> {
  return within(
    (async () => {
      for (;;) {
        const value = await check();
        if (value !== undefined && value !== false) return value;
        await new Promise((r) => setTimeout(r, 20));
      }
    })(),
    ms,
    what,
  );
}

/** A Redis key/channel prefix of its own, so parallel test files never see each other's events. */
export function uniquePrefix(name: string): string {
  return `t-${name}-${randomBytes(4).toString('hex')}:`;
}

export const CONVERSATION_EVENTS = /* GraphQL */ `
  subscription Events($id: ID!, $after: String) {
    conversationEvents(conversationId: $id, after: $after) {
      __typename
      ... on MessageAdded { message { id role content } }
      ... on ReplyDelta { messageId delta done }
      ... on TypingChanged { conversationId role isTyping }
      ... on FeedbackAdded { feedback { id rating comment } }
    }
  }
`;

export const PRODUCT_FEEDBACK = /* GraphQL */ `subscription { productFeedback { id rating comment message { id } } }`;

export interface SseStream {
  status: number;
  headers: IncomingHttpHeaders;
  /** The parsed `data:` of the next SSE message that has one (bounded). */
  next(ms?: number): Promise<any>;
  /** Drops the connection, as a browser tab that goes away. */
  close(): void;
}

/**
 * A GraphQL request over SSE on its own connection (no keep-alive pool), so
 * closing it really closes the socket and nothing lingers for the server's stop().
 */
export function openSse(port: number, headers: Record<string, string>, body: object): Promise<SseStream> {
  return within(
    new Promise<SseStream>((resolve, reject) => {
      const req = request(
        {
          host: '127.0.0.1',
          port,
          path: '/graphql',
          method: 'POST',
          agent: false,
          headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
        },
        (res) => {
          const messages: any[] = [];
          const waiting: ((data: any) => void)[] = [];
          let text = '';
          res.setEncoding('utf8').on('data', (chunk: string) => {
            text += chunk;
            const parts = text.split('\n\n');
            text = parts.pop()!;
            for (const part of parts) {
              const data = part
                .split('\n')
                .filter((line) => line.startsWith('data:'))
                .map((line) => line.slice(5).trim())
                .join('\n');
              if (!data) continue;
              const parsed = JSON.parse(data);
              const waiter = waiting.shift();
              if (waiter) waiter(parsed);
              else messages.push(parsed);
            }
          });
          res.on('error', () => {});
          resolve({
            status: res.statusCode ?? 0,
            headers: res.headers,
            next: (ms = 10_000) =>
              within(
                new Promise((resolveData) => {
                  if (messages.length) resolveData(messages.shift());
                  else waiting.push(resolveData);
                }),
                ms,
                'SSE message',
              ),
            close: () => req.destroy(),
          });
        },
      );
      req.on('error', reject);
      req.end(JSON.stringify(body));
    }),
    10_000,
    'SSE response',
  );
}

/**
 * After a Redis failover: a message sent now (retried until it arrives) reaches the subscription
 * opened after it, and every message sent during it reaches the subscription that lived through it
 * (live or replayed). `send` stores a message and returns its id.
 */
export async function expectEventsAfterFailover(options: {
  send: (content: string) => Promise<string>;
  after: Subscription;
  before: Subscription;
  sentDuring: readonly string[];
  what: string;
  timeoutMs: number;
}): Promise<void> {
  const { send, after, before, sentDuring, what, timeoutMs } = options;
  const last = await eventually(
    async () => {
      const id = await send('after the failover');
      try {
        return await after.until((e) => e.conversationEvents.message?.id === id, 'the message on B', 2_000);
      } catch {
        return undefined;
      }
    },
    what,
    timeoutMs,
  );
  if (last.conversationEvents.message.content !== 'after the failover') throw new Error(`${what}: another message arrived`);
  for (const id of sentDuring) await before.until((e) => e.conversationEvents.message?.id === id, `message ${id} on the old subscription`, timeoutMs);
}
