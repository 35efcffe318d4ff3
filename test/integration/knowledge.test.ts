import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';

// The knowledge base through the API: writes, paging, and full-text search.

const ENTRY = 'id title content tags createdAt updatedAt';

const ADD = /* GraphQL */ `mutation Add($input: KnowledgeInput!) { addKnowledge(input: $input) { ${ENTRY} } }`;
const ADD_BATCH = /* GraphQL */ `
  mutation AddBatch($input: AddKnowledgeBatchInput!) { addKnowledgeBatch(input: $input) { ${ENTRY} } }
`;
const UPDATE = /* GraphQL */ `mutation Update($input: UpdateKnowledgeInput!) { updateKnowledge(input: $input) { ${ENTRY} } }`;
const DELETE = /* GraphQL */ `mutation Delete($id: ID!) { deleteKnowledge(id: $id) }`;
const SEARCH = /* GraphQL */ `
  query Search($query: String!, $first: Int) { searchKnowledge(query: $query, first: $first) { score entry { id title } } }
`;
const SEARCH_DEFAULT = /* GraphQL */ `query Search($query: String!) { searchKnowledge(query: $query) { score entry { id title } } }`;
const KNOWLEDGE = /* GraphQL */ `
  query Knowledge($first: Int, $after: String) {
    viewer {
      knowledge(first: $first, after: $after) {
        edges { cursor node { id title updatedAt } }
        pageInfo { hasNextPage hasPreviousPage endCursor }
      }
    }
  }
`;
const NODE = /* GraphQL */ `query Node($id: ID!) { node(id: $id) { id ... on KnowledgeEntry { title content tags } } }`;

function ok<T>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}

const FAQ = [
  {
    title: 'Refund policy',
    content: 'You can return any item within 30 days of delivery for a full refund. Refunds go to the original payment method.',
    tags: ['refunds', 'returns'],
  },
  {
    title: 'Shipping times',
    content: 'Orders ship within 2 business days. Standard delivery takes 3-5 business days; refunds of shipping costs are not possible.',
    tags: ['shipping'],
  },
  {
    title: 'Opening hours',
    content: 'Our support team answers chat messages Monday to Friday, 9:00 to 18:00 CET.',
    tags: ['support'],
  },
  {
    title: 'Changing a password',
    content: 'Open Settings, choose Security and click "Change password". A confirmation email follows.',
    tags: ['account'],
  },
];

