import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase, type Database } from '../../src/infra/db.js';
import { findRedisServer, startRedisSentinel, type SentinelGroup } from '../../scripts/servers.js';
import { createTestApp, recordingLogger, TEST_ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { CONVERSATION_EVENTS, disposeClients, eventually, liveClient, subscribe, uniquePrefix } from '../helpers/live.js';

/**
 * Two Parley nodes on one PostgreSQL and a Redis watched by Sentinel
 * (REDIS_URL=redis+sentinel://…): events cross nodes through the master the
 * sentinels name, and when that master dies requests keep succeeding while the
 * sentinels promote the replica, after which the nodes use the new master.
 */

const postgres = databaseVariants()[1]!;
const haveRedis = findRedisServer() !== null;
if (process.env.CI === 'true' && !haveRedis) throw new Error('CI=true but redis-server is not installed: the Sentinel tests cannot run');

describe.skipIf(!postgres.available || !haveRedis)('Redis through Sentinel, and a failover', () => {
  let group: SentinelGroup;
  let a: TestApp;
  let b: App;
  let bDatabase: Database;
  let bDataDir: string;
  let wsB: string;
  let product: { id: string; key: string };
  const bLog = recordingLogger();

  const gql = async (app: App, query: string, variables: Record<string, unknown> = {}) => {
    const response = await app.yoga.fetch('http://parley.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${product.key}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data: any; errors?: unknown[] };
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    expect(response.status).toBe(200);
    return body.data;
  };
  const start = async (app: App) => (await gql(app, `mutation { startConversation(input: { sessionId: "sentinel" }) { id } }`)).startConversation.id as string;
  const send = async (app: App, c: string, content: string) =>
    (await gql(app, `mutation($c: ID!, $t: String!) { sendMessage(input: { conversationId: $c, content: $t }) { message { id } } }`, { c, t: content }))
      .sendMessage.message.id as string;
  const client = () => liveClient(wsB, { connectionParams: { productKey: product.key } }).client;

  beforeAll(async () => {
    group = await startRedisSentinel();
    const env = { REDIS_URL: group.url, PARLEY_REDIS_PREFIX: uniquePrefix('sentinel') };
    a = await createTestApp(postgres, env);
    bDataDir = mkdtempSync(join(tmpdir(), 'parley-sentinel-b-'));
    bDatabase = await openDatabase({ url: a.database.url, poolSize: 5 });
    const config = loadConfig({ NODE_ENV: 'test', PARLEY_DATA_DIR: bDataDir, PARLEY_ADMIN_TOKEN: TEST_ADMIN_TOKEN, PARLEY_DEMO: 'false', PARLEY_LOG_LEVEL: 'silent', ...env });
    b = await buildApp(config, { db: bDatabase, log: bLog.log });
    wsB = `ws://127.0.0.1:${(await b.start(0, '127.0.0.1')).port}/graphql`;
    product = await a.product('Sentinel');
  }, 60_000);
  afterAll(async () => {
    await disposeClients();
    await b?.stop();
    await bDatabase?.close();
    if (bDataDir) rmSync(bDataDir, { recursive: true, force: true });
    await a?.dispose();
    await group?.dispose();
  });

  it('reaches the master the sentinels name: an event sent on node A reaches a subscriber on node B', async () => {
    expect([a.app.deps.pubsub.kind, b.deps.pubsub.kind]).toEqual(['redis', 'redis']);
    const c = await start(a.app);
    const streams = b.deps.pubsub.stats().subscribed;
    const s = subscribe(client(), CONVERSATION_EVENTS, { id: c });
    await eventually(() => b.deps.pubsub.stats().subscribed > streams, 'subscribed on B');
    const id = await send(a.app, c, 'before the failover');
    await s.until((e) => e.conversationEvents.message?.id === id, 'the message on B');
  });

  it('a killed master: every request still succeeds, the replica is promoted, and events cross nodes through the new master', async () => {
    const c = await start(a.app);
    const sent: string[] = [];
    const streams = b.deps.pubsub.stats().subscribed;
    const before = subscribe(client(), CONVERSATION_EVENTS, { id: c });
    await eventually(() => b.deps.pubsub.stats().subscribed > streams, 'subscribed on B');

    const old = await group.killMaster();
    // While the sentinels notice (500 ms) and promote the replica, writes and reads go on: Redis is never in the request path's way.
    const promoted = eventually(async () => (await group.master()) !== old, 'the sentinels promote the replica', 20_000);
    let failedOver = false;
    void promoted.then(() => (failedOver = true));
    while (!failedOver) {
      sent.push(await send(a.app, c, `during the failover ${sent.length}`));
      await gql(b, `{ conversations(first: 5) { edges { node { id messageCount } } } }`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await promoted;
    expect(sent.length).toBeGreaterThan(0);

    // A subscription opened after the failover gets events through the new master.
    const after = subscribe(client(), CONVERSATION_EVENTS, { id: c });
    await eventually(() => b.deps.pubsub.stats().subscribed > streams + 1, 'subscribed on B through the new master', 20_000);
    const last = await eventually(
      async () => {
        const id = await send(a.app, c, 'after the failover');
        try {
          return await after.until((e) => e.conversationEvents.message?.id === id, 'the message on B', 2_000);
        } catch {
          return undefined;
        }
      },
      'an event from A reaches B through the new master',
      30_000,
    );
    expect(last.conversationEvents.message.content).toBe('after the failover');
    // The subscription that lived through the failover lost nothing: what was sent meanwhile reached it too (live or replayed).
    for (const id of sent) await before.until((e) => e.conversationEvents.message?.id === id, `message ${id} on the old subscription`, 20_000);
  }, 90_000);
});
