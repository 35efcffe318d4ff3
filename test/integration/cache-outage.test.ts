import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createTestApp, recordingLogger, TEST_ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { freePort, findRedisServer, startRedis, type Throwaway } from '../helpers/servers.js';
import { within } from '../helpers/time.js';

// Redis is never an outage: requests keep succeeding from L1 + the database
// while it is down (or was never up), and L2 hits come back with it.

const READ = `query($q: String!) { viewer { stats { conversationCount } } searchKnowledge(query: $q) { entry { title } } }`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const l2Hits = (app: App) =>
  app.deps.cache
    .snapshot()
    .filter((s) => s.layer === 'L2')
    .reduce((sum, s) => sum + s.hits, 0);

/** A second node on the same database and Redis: what node A loads, B finds in L2. */
async function secondNode(t: TestApp, env: Record<string, string>): Promise<App> {
  const config = loadConfig({
    NODE_ENV: 'test',
    PARLEY_DATA_DIR: t.app.deps.config.dataDir,
    PARLEY_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    PARLEY_DEMO: 'false',
    ...env,
  });
  return buildApp(config, { db: t.app.deps.db, log: recordingLogger().log });
}

async function read(app: App, key: string, q: string) {
  const response = await app.yoga.fetch('http://parley.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: READ, variables: { q } }),
  });
  return (await response.json()) as { data?: any; errors?: unknown[] };
}

describe.skipIf(!findRedisServer())('cache through a Redis outage (API level)', () => {
  let redis: Throwaway;
  let t: TestApp;
  let b: App;
  let key: string;
  beforeAll(async () => {
    redis = await startRedis();
    const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
    const env = { REDIS_URL: redis.url, PARLEY_REDIS_PREFIX: `out${randomBytes(3).toString('hex')}:` };
    t = await createTestApp(pglite, env);
    b = await secondNode(t, env);
    const p = await t.product('Outage shop');
    key = p.key;
    await t.prisma.knowledgeEntry.create({ data: { productId: p.id, title: 'Opening hours', content: 'We open at nine.' } });
  });
  afterAll(async () => {
    await b?.stop();
    await t?.dispose();
    await redis?.dispose();
  });

  it('serves every request while redis-server is stopped and restarted, then returns to L2 hits', async () => {
    let sent = 0;
    let failed = 0;
    let running = true;
    const loop = (async () => {
      while (running && sent < 50_000) {
        sent += 1;
        const q = ['hours', 'open', 'nine', 'when'][sent % 4]!;
        const r = await within(t.gql(READ, { key, variables: { q } }), 2_000, 'request during the outage');
        if (r.errors || r.data?.viewer?.stats?.conversationCount !== 0) failed += 1;
        // With Redis down every read is an L1 hit with no I/O at all: without a macrotask turn
        // this in-process loop starves the test's timers (the 1 s outage lasted 50,000 requests).
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    await sleep(300);
    // Before the outage, node B finds in L2 what node A loaded.
    const hitsBefore = l2Hits(b);
    await read(t.app, key, 'before the outage');
    await read(b, key, 'before the outage');
    expect(l2Hits(b)).toBeGreaterThan(hitsBefore);
    const beforeStop = sent;
    await redis.stop!();
    await sleep(1_000);
    const duringOutage = sent;
    await redis.start!();
    // L2 is used again once the circuit's probe finds Redis back (bounded wait):
    // what A loads, B reads from L2.
    await within(
      (async () => {
        const base = l2Hits(b);
        for (let i = 0; ; i++) {
          expect((await read(t.app, key, `probe ${i}`)).errors).toBeUndefined();
          expect((await read(b, key, `probe ${i}`)).errors).toBeUndefined();
          if (l2Hits(b) > base) return;
          await sleep(100);
        }
      })(),
      15_000,
      'L2 hits after Redis came back',
    );
    running = false;
    await loop;
    expect(failed).toBe(0);
    expect(duringOutage - beforeStop).toBeGreaterThan(10); // requests really ran while Redis was down
    console.log(`[cache outage] ${sent} requests, ${failed} failed, ${duringOutage - beforeStop} while redis-server was stopped`);
  }, 90_000);
});

describe.skipIf(!inject('redisUrl'))('cache with Redis down at start', () => {
  it('starts and answers when REDIS_URL points at nothing', async () => {
    const port = await freePort();
    const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
    const t = await within(createTestApp(pglite, { REDIS_URL: `redis://127.0.0.1:${port}` }), 20_000, 'start with Redis down');
    try {
      const p = await t.product('No redis');
      for (let i = 0; i < 5; i++) {
        const r = await within(t.gql(`{ viewer { name stats { conversationCount } } }`, { key: p.key }), 2_000, 'read');
        expect(r.errors).toBeUndefined();
        expect(r.data.viewer.name).toBe('No redis');
      }
      const w = await t.gql(`mutation { startConversation(input: { sessionId: "s" }) { id } }`, { key: p.key });
      expect(w.errors).toBeUndefined();
      const after = await t.gql(`{ viewer { stats { conversationCount } } }`, { key: p.key });
      expect(after.data.viewer.stats.conversationCount).toBe(1);
    } finally {
      await t.dispose();
    }
  });
});