describeEachDatabase('knowledge', (variant) => {
  let t: TestApp;

  beforeAll(async () => {
    t = await createTestApp(variant);
  });
  afterAll(() => t?.dispose());

  describe('writes', () => {
    let shop: { id: string; key: string };
    const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: shop.key, variables });

    beforeAll(async () => {
      shop = await t.product('Writes');
    });

    it('addKnowledge stores an entry (trimmed, tags de-duplicated) readable through node', async () => {
      const added = ok(
        await gql(ADD, { input: { title: '  Gift cards ', content: 'Gift cards never expire.', tags: ['gifts', 'gifts', 'cards'] } }),
      ).addKnowledge;
      expect(added).toMatchObject({ title: 'Gift cards', content: 'Gift cards never expire.', tags: ['gifts', 'cards'] });
      expect(added.createdAt).toBe(added.updatedAt);
      const row = await t.prisma.knowledgeEntry.findFirstOrThrow({ where: { productId: shop.id } });
      expect(added.id).toBe(gid('KnowledgeEntry', row.id));
      expect(ok(await gql(NODE, { id: added.id })).node).toEqual({
        id: added.id,
        title: 'Gift cards',
        content: 'Gift cards never expire.',
        tags: ['gifts', 'cards'],
      });

      const untagged = ok(await gql(ADD, { input: { title: 'No tags', content: 'None at all.' } })).addKnowledge;
      expect(untagged.tags).toEqual([]);
    });

    it('addKnowledgeBatch stores every entry in order', async () => {
      const before = await t.prisma.knowledgeEntry.count({ where: { productId: shop.id } });
      const added = ok(await gql(ADD_BATCH, { input: { entries: FAQ } })).addKnowledgeBatch;
      expect(added.map((e: any) => e.title)).toEqual(FAQ.map((f) => f.title));
      expect(added.map((e: any) => e.tags)).toEqual(FAQ.map((f) => f.tags));
      expect(new Set(added.map((e: any) => e.id)).size).toBe(FAQ.length);
      expect(await t.prisma.knowledgeEntry.count({ where: { productId: shop.id } })).toBe(before + FAQ.length);
      for (const entry of added) expect(ok(await gql(NODE, { id: entry.id })).node.title).toBe(entry.title);
    });

    it('updateKnowledge changes only the given fields and moves updatedAt', async () => {
      const entry = ok(await gql(ADD, { input: { title: 'Old title', content: 'Old content', tags: ['a'] } })).addKnowledge;
      await new Promise((r) => setTimeout(r, 5));

      const titled = ok(await gql(UPDATE, { input: { id: entry.id, title: 'New title' } })).updateKnowledge;
      expect(titled).toMatchObject({ id: entry.id, title: 'New title', content: 'Old content', tags: ['a'], createdAt: entry.createdAt });
      expect(new Date(titled.updatedAt).getTime()).toBeGreaterThan(new Date(entry.updatedAt).getTime());

      const retagged = ok(await gql(UPDATE, { input: { id: entry.id, content: 'New content', tags: [] } })).updateKnowledge;
      expect(retagged).toMatchObject({ title: 'New title', content: 'New content', tags: [] });

      const nothing = await gql(UPDATE, { input: { id: entry.id } });
      expect(nothing.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input' });
      expect(ok(await gql(NODE, { id: entry.id })).node).toMatchObject({ title: 'New title', content: 'New content', tags: [] });
    });

    it('deleteKnowledge removes the entry; deleting it again is NOT_FOUND', async () => {
      const entry = ok(await gql(ADD, { input: { title: 'Short-lived', content: 'Gone soon.' } })).addKnowledge;
      expect(ok(await gql(DELETE, { id: entry.id })).deleteKnowledge).toBe(entry.id);
      expect(ok(await gql(NODE, { id: entry.id })).node).toBeNull();
      const again = await gql(DELETE, { id: entry.id });
      expect(again.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    });

    it('another product can neither see, update nor delete an entry (NOT_FOUND, as if it did not exist)', async () => {
      const entry = ok(await gql(ADD, { input: { title: 'Private', content: 'Only for Writes.' } })).addKnowledge;
      const other = await t.product('Intruder');
      const as = (query: string, variables: Record<string, unknown>) => t.gql(query, { key: other.key, variables });
      expect(ok(await as(NODE, { id: entry.id })).node).toBeNull();
      expect((await as(UPDATE, { input: { id: entry.id, title: 'Hacked' } })).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect((await as(DELETE, { id: entry.id })).errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(ok(await as(SEARCH, { query: 'private' })).searchKnowledge).toEqual([]);
      expect(ok(await gql(NODE, { id: entry.id })).node.title).toBe('Private');
    });
  });

  describe('viewer.knowledge paging', () => {
    let shop: { id: string; key: string };
    const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: shop.key, variables });

    beforeAll(async () => {
      shop = await t.product('Paging');
      const entries = Array.from({ length: 12 }, (_, i) => ({ title: `Entry ${i}`, content: `Content ${i}` }));
      ok(await gql(ADD_BATCH, { input: { entries: entries.slice(0, 6) } }));
      for (const entry of entries.slice(6)) ok(await gql(ADD, { input: entry }));
    });

    it('walks every entry once, most recently updated first, with correct pageInfo', async () => {
      const all = ok(await gql(KNOWLEDGE, { first: 100 })).viewer.knowledge;
      expect(all.edges).toHaveLength(12);
      expect(all.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
      const times = all.edges.map((e: any) => new Date(e.node.updatedAt).getTime());
      expect([...times].sort((a, b) => b - a)).toEqual(times);
      expect(all.edges[0].node.title).toBe('Entry 11');

      const seen: string[] = [];
      const sizes: number[] = [];
      let after: string | null = null;
      for (let guard = 0; guard < 10; guard++) {
        const page: any = ok(await gql(KNOWLEDGE, { first: 5, after })).viewer.knowledge;
        seen.push(...page.edges.map((e: any) => e.node.id));
        sizes.push(page.edges.length);
        expect(page.pageInfo.hasPreviousPage).toBe(after !== null);
        if (!page.pageInfo.hasNextPage) break;
        after = page.pageInfo.endCursor;
      }
      expect(sizes).toEqual([5, 5, 2]);
      expect(seen).toEqual(all.edges.map((e: any) => e.node.id));
    });

    it('an updated entry moves to the front', async () => {
      const all = ok(await gql(KNOWLEDGE, { first: 100 })).viewer.knowledge.edges.map((e: any) => e.node);
      const oldest = all.at(-1);
      ok(await gql(UPDATE, { input: { id: oldest.id, content: 'Fresh content' } }));
      const now = ok(await gql(KNOWLEDGE, { first: 1 })).viewer.knowledge;
      expect(now.edges[0].node.id).toBe(oldest.id);
      expect(now.pageInfo.hasNextPage).toBe(true);
    });
  });

  describe('searchKnowledge', () => {
    let shop: { id: string; key: string };
    let ids: Record<string, string>;
    const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: shop.key, variables });
    const search = async (query: string, first?: number) =>
      ok(await gql(first === undefined ? SEARCH_DEFAULT : SEARCH, { query, first })).searchKnowledge as {
        score: number;
        entry: { id: string; title: string };
      }[];

    beforeAll(async () => {
      shop = await t.product('Search');
      const added = ok(await gql(ADD_BATCH, { input: { entries: FAQ } })).addKnowledgeBatch;
      ids = Object.fromEntries(added.map((e: any) => [e.title, e.id]));
      // Noise: entries of another product that match the same words.
      const other = await t.product('Other search');
      ok(await t.gql(ADD_BATCH, { key: other.key, variables: { input: { entries: FAQ } } }));
    });

    it('ranks the entry that answers the question best first', async () => {
      const hits = await search('How do I get a refund?');
      expect(hits[0]?.entry).toEqual({ id: ids['Refund policy'], title: 'Refund policy' });
      for (let i = 1; i < hits.length; i++) expect(hits[i]!.score).toBeLessThanOrEqual(hits[i - 1]!.score);
      expect(hits[0]!.score).toBeGreaterThan(hits[1]?.score ?? 0);
      // Only this product's entries.
      const mine = new Set(Object.values(ids));
      for (const hit of hits) expect(mine.has(hit.entry.id)).toBe(true);

      expect((await search('When are you open?'))[0]?.entry.title).toBe('Opening hours');
      expect((await search('how can I change my password'))[0]?.entry.title).toBe('Changing a password');
      expect((await search('how long does shipping take'))[0]?.entry.title).toBe('Shipping times');
    });

    it('finds an entry by a word that is only in its content (stemmed)', async () => {
      const hits = await search('confirmation emails');
      expect(hits.map((h) => h.entry.title)).toEqual(['Changing a password']);
      expect(hits[0]!.score).toBeGreaterThan(0);
      expect((await search('Is there chat support on Monday?'))[0]?.entry.title).toBe('Opening hours');
    });

    it('respects first (default 5)', async () => {
      expect(await search('refund delivery business days support password', 1)).toHaveLength(1);
      expect(await search('refund delivery business days support password', 2)).toHaveLength(2);
      expect(await search('refund delivery business days support password')).toHaveLength(4);
      expect((await search('refund', 1))[0]?.entry.title).toBe('Refund policy');
    });

    it('returns 5 hits by default when more match, and up to first otherwise', async () => {
      const many = await t.product('Many');
      const entries = Array.from({ length: 8 }, (_, i) => ({ title: `Warranty ${i}`, content: `Warranty case number ${i}.` }));
      ok(await t.gql(ADD_BATCH, { key: many.key, variables: { input: { entries } } }));
      const as = (query: string, variables: Record<string, unknown>) => t.gql(query, { key: many.key, variables });
      expect(ok(await as(SEARCH_DEFAULT, { query: 'warranty' })).searchKnowledge).toHaveLength(5);
      expect(ok(await as(SEARCH, { query: 'warranty', first: 7 })).searchKnowledge).toHaveLength(7);
      expect(ok(await as(SEARCH, { query: 'warranty', first: 20 })).searchKnowledge).toHaveLength(8);
    });

    it('returns [] for a question with no matching words, only stop words, or nothing at all', async () => {
      expect(await search('quantum chromodynamics')).toEqual([]);
      expect(await search('what is the and of it')).toEqual([]);
      expect(await search('')).toEqual([]);
      expect(await search('   ?! ')).toEqual([]);
    });

    it('treats tsquery syntax and quotes in the question as plain text', async () => {
      for (const q of ["refund's & | ! <-> :* ( ) 'x'", "O'Reilly \\ refund", 'refund:*A']) {
        const result = await gql(SEARCH, { query: q, first: 5 });
        expect(result.errors, q).toBeUndefined();
        expect(result.data.searchKnowledge[0]?.entry.title, q).toBe('Refund policy');
      }
    });

    it('sees updates: a new title becomes findable, a deleted entry disappears', async () => {
      const entry = ok(await gql(ADD, { input: { title: 'Loyalty points', content: 'Earn one point per euro.' } })).addKnowledge;
      expect((await search('loyalty'))[0]?.entry.id).toBe(entry.id);
      expect(await search('vouchers')).toEqual([]);

      ok(await gql(UPDATE, { input: { id: entry.id, title: 'Vouchers and rewards' } }));
      expect((await search('vouchers'))[0]?.entry).toEqual({ id: entry.id, title: 'Vouchers and rewards' });
      expect(await search('loyalty')).toEqual([]);
      // Content still matches.
      expect((await search('points'))[0]?.entry.id).toBe(entry.id);

      ok(await gql(UPDATE, { input: { id: entry.id, content: 'Collect stamps on every order.' } }));
      expect(await search('points')).toEqual([]);
      expect((await search('stamps'))[0]?.entry.id).toBe(entry.id);

      ok(await gql(DELETE, { id: entry.id }));
      expect(await search('vouchers')).toEqual([]);
      expect(await search('stamps')).toEqual([]);
    });

    it('a title match outranks a content-only match', async () => {
      // "refund" is in the title of "Refund policy" and only in the content of "Shipping times".
      const hits = await search('refunds');
      expect(hits.map((h) => h.entry.title)).toEqual(['Refund policy', 'Shipping times']);
    });
  });
});
