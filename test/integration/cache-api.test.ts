import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { seedConversations } from '../helpers/fixtures.js';

// The cache as the API uses it: cached reads cost no SQL on a hit, identical
// concurrent requests run once, products never see each other's cached values,
// start-up warms the most active products, and admins can read the counters.

const STATS = `{ viewer { stats { conversationCount messageCount } } }`;
const SEARCH = `query($q: String!) { searchKnowledge(query: $q) { entry { title content } } }`;

describeEachDatabase('cache through the API', (variant) => {
  let t: TestApp;
  let a: { id: string; key: string };
  let b: { id: string; key: string };

  beforeAll(async () => {
    t = await createTestApp(variant, { PARLEY_WARM_PRODUCTS: '0' });
    a = await t.product('A');
    b = await t.product('B');
    await seedConversations(t.prisma, a.id, { conversations: 3, messages: 2, feedbackEvery: 0 });
    for (const [p, secret] of [
      [a, 'alpha secret'],
      [b, 'bravo secret'],
    ] as const) {
      await t.prisma.knowledgeEntry.create({ data: { productId: p.id, title: 'Returns', content: secret } });
    }
  });
  afterAll(() => t?.dispose());

  it('serves a repeated read without SQL (key lookup and stats cached)', async () => {
    const first = await t.gql(STATS, { key: a.key });
    expect(first.data.viewer.stats.conversationCount).toBe(3);
    expect(first.sql.length).toBeGreaterThan(0);
    const again = await t.gql(STATS, { key: a.key });
    expect(again.data).toEqual(first.data);
    expect(again.sql).toEqual([]);
    // Another document executes (no whole response cached for it) and still reads the stats from their cache.
    const other = await t.gql(`query Again ${STATS}`, { key: a.key });
    expect(other.data).toEqual(first.data);
    expect(other.sql).toEqual([]);
  });

  it('never hands product B a value cached for product A, even for identical arguments', async () => {
    const fromA = await t.gql(SEARCH, { key: a.key, variables: { q: 'returns' } });
    const fromB = await t.gql(SEARCH, { key: b.key, variables: { q: 'returns' } });
    expect(fromA.data.searchKnowledge.map((h: any) => h.entry.content)).toEqual(['alpha secret']);
    expect(fromB.data.searchKnowledge.map((h: any) => h.entry.content)).toEqual(['bravo secret']);
    const statsB = await t.gql(STATS, { key: b.key });
    expect(statsB.data.viewer.stats.conversationCount).toBe(0);
  });

  it('runs identical concurrent queries once (request dedup), per principal', async () => {
    const before = await t.gql(`{ cacheStats { cache dedupJoins } }`, { admin: true });
    const joinsBefore = before.data.cacheStats.find((s: any) => s.cache === 'operations')?.dedupJoins ?? 0;
    const query = `query Same($n: Int!) { conversations(first: $n) { edges { node { id messages(first: 2) { edges { node { content } } } } } } }`;
    const results = await Promise.all(Array.from({ length: 10 }, () => t.gql(query, { key: a.key, variables: { n: 7 } })));
    for (const r of results) expect(r.data).toEqual(results[0]!.data);
    const other = await t.gql(query, { key: b.key, variables: { n: 7 } });
    expect(other.data.conversations.edges).toEqual([]);
    const after = await t.gql(`{ cacheStats { cache dedupJoins } }`, { admin: true });
    const joins = after.data.cacheStats.find((s: any) => s.cache === 'operations')?.dedupJoins ?? 0;
    expect(joins - joinsBefore).toBeGreaterThan(0);
    expect(joins - joinsBefore).toBeLessThanOrEqual(9);
  });

  it('never deduplicates mutations', async () => {
    const start = `mutation { startConversation(input: { sessionId: "dedup", title: "twice" }) { id } }`;
    const [one, two] = await Promise.all([t.gql(start, { key: a.key }), t.gql(start, { key: a.key })]);
    expect(one.data.startConversation.id).not.toBe(two.data.startConversation.id);
  });

  it('cacheStats is admin-only and reports hits, misses and hit rate per cache', async () => {
    const denied = await t.gql(`{ cacheStats { cache } }`, { key: a.key });
    expect(denied.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const { data } = await t.gql(`{ cacheStats { cache layer hits misses sets evictions invalidations singleFlightJoins hitRate } }`, {
      admin: true,
    });
    const stats = data.cacheStats.find((s: any) => s.cache === 'productStats' && s.layer === 'L1');
    expect(stats.hits).toBeGreaterThan(0);
    expect(stats.misses).toBeGreaterThan(0);
    expect(stats.hitRate).toBeCloseTo(stats.hits / (stats.hits + stats.misses));
    expect(stats.invalidations).toBeGreaterThan(0); // startConversation above bumped the conversations tag
  });
});

describeEachDatabase('cache warming at start-up', (variant) => {
  let t: TestApp;
  it('warms the most recently active products: their first request reads no SQL for the key, stats or knowledge', async () => {
    // Build once to create data, then a second app on the same database warms it.
    t = await createTestApp(variant, { PARLEY_WARM_PRODUCTS: '0' });
    const p = await t.product('Warm me');
    await seedConversations(t.prisma, p.id, { conversations: 1, messages: 2, feedbackEvery: 0 });
    await t.prisma.knowledgeEntry.create({ data: { productId: p.id, title: 'Hello', content: 'World' } });
    const { buildApp } = await import('../../src/app.js');
    const { loadConfig } = await import('../../src/config.js');
    const warmApp = await buildApp(
      loadConfig({
        NODE_ENV: 'test',
        PARLEY_DATA_DIR: t.app.deps.config.dataDir,
        PARLEY_ADMIN_TOKEN: t.app.deps.adminToken,
        PARLEY_DEMO: 'false',
        PARLEY_WARM_PRODUCTS: '5',
      }),
      { db: t.app.deps.db, log: t.app.deps.log },
    );
    try {
      const { newSqlScope, runInSqlScope } = await import('../../src/infra/sql-stats.js');
      const scope = newSqlScope(true);
      const response = await runInSqlScope(scope, () =>
        warmApp.yoga.fetch('http://parley.test/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${p.key}` },
          body: JSON.stringify({
            query: `query Warm { viewer { id name stats { conversationCount messageCount feedbackUp feedbackDown } knowledge(first: 20) { edges { cursor node { id title content tags updatedAt } } pageInfo { hasNextPage endCursor } } } }`,
          }),
        }),
      );
      const body = (await response.json()) as any;
      expect(body.data.viewer.knowledge.edges[0].node.title).toBe('Hello');
      expect(scope.log).toEqual([]);
    } finally {
      await warmApp.stop();
      await t.dispose();
    }
  });
});
