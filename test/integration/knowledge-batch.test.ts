import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { newSqlScope, runInSqlScope } from '../../src/infra/sql-stats.js';
import { addKnowledgeBatch, createKnowledgeSearch, rankKnowledge } from '../../src/services/knowledge.js';

/**
 * Concurrent knowledge searches of one product, within the batch window, are
 * one SQL statement — whether they come from searchKnowledge or from answers —
 * and each gets exactly what it would have got alone.
 */

const SEARCH = `query($q: String!, $n: Int) { searchKnowledge(query: $q, first: $n) { score entry { id title } } }`;
const SEND = `mutation($c: ID!, $q: String!) { sendMessage(input: { conversationId: $c, content: $q }) { reply { content } } }`;
const START = `mutation { startConversation(input: { sessionId: "batch" }) { id } }`;

const ENTRIES = ['shipping', 'refunds', 'warranty', 'passwords', 'invoices', 'gift cards', 'opening hours', 'returns'].map((topic, i) => ({
  title: `About ${topic}`,
  content: `Everything about ${topic}: policy number ${i}. ${i % 2 ? 'Delivery and parcels are covered.' : 'Payments are covered.'}`,
}));
const QUESTIONS = [
  'shipping',
  'refunds?',
  'warranty policy',
  'my password',
  'invoice payments',
  'gift cards',
  'opening hours',
  'parcel delivery',
  'policy',
];

function ok<T>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}
const ranking = (sql: string[]) => sql.filter((s) => s.includes('ts_rank'));

describeEachDatabase('knowledge search batching', (variant) => {
  let t: TestApp;
  let a: { id: string; key: string };
  let b: { id: string; key: string };

  beforeAll(async () => {
    // A wide window: on a loaded 2-core machine concurrent requests still land in one batch.
    t = await createTestApp(variant, { PARLEY_SEARCH_BATCH_MS: '300' });
    a = await t.product('Batch A');
    b = await t.product('Batch B');
    await addKnowledgeBatch(t.store, a.id, { entries: ENTRIES });
    await addKnowledgeBatch(t.store, b.id, { entries: ENTRIES.slice(0, 3) });
  });
  afterAll(() => t?.dispose());

  it('nine concurrent searches of one product are one statement, each with its own answer and page size', async () => {
    await t.app.deps.cache.flush();
    const before = t.app.deps.knowledgeSearch.statements;
    const results = await Promise.all(QUESTIONS.map((q, i) => t.gql(SEARCH, { key: a.key, variables: { q, n: 1 + (i % 3) } })));
    expect(t.app.deps.knowledgeSearch.statements - before).toBe(1);
    expect(results.flatMap((r) => ranking(r.sql))).toHaveLength(1);
    for (const [i, result] of results.entries()) {
      const alone = await rankKnowledge(t.prisma, a.id, QUESTIONS[i]!, 1 + (i % 3));
      const hits = ok(result).searchKnowledge;
      expect(
        hits.map((h: any) => h.entry.title),
        QUESTIONS[i],
      ).toEqual(alone.map((h) => h.entry.title));
      expect(hits.length).toBeLessThanOrEqual(1 + (i % 3));
    }
  });

  it('searches of two products are one statement each: a batch never mixes products', async () => {
    await t.app.deps.cache.flush();
    const before = t.app.deps.knowledgeSearch.statements;
    const results = await Promise.all([
      ...QUESTIONS.slice(0, 4).map((q) => t.gql(SEARCH, { key: a.key, variables: { q } })),
      ...QUESTIONS.slice(0, 4).map((q) => t.gql(SEARCH, { key: b.key, variables: { q } })),
    ]);
    expect(t.app.deps.knowledgeSearch.statements - before).toBe(2);
    const bTitles = results.slice(4).flatMap((r) => ok(r).searchKnowledge.map((h: any) => h.entry.title));
    for (const title of bTitles) expect(ENTRIES.slice(0, 3).map((e) => e.title)).toContain(title);
  });

  it('answers to different questions asked at once share one ranking statement', async () => {
    const conversations = await Promise.all(QUESTIONS.map(async () => ok(await t.gql(START, { key: a.key })).startConversation.id));
    const before = t.app.deps.knowledgeSearch.statements;
    const results = await Promise.all(
      QUESTIONS.map((q, i) => t.gql(SEND, { key: a.key, variables: { c: conversations[i], q: `${q} (asked at once)` } })),
    );
    for (const r of results) ok(r);
    expect(t.app.deps.knowledgeSearch.statements - before).toBe(1);
    expect(results.flatMap((r) => ranking(r.sql))).toHaveLength(1);
  });

  it('with a window of 0, the searches of one tick are still one statement', async () => {
    const search = createKnowledgeSearch(t.prisma, 0);
    const scope = newSqlScope(true);
    const hits = await runInSqlScope(scope, () => Promise.all(QUESTIONS.map((q) => search.rank(a.id, q, 2))));
    expect(scope.log).toHaveLength(1);
    expect(search.statements).toBe(1);
    expect(hits.map((h) => h.length)).toEqual(await Promise.all(QUESTIONS.map(async (q) => (await rankKnowledge(t.prisma, a.id, q, 2)).length)));
  });

  it('identical searches in one batch are ranked once', async () => {
    const search = createKnowledgeSearch(t.prisma, 5);
    const scope = newSqlScope(true);
    const hits = await runInSqlScope(scope, () => Promise.all([1, 2, 3].map(() => search.rank(a.id, 'shipping', 3))));
    expect(scope.log).toHaveLength(1);
    expect(hits[0]).toEqual(hits[2]);
  });

  it('a ranking that fails fails only the searches of its product in the batch', async () => {
    const search = createKnowledgeSearch(t.prisma, 5);
    const [broken, fine] = await Promise.allSettled([search.rank('not-a-product-id', 'shipping', 2), search.rank(a.id, 'shipping', 2)]);
    expect(broken.status).toBe('rejected');
    expect(fine.status).toBe('fulfilled');
    expect(search.statements).toBe(2);
  });
});

describeEachDatabase('knowledge search batching without a window (the default)', (variant) => {
  let t: TestApp;
  let a: { id: string; key: string };

  beforeAll(async () => {
    t = await createTestApp(variant, { PARLEY_SEARCH_BATCH_MS: '0' });
    a = await t.product('Adaptive');
    await addKnowledgeBatch(t.store, a.id, { entries: ENTRIES });
  });
  afterAll(() => t?.dispose());

  it('a question asked while nothing is ranked goes at once; those asked while a ranking runs go together after it', async () => {
    const search = createKnowledgeSearch(t.prisma, 0);
    const first = search.rank(a.id, QUESTIONS[0]!, 3);
    // Let the first batch start: it runs alone, with no window to wait for.
    await new Promise((resolve) => setImmediate(resolve));
    expect(search.statements).toBe(1);
    const rest = QUESTIONS.slice(1).map((q) => search.rank(a.id, q, 3));
    expect(search.statements).toBe(1);
    const [alone, ...together] = await Promise.all([first, ...rest]);
    // The eight asked meanwhile were one statement, sent once the first had answered.
    expect(search.statements).toBe(2);
    expect(alone!.map((h) => h.entry.title)).toEqual((await rankKnowledge(t.prisma, a.id, QUESTIONS[0]!, 3)).map((h) => h.entry.title));
    for (const [i, hits] of together.entries()) {
      expect(hits.map((h) => h.entry.title)).toEqual((await rankKnowledge(t.prisma, a.id, QUESTIONS[i + 1]!, 3)).map((h) => h.entry.title));
    }
  });
});
