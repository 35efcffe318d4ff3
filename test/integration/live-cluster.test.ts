import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase, type Database } from '../../src/infra/db.js';
import { appendMessage } from '../../src/services/messages.js';
import { createTestApp, recordingLogger, TEST_ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';
import { CONVERSATION_EVENTS, PRODUCT_FEEDBACK, disposeClients, eventually, liveClient, openSse, subscribe, uniquePrefix } from '../helpers/live.js';

/**
 * Two Parley nodes sharing one PostgreSQL and one Redis, each with its own
 * port: an event published on one node reaches subscribers on the other, and
 * a typing state set on one node and refreshed on the other expires with
 * exactly one `isTyping: false`.
 */

const redisUrl = inject('redisUrl');
const postgres = databaseVariants()[1]!;
const TYPING_TTL_MS = 2_000;

describe.skipIf(!postgres.available || !redisUrl)('several nodes on one Redis and one PostgreSQL', () => {
  let a: TestApp;
  let b: App;
  let bDatabase: Database;
  let bDataDir: string;
  let wsA: string;
  let wsB: string;
  let product: { id: string; key: string };
  const prefix = uniquePrefix('cluster');
  const env = { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: prefix, PARLEY_TYPING_TTL_MS: String(TYPING_TTL_MS) };

  const gql = async (app: App, query: string, variables: Record<string, unknown> = {}) => {
    const response = await app.yoga.fetch('http://parley.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${product.key}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data: any; errors?: unknown[] };
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    return body.data;
  };
  const start = async (app: App) =>
    (await gql(app, `mutation { startConversation(input: { sessionId: "nodes" }) { id } }`)).startConversation.id as string;
  const listening = (app: App, n = 1) => eventually(() => app.deps.pubsub.stats().subscribed >= n, `${n} subscription(s) listening`);
  const client = (url: string) => liveClient(url, { connectionParams: { productKey: product.key } }).client;
  const TYPING = `mutation($c: ID!, $t: Boolean!) { setTyping(input: { conversationId: $c, isTyping: $t }) }`;

  beforeAll(async () => {
    a = await createTestApp(postgres, env);
    bDataDir = mkdtempSync(join(tmpdir(), 'parley-node-b-'));
    bDatabase = await openDatabase({ url: a.database.url, poolSize: 5 });
    const config = loadConfig({
      NODE_ENV: 'test',
      PARLEY_DATA_DIR: bDataDir,
      PARLEY_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
      PARLEY_DEMO: 'false',
      PARLEY_LOG_LEVEL: 'silent',
      ...env,
    });
    b = await buildApp(config, { db: bDatabase, log: recordingLogger().log });
    wsA = `ws://127.0.0.1:${(await a.app.start(0, '127.0.0.1')).port}/graphql`;
    wsB = `ws://127.0.0.1:${(await b.start(0, '127.0.0.1')).port}/graphql`;
    product = await a.product('Two nodes');
  });
  afterEach(async () => {
    await disposeClients();
    await eventually(() => a.app.deps.pubsub.stats().streams + b.deps.pubsub.stats().streams === 0, 'no stream left open');
  });
  afterAll(async () => {
    await b?.stop();
    await bDatabase?.close();
    if (bDataDir) rmSync(bDataDir, { recursive: true, force: true });
    await a?.dispose();
  });

  it('a rotated key closes its sockets (4403) and ends its SSE streams at once, on every node (issue 13 point 2)', async () => {
    const rotated = await a.product('Rotated');
    const call = async (app: App, query: string, variables: Record<string, unknown>, headers: Record<string, string>) => {
      const response = await app.yoga.fetch('http://parley.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as { data: any; errors?: unknown[] };
      expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
      return body.data;
    };
    const old = { authorization: `Bearer ${rotated.key}` };
    const c = (await call(a.app, `mutation { startConversation(input: { sessionId: "rotation" }) { id } }`, {}, old)).startConversation.id as string;
    const onB = liveClient(wsB, { connectionParams: { productKey: rotated.key } });
    const onA = liveClient(wsA, { connectionParams: { productKey: rotated.key } });
    const subscriptions = [subscribe(onB.client, CONVERSATION_EVENTS, { id: c }), subscribe(onA.client, CONVERSATION_EVENTS, { id: c })];
    const sse = await openSse(Number(new URL(wsA).port), old, { query: CONVERSATION_EVENTS, variables: { id: c } });
    await listening(b);
    await listening(a.app);
    // A socket of another product on B stays open.
    const bystander = liveClient(wsB, { connectionParams: { productKey: product.key } });
    const other = subscribe(bystander.client, CONVERSATION_EVENTS, { id: await start(a.app) });

    const fresh = (
      await call(
        a.app,
        `mutation($id: ID!) { rotateProductKey(id: $id) { key } }`,
        { id: gid('Product', rotated.id) },
        { 'x-admin-token': TEST_ADMIN_TOKEN },
      )
    ).rotateProductKey.key as string;
    await eventually(() => onA.closed.length > 0 && onB.closed.length > 0, 'both sockets closed');
    expect(onB.closed[0]).toMatchObject({ code: 4403 });
    expect(onA.closed[0]).toMatchObject({ code: 4403 });
    const last = await sse.next();
    expect(last.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');

    await call(
      a.app,
      `mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "after rotation" }) { message { id } } }`,
      { c },
      { authorization: `Bearer ${fresh}` },
    );
    await new Promise((resolve) => setTimeout(resolve, 200));
    for (const s of subscriptions) expect(s.results).toEqual([]);
    expect(bystander.closed).toEqual([]);
    expect(other.errors).toEqual([]);
    sse.close();
  });

  it('a rotated publishable key closes its sockets (4403) on every node; the secret key’s stay open (issue 16)', async () => {
    const p = await a.product('Rotated publishable');
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${p.publishableKey}` };
    const response = await a.app.yoga.fetch('http://parley.test/graphql', {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: `mutation { startConversation(input: { sessionId: "widget" }) { id conversationToken } }` }),
    });
    const started = ((await response.json()) as { data: any }).data.startConversation;
    const params = { productKey: p.publishableKey, conversationToken: started.conversationToken };
    const onA = liveClient(wsA, { connectionParams: params });
    const onB = liveClient(wsB, { connectionParams: params });
    const secretOnB = liveClient(wsB, { connectionParams: { productKey: p.key } });
    const before = [a.app, b].map((app) => app.deps.pubsub.stats().subscribed);
    subscribe(onA.client, CONVERSATION_EVENTS, { id: started.id });
    subscribe(onB.client, CONVERSATION_EVENTS, { id: started.id });
    const kept = subscribe(secretOnB.client, CONVERSATION_EVENTS, { id: started.id });
    await listening(a.app, before[0]! + 1);
    await listening(b, before[1]! + 2);

    const rotate = await a.app.yoga.fetch('http://parley.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-admin-token': TEST_ADMIN_TOKEN },
      body: JSON.stringify({
        query: `mutation($id: ID!) { rotateProductKey(id: $id, kind: PUBLISHABLE) { key } }`,
        variables: { id: gid('Product', p.id) },
      }),
    });
    expect(((await rotate.json()) as { errors?: unknown }).errors).toBeUndefined();
    await eventually(() => onA.closed.length > 0 && onB.closed.length > 0, 'both publishable sockets closed');
    expect([onA.closed[0]!.code, onB.closed[0]!.code]).toEqual([4403, 4403]);
    expect(secretOnB.closed).toEqual([]);
    expect(kept.errors).toEqual([]);
  });

  it('both nodes use Redis for events', () => {
    expect([a.app.deps.pubsub.kind, b.deps.pubsub.kind]).toEqual(['redis', 'redis']);
  });

  it('sendMessage on node A reaches a graphql-ws subscriber on node B', async () => {
    const c = await start(a.app);
    const s = subscribe(client(wsB), CONVERSATION_EVENTS, { id: c });
    await listening(b);
    const sent = await gql(a.app, `mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "from A" }) { message { id } } }`, { c });
    const [event] = await s.next(1);
    expect(event.conversationEvents).toEqual({
      __typename: 'MessageAdded',
      message: { id: sent.sendMessage.message.id, role: 'USER', content: 'from A' },
    });
  });

  it('setTyping on node B reaches a subscriber on node A', async () => {
    const c = await start(b);
    const s = subscribe(client(wsA), CONVERSATION_EVENTS, { id: c });
    await listening(a.app);
    expect((await gql(b, TYPING, { c, t: true })).setTyping).toBe(true);
    const [event] = await s.next(1);
    expect(event.conversationEvents).toEqual({ __typename: 'TypingChanged', conversationId: c, role: 'USER', isTyping: true });
  });

  it('feedback on node A reaches productFeedback on node B', async () => {
    const c = await start(a.app);
    const answer = await appendMessage(a.store, product.id, Buffer.from(c, 'base64').toString().split(':')[1]!, {
      role: 'ASSISTANT',
      content: 'Yes',
    });
    const s = subscribe(client(wsB), PRODUCT_FEEDBACK);
    await listening(b);
    const rated = await gql(a.app, `mutation($m: ID!) { submitFeedback(input: { messageId: $m, rating: UP }) { id } }`, {
      m: gid('Message', answer.id),
    });
    const [event] = await s.next(1);
    expect(event.productFeedback).toEqual({ id: rated.submitFeedback.id, rating: 'UP', comment: null, message: { id: gid('Message', answer.id) } });
  });

  it('typing set on A and refreshed on B expires once: exactly one false, on both nodes', async () => {
    const c = await start(a.app);
    const onA = subscribe(client(wsA), CONVERSATION_EVENTS, { id: c });
    const onB = subscribe(client(wsB), CONVERSATION_EVENTS, { id: c });
    await listening(a.app);
    await listening(b);
    await gql(a.app, TYPING, { c, t: true });
    await gql(b, TYPING, { c, t: true }); // a refresh: both nodes now hold an expiry timer
    await onA.next(2, TYPING_TTL_MS + 10_000);
    // Both nodes' timers have run (and published whatever they would), then a marker closes the sequence.
    await eventually(() => a.app.deps.typing.stats().timers + b.deps.typing.stats().timers === 0, 'both expiry timers done');
    await gql(a.app, `mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "marker" }) { message { id } } }`, { c });
    await onA.next(3);
    await onB.next(3);
    const expected = [
      { __typename: 'TypingChanged', conversationId: c, role: 'USER', isTyping: true },
      { __typename: 'TypingChanged', conversationId: c, role: 'USER', isTyping: false },
      expect.objectContaining({ __typename: 'MessageAdded' }),
    ];
    // Up to the marker: its reply's ASSISTANT typing and MessageAdded follow.
    expect(onA.results.map((r) => r.conversationEvents).slice(0, 3)).toEqual(expected);
    expect(onB.results.map((r) => r.conversationEvents).slice(0, 3)).toEqual(expected);
  });
});
