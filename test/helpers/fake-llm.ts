import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/**
 * A fake OpenAI-compatible chat-completions server on 127.0.0.1: real HTTP,
 * real SSE streaming, and failures on demand (HTTP statuses with Retry-After,
 * silence, a stream cut half-way, a reset connection). Every request is
 * recorded. Tests script the next responses; after the script, `otherwise`.
 */

export type Behaviour =
  /** Streams the answer in these pieces (default: `defaultAnswer`), `delayMs` apart. */
  | { kind: 'answer'; chunks?: string[]; delayMs?: number }
  /** One JSON body, as a server that ignores `stream: true`. */
  | { kind: 'json'; content: string }
  | { kind: 'status'; status: number; retryAfter?: string; body?: string }
  /** Accepts the request and sends nothing (until the client gives up). */
  | { kind: 'stall' }
  /** Streams these pieces, then drops the connection without [DONE]. */
  | { kind: 'cut'; chunks: string[] }
  /** Drops the connection before answering. */
  | { kind: 'reset' };

export interface RecordedRequest {
  model: string;
  messages: { role: string; content: string }[];
  stream: boolean;
  authorization: string | undefined;
  path: string;
}

export interface FakeLlm {
  /** Base URL for PARLEY_LLM_BASE_URL (…/v1). */
  url: string;
  requests: RecordedRequest[];
  /** Each streamed piece as it was written: its request's index and when (performance.timeOrigin + now(), ms since the epoch). */
  sent: { request: number; content: string; at: number }[];
  /** Behaviours of the next requests, in order. */
  script(...behaviours: Behaviour[]): void;
  /** What requests get once the script is used up. @default { kind: 'answer' } */
  otherwise: Behaviour;
  /** Resolves when `n` requests have arrived in total. */
  waitForRequests(n: number): Promise<void>;
  dispose(): Promise<void>;
}

/** The default answer: names the model and the first passage of the prompt, in three pieces. */
export function defaultAnswer(request: RecordedRequest): string[] {
  const system = request.messages.find((m) => m.role === 'system')?.content ?? '';
  const first = /\[1\] (.+)/.exec(system)?.[1] ?? 'nothing';
  return [`[${request.model}] `, 'From our help page ', `"${first}".`];
}

export async function startFakeLlm(): Promise<FakeLlm> {
  const queue: Behaviour[] = [];
  const sockets = new Set<Socket>();
  const waiters: { n: number; resolve: () => void }[] = [];
  const fake: FakeLlm = {
    url: '',
    requests: [],
    sent: [],
    otherwise: { kind: 'answer' },
    script: (...behaviours) => void queue.push(...behaviours),
    waitForRequests: (n) =>
      new Promise((resolve) => {
        if (fake.requests.length >= n) resolve();
        else waiters.push({ n, resolve });
      }),
    dispose: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };

  const server = createServer((req, res) => void handle(req, res));
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = '';
    for await (const chunk of req) body += chunk;
    const parsed = JSON.parse(body || '{}') as { model?: string; messages?: RecordedRequest['messages']; stream?: boolean };
    const request: RecordedRequest = {
      model: parsed.model ?? '',
      messages: parsed.messages ?? [],
      stream: parsed.stream === true,
      authorization: req.headers.authorization,
      path: req.url ?? '',
    };
    fake.requests.push(request);
    for (const w of waiters.filter((w) => fake.requests.length >= w.n)) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve();
    }
    const behaviour = queue.shift() ?? fake.otherwise;
    switch (behaviour.kind) {
      case 'status': {
        const headers: Record<string, string> = { 'content-type': 'application/json' };
        if (behaviour.retryAfter !== undefined) headers['retry-after'] = behaviour.retryAfter;
        res.writeHead(behaviour.status, headers);
        res.end(behaviour.body ?? JSON.stringify({ error: { message: `injected ${behaviour.status}` } }));
        return;
      }
      case 'stall':
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.flushHeaders();
        return; // nothing more until the client aborts
      case 'reset':
        req.socket.destroy();
        return;
      case 'json':
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ index: 0, message: { role: 'assistant', content: behaviour.content }, finish_reason: 'stop' }] }));
        return;
      case 'cut':
      case 'answer': {
        const chunks = behaviour.chunks ?? defaultAnswer(request);
        res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
        res.write(': keep-alive\n\n');
        for (const content of chunks) {
          if (behaviour.kind === 'answer' && behaviour.delayMs) await new Promise((r) => setTimeout(r, behaviour.delayMs));
          res.write(
            `data: ${JSON.stringify({ object: 'chat.completion.chunk', model: request.model, choices: [{ index: 0, delta: { content }, finish_reason: null }] })}\n\n`,
          );
          fake.sent.push({ request: fake.requests.indexOf(request), content, at: performance.timeOrigin + performance.now() });
        }
        if (behaviour.kind === 'cut') {
          // Let the pieces reach the client before the connection goes.
          await new Promise((r) => setTimeout(r, 20));
          req.socket.destroy();
          return;
        }
        res.write(
          `data: ${JSON.stringify({ object: 'chat.completion.chunk', model: request.model, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })}\n\n`,
        );
        res.end('data: [DONE]\n\n');
        return;
      }
    }
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  return fake;
}
