import { request } from 'node:http';
import { createConnection } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Drain } from '../../src/http/drain.js';
import { createTestApp, rawPost, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { gatedDatabase, type GatedDatabase } from '../helpers/gate.js';
import { disposeClients, eventually, liveClient, subscribe, CONVERSATION_EVENTS } from '../helpers/live.js';
import { within } from '../helpers/time.js';

/**
 * Graceful shutdown: stop() stops accepting, closes graphql-ws sockets with
 * 1001, completes SSE streams, lets a mutation in flight finish — every row it
 * writes — within PARLEY_SHUTDOWN_MS, then closes pools and Redis. The
 * mutation is caught in flight by holding its database calls (no timers).
 */

const SEND = `mutation Send($c: ID!) { sendMessage(input: { conversationId: $c, content: "Where is my parcel?" }) { message { id } reply { id role } } }`;

function post(port: number, key: string, body: object): Promise<{ status: number; body: any }> {
  return rawPost(port, JSON.stringify(body), { authorization: `Bearer ${key}` });
}

/** An SSE subscription on its own socket; `ended` says how the stream ended: `complete` (the server finished it) or `cut`. */
function sse(port: number, key: string, body: object): Promise<{ ended: Promise<'complete' | 'cut'>; text(): string }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/graphql',
        method: 'POST',
        agent: false,
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${key}` },
      },
      (res) => {
        const ended = new Promise<'complete' | 'cut'>((done) => {
          res.on('end', () => done('complete'));
          res.on('error', () => done('cut'));
          res.on('aborted', () => done('cut'));
        });
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        resolve({ ended, text: () => text });
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createConnection({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

describeEachDatabase('graceful shutdown', (variant) => {
  let t: TestApp | undefined;
  afterEach(async () => {
    await disposeClients();
    await t?.dispose();
    t = undefined;
  });

  async function started(env: Record<string, string>) {
    let gated!: GatedDatabase;
    t = await createTestApp(variant, env, { wrapDatabase: (db) => (gated = gatedDatabase(db)).db });
    const { key } = await t.product('Shutdown');
    const conversationId = (await t.gql('mutation { startConversation(input: { sessionId: "s" }) { id } }', { key })).data.startConversation
      .id as string;
    const { port } = await t.app.start(0, '127.0.0.1');
    // The key is looked up (and cached) before anything is held.
    expect((await post(port, key, { query: '{ viewer { name } }' })).status).toBe(200);
    return { app: t, gated, key, conversationId, port };
  }

  it('lets a mutation in flight finish and write everything, while new connections are refused, sockets get 1001 and SSE streams complete', async () => {
    const { app, gated, key, conversationId, port } = await started({ PARLEY_SHUTDOWN_MS: '20000' });
    const { client, closed } = liveClient(`ws://127.0.0.1:${port}/graphql`, { connectionParams: { productKey: key }, lazy: false });
    const live = subscribe(client, CONVERSATION_EVENTS, { id: conversationId });
    const stream = await sse(port, key, { query: CONVERSATION_EVENTS, variables: { id: conversationId } });
    await eventually(() => app.app.deps.pubsub.stats().subscribed === 2, 'both subscriptions listening');

    const hold = gated.hold();
    const mutation = post(port, key, { query: SEND, variables: { c: conversationId } });
    await within(hold.entered, 10_000, 'the mutation reached the database');
    let stopped = false;
    const stopping = app.app.stop().then(() => (stopped = true));

    await eventually(async () => !(await accepts(port)), 'new connections refused');
    expect(await within(stream.ended, 10_000, 'SSE stream ended')).toBe('complete');
    await within(live.ended, 10_000, 'graphql-ws subscription ended');
    expect(closed[0]?.code).toBe(1001);
    expect(stopped).toBe(false);

    hold.release();
    const answer = await within(mutation, 20_000, 'the mutation answered');
    expect(answer.status).toBe(200);
    expect(answer.body.errors).toBeUndefined();
    const { message, reply } = answer.body.data.sendMessage;
    expect(message.id).toBeTruthy();
    await within(stopping, 20_000, 'stop()');

    // Nothing half-written: the question, its reply, and the counters that go with them.
    const conversation = await app.prisma.conversation.findUniqueOrThrow({
      where: { id: Buffer.from(conversationId, 'base64').toString().split(':')[1]! },
    });
    const rows = await app.prisma.message.findMany({ where: { conversationId: conversation.id }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }] });
    expect(conversation.messageCount).toBe(rows.length);
    expect(rows.map((r) => r.role)).toEqual(reply ? ['USER', 'ASSISTANT'] : ['USER']);
    expect(conversation.lastMessageId).toBe(rows.at(-1)!.id);
  });

  it('cuts what is still running once PARLEY_SHUTDOWN_MS has passed', async () => {
    const { app, gated, key, conversationId, port } = await started({ PARLEY_SHUTDOWN_MS: '300' });
    const hold = gated.hold();
    const mutation = post(port, key, { query: SEND, variables: { c: conversationId } }).then(
      () => 'answered',
      () => 'cut',
    );
    await within(hold.entered, 10_000, 'the mutation reached the database');
    try {
      await within(app.app.stop(), 10_000, 'stop() with a mutation held past the grace');
      expect(await within(mutation, 5_000, 'client side of the cut')).toBe('cut');
      expect(app.logged.some((l) => l.level === 'warn' && l.msg.startsWith('shutdown: operations still running'))).toBe(true);
    } finally {
      hold.release();
    }
  });
});

describe('Drain', () => {
  it('resolves idle once every tracked operation settled, or false at the bound', async () => {
    const drain = new Drain();
    expect(await drain.idle(10)).toBe(true);
    let finish!: () => void;
    const running = drain.operation(() => new Promise<void>((resolve) => (finish = resolve)));
    drain.begin();
    expect(await drain.idle(20)).toBe(false);
    const idle = drain.idle(10_000);
    finish();
    await running;
    expect(await idle).toBe(true);
    expect(drain.inFlight).toBe(0);
  });
});
