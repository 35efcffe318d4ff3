import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, TEST_ADMIN_TOKEN, type GqlResult, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';
import { issueProductKey } from '../../src/services/products.js';

// Authentication from the outside, as an attacker would probe it: missing,
// malformed, unknown, re-cased, conflicting and mis-routed credentials, and the
// admin surface (products, createProduct, rotateProductKey).
//
// Decisions asserted here:
// - a product field without a product key        -> UNAUTHENTICATED (401)
// - any credential present but invalid            -> UNAUTHENTICATED (401), the whole request fails, data null
// - an admin field without the admin token        -> FORBIDDEN (403), also when a valid product key is sent
// - a wrong admin token                           -> UNAUTHENTICATED (401): it never grants anything

/** New secret keys (issue 16); keys issued before, pk_live_…, are secret keys too (key-kinds.test.ts). */
const KEY_PREFIX = 'sk_live_';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

const VIEWER = /* GraphQL */ `{ viewer { id name keyPrefix } }`;
const PRODUCTS = /* GraphQL */ `{ products(first: 100) { edges { node { id name } } } }`;
const CREATE = /* GraphQL */ `
  mutation Create($name: String!) { createProduct(input: { name: $name }) { key product { id name keyPrefix } } }
`;
const ROTATE = /* GraphQL */ `
  mutation Rotate($id: ID!) { rotateProductKey(id: $id) { key product { id keyPrefix } } }
`;

/** Flips the case of every letter: same key, different case. */
const swapCase = (s: string) => s.replace(/[a-z]/gi, (c) => (c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()));

function expectRefused(result: GqlResult, code: 'UNAUTHENTICATED' | 'FORBIDDEN', status: number) {
  expect(result.status, JSON.stringify(result.errors)).toBe(status);
  expect(result.errors?.length).toBeGreaterThan(0);
  for (const error of result.errors!) expect(error.extensions?.code).toBe(code);
  // Nothing leaks alongside the error.
  expect(result.data ?? null).toBeNull();
}

/** The whole request is refused before execution: 401, no data at all. */
const expectUnauthenticated = (result: GqlResult) => expectRefused(result, 'UNAUTHENTICATED', 401);
const expectForbidden = (result: GqlResult) => expectRefused(result, 'FORBIDDEN', 403);

describeEachDatabase('authentication', (variant) => {
  let t: TestApp;
  let a: { id: string; key: string };

  beforeAll(async () => {
    t = await createTestApp(variant);
    a = await t.product('Product A');
  });
  afterAll(() => t?.dispose());

  const productRow = (id: string) => t.prisma.product.findUniqueOrThrow({ where: { id } });
  const productCount = () => t.prisma.product.count();

  describe('product keys', () => {
    it('a valid key as Bearer authenticates the viewer', async () => {
      const r = await t.gql(VIEWER, { key: a.key });
      expect(r.errors).toBeUndefined();
      expect(r.status).toBe(200);
      expect(r.data.viewer).toEqual({ id: gid('Product', a.id), name: 'Product A', keyPrefix: a.key.slice(0, 12) });
    });

    it('x-product-key works exactly like Authorization: Bearer', async () => {
      const bearer = await t.gql(VIEWER, { key: a.key });
      const header = await t.gql(VIEWER, { headers: { 'x-product-key': a.key } });
      expect(header).toEqual({ ...bearer, sql: header.sql });
      // The scheme is case-insensitive (RFC 7235); the key is not.
      const lower = await t.gql(VIEWER, { headers: { authorization: `bearer ${a.key}` } });
      expect(lower.data).toEqual(bearer.data);
    });

    it('no key on a product field: UNAUTHENTICATED with extensions.code, no data', async () => {
      const r = await t.gql(VIEWER);
      expect(r.status).toBe(401);
      expect(r.errors).toHaveLength(1);
      expect(r.errors![0]!.extensions?.code).toBe('UNAUTHENTICATED');
      expect(r.errors![0]!.path).toEqual(['viewer']);
      expect(r.data).toBeNull();
      for (const query of [
        `{ conversations(first: 1) { edges { node { id } } } }`,
        `{ searchKnowledge(query: "refund") { score } }`,
        `mutation { startConversation(input: { sessionId: "s" }) { id } }`,
        `mutation { addKnowledge(input: { title: "t", content: "c" }) { id } }`,
      ]) {
        const anon = await t.gql(query);
        expect(anon.errors?.[0]?.extensions?.code, query).toBe('UNAUTHENTICATED');
        expect(anon.data ?? null).toBeNull();
      }
      expect(await t.prisma.conversation.count()).toBe(0);
      expect(await t.prisma.knowledgeEntry.count()).toBe(0);
    });

    it('the credentials are checked before the ids: a malformed id without the key or token a field needs is 401/403', async () => {
      for (const query of [
        'mutation { deleteKnowledge(id: "garbage") }',
        'mutation { updateKnowledge(input: { id: "garbage", title: "t" }) { id } }',
        'mutation { submitFeedback(input: { messageId: "garbage", rating: UP }) { id } }',
      ]) {
        expectUnauthenticated(await t.gql(query));
      }
      for (const query of ['mutation { rotateProductKey(id: "garbage") { key } }', 'mutation { updateProduct(input: { id: "garbage" }) { id } }']) {
        expectForbidden(await t.gql(query));
        expectForbidden(await t.gql(query, { key: a.key }));
      }
      // A conversation's fields need its id to know whose it is: that id is checked first, whoever asks.
      const refused = await t.gql('{ conversation(id: "garbage") { id } }');
      expect(refused.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'id' });
    });

    it('a garbage key fails the whole request with 401, whatever the operation', async () => {
      for (const garbage of ['garbage', 'x', '🔑', 'null', 'undefined', "' OR 1=1 --", 'adm', 'pk_live', 'pk_test_abc']) {
        expectUnauthenticated(await t.gql(VIEWER, { key: garbage }));
        expectUnauthenticated(await t.gql(VIEWER, { headers: { 'x-product-key': garbage } }));
      }
      // Even a query that needs no key (introspection) is refused: a bad key is never ignored.
      expectUnauthenticated(await t.gql(`{ __typename }`, { key: 'garbage' }));
    });

    it('a well-formed but unknown key of either kind, or of the format issued before, is refused with 401', async () => {
      const unknown = issueProductKey().key;
      expect(unknown).toMatch(/^sk_live_/);
      for (const key of [unknown, issueProductKey('PUBLISHABLE').key, `pk_live_${unknown.slice(KEY_PREFIX.length)}`]) {
        expectUnauthenticated(await t.gql(VIEWER, { key }));
        expectUnauthenticated(await t.gql(VIEWER, { headers: { 'x-product-key': key } }));
      }
      // The bare prefix, a truncated key, a key with a character more, and a very long key.
      for (const near of [KEY_PREFIX, a.key.slice(0, -1), `${a.key}A`, a.key + a.key, KEY_PREFIX + 'A'.repeat(5000)]) {
        expectUnauthenticated(await t.gql(VIEWER, { key: near }));
      }
    });

    it('the same key with a different case is refused with 401', async () => {
      const random = a.key.slice(KEY_PREFIX.length);
      const variants = [
        swapCase(a.key), // every letter flipped
        a.key.toUpperCase(),
        a.key.toLowerCase(),
        KEY_PREFIX.toUpperCase() + random, // only the prefix
        KEY_PREFIX + swapCase(random), // only the random part
      ].filter((v) => v !== a.key);
      expect(variants.length).toBeGreaterThanOrEqual(4);
      for (const v of variants) {
        expectUnauthenticated(await t.gql(VIEWER, { key: v }));
        expectUnauthenticated(await t.gql(VIEWER, { headers: { 'x-product-key': v } }));
      }
    });

    it('a product key sent as the admin token, or the admin token as a product key, grants nothing', async () => {
      expectUnauthenticated(await t.gql(PRODUCTS, { headers: { 'x-admin-token': a.key } }));
      expectUnauthenticated(await t.gql(VIEWER, { headers: { 'x-product-key': TEST_ADMIN_TOKEN } }));
    });

    it('conflicting credentials fail the request instead of one being silently ignored', async () => {
      const b = await t.product('Product B (conflict)');
      // A bad Bearer next to a good x-product-key (and the other way round).
      expectUnauthenticated(await t.gql(VIEWER, { key: 'pk_live_garbage', headers: { 'x-product-key': a.key } }));
      expectUnauthenticated(await t.gql(VIEWER, { key: a.key, headers: { 'x-product-key': 'pk_live_garbage' } }));
      // Two valid keys of two products: which product would that be?
      expectUnauthenticated(await t.gql(VIEWER, { key: a.key, headers: { 'x-product-key': b.key } }));
      // A wrong admin token as Bearer next to the right one in x-admin-token.
      expectUnauthenticated(await t.gql(PRODUCTS, { headers: { authorization: 'Bearer adm_wrong', 'x-admin-token': TEST_ADMIN_TOKEN } }));
      // The same key twice is not a conflict.
      const same = await t.gql(VIEWER, { key: a.key, headers: { 'x-product-key': a.key } });
      expect(same.errors).toBeUndefined();
      expect(same.data.viewer.id).toBe(gid('Product', a.id));
    });

    it('a malformed Bearer header is a bad credential (401), not an anonymous request', async () => {
      for (const authorization of [
        'Bearer',
        'Bearer ',
        `Bearer ${a.key} extra`,
        `Bearer ${a.key}, Bearer ${a.key}`,
        `Bearer  ${a.key} ${TEST_ADMIN_TOKEN}`,
      ]) {
        expectUnauthenticated(await t.gql(`{ __typename }`, { headers: { authorization } }));
        // Not even next to a valid x-product-key.
        expectUnauthenticated(await t.gql(VIEWER, { headers: { authorization, 'x-product-key': a.key } }));
      }
      // Another scheme (Basic from a proxy in front) is not Parley's: ignored, the request is anonymous.
      const basic = await t.gql(VIEWER, { headers: { authorization: 'Basic dXNlcjpwYXNz' } });
      expect(basic.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect((await t.gql(VIEWER, { headers: { authorization: 'Basic dXNlcjpwYXNz', 'x-product-key': a.key } })).errors).toBeUndefined();
      // A key without the scheme is not read as a key (so it grants nothing).
      const bare = await t.gql(VIEWER, { headers: { authorization: a.key } });
      expect(bare.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      expect(bare.data).toBeNull();
    });

    it('introspection works without a key', async () => {
      const r = await t.gql(`{ __schema { queryType { name } mutationType { name } } }`);
      expect(r.errors).toBeUndefined();
      expect(r.status).toBe(200);
      expect(r.data).toEqual({ __schema: { queryType: { name: 'Query' }, mutationType: { name: 'Mutation' } } });
    });
  });

  describe('admin fields', () => {
    const mutations = () => [
      { name: 'products', query: PRODUCTS, variables: {} },
      { name: 'createProduct', query: CREATE, variables: { name: 'Sneaky' } },
      { name: 'rotateProductKey', query: ROTATE, variables: { id: gid('Product', a.id) } },
    ];

    async function expectUntouched(check: () => Promise<void>) {
      const before = { count: await productCount(), a: await productRow(a.id) };
      await check();
      expect(await productCount()).toBe(before.count);
      expect(await productRow(a.id)).toEqual(before.a);
      // A's key still works: it was not rotated.
      expect((await t.gql(VIEWER, { key: a.key })).data.viewer.id).toBe(gid('Product', a.id));
    }

    it('without a token: FORBIDDEN (403), nothing created or rotated', async () => {
      await expectUntouched(async () => {
        for (const { name, query, variables } of mutations()) {
          const r = await t.gql(query, { variables });
          expectForbidden(r);
          expect(r.errors![0]!.path, name).toEqual([name]);
        }
      });
    });

    it("with a product key (even the target's own): FORBIDDEN (403), nothing created or rotated", async () => {
      await expectUntouched(async () => {
        for (const { name, query, variables } of mutations()) {
          expectForbidden(await t.gql(query, { key: a.key, variables }));
          expectForbidden(await t.gql(query, { headers: { 'x-product-key': a.key }, variables }));
          void name;
        }
      });
    });

    it('with a wrong admin token: UNAUTHENTICATED (401), never granted, not even with a valid product key', async () => {
      const wrong = [
        'adm_wrong',
        'adm_',
        TEST_ADMIN_TOKEN.slice(0, -1), // a prefix of the real one
        `${TEST_ADMIN_TOKEN}x`, // the real one and more
        TEST_ADMIN_TOKEN.toUpperCase(),
        swapCase(TEST_ADMIN_TOKEN),
        ` ${TEST_ADMIN_TOKEN.slice(1)}`,
        `adm_${'A'.repeat(10_000)}`,
      ];
      await expectUntouched(async () => {
        for (const { query, variables } of mutations()) {
          for (const token of wrong) {
            expectUnauthenticated(await t.gql(query, { headers: { 'x-admin-token': token }, variables }));
            expectUnauthenticated(await t.gql(query, { headers: { authorization: `Bearer ${token.trim()}` }, variables }));
            expectUnauthenticated(await t.gql(query, { key: a.key, headers: { 'x-admin-token': token }, variables }));
          }
        }
        // Nor does it open another product to a product-key caller through node().
        expectUnauthenticated(
          await t.gql(`query N($id: ID!) { node(id: $id) { id } }`, {
            key: a.key,
            headers: { 'x-admin-token': 'adm_wrong' },
            variables: { id: gid('Product', a.id) },
          }),
        );
      });
    });

    it('the right admin token works as x-admin-token and as Bearer', async () => {
      const ways: Record<string, string>[] = [{ 'x-admin-token': TEST_ADMIN_TOKEN }, { authorization: `Bearer ${TEST_ADMIN_TOKEN}` }];
      for (const headers of ways) {
        const r = await t.gql(PRODUCTS, { headers });
        expect(r.errors).toBeUndefined();
        expect(r.data.products.edges.map((e: any) => e.node.id)).toContain(gid('Product', a.id));
      }
    });
  });

  describe('createProduct', () => {
    let created: { key: string; product: { id: string; name: string; keyPrefix: string } };
    let id: string;

    beforeAll(async () => {
      const r = await t.gql(CREATE, { admin: true, variables: { name: 'Fresh product' } });
      expect(r.errors).toBeUndefined();
      created = r.data.createProduct;
      id = Buffer.from(created.product.id, 'base64').toString().split(':')[1]!;
    });

    it('returns an sk_live_ key with at least 128 random bits that works immediately', async () => {
      expect(created.key.startsWith(KEY_PREFIX)).toBe(true);
      const random = created.key.slice(KEY_PREFIX.length);
      // base64url: 6 bits a character.
      expect(random).toMatch(/^[A-Za-z0-9_-]+$/);
      expect(random.length * 6).toBeGreaterThanOrEqual(128);
      // What keyPrefix shows is public: what stays secret must still be >= 128 bits.
      expect(created.product.keyPrefix).toBe(created.key.slice(0, created.product.keyPrefix.length));
      expect((created.key.length - created.product.keyPrefix.length) * 6).toBeGreaterThanOrEqual(128);

      const r = await t.gql(VIEWER, { key: created.key });
      expect(r.errors).toBeUndefined();
      expect(r.data.viewer).toEqual({ id: created.product.id, name: 'Fresh product', keyPrefix: created.product.keyPrefix });
    });

    it('issues a different key every time', async () => {
      const keys = new Set<string>([created.key]);
      for (let i = 0; i < 5; i++) {
        const r = await t.gql(CREATE, { admin: true, variables: { name: `Another ${i}` } });
        keys.add(r.data.createProduct.key);
      }
      expect(keys.size).toBe(6);
    });

    it('stores the sha256 of the key and never the key (nor its secret part) in the Product row', async () => {
      const row = await productRow(id);
      expect(row.keyHash).toBe(sha256(created.key));
      expect(row.keyPrefix).toBe(created.product.keyPrefix);
      const secret = created.key.slice(created.product.keyPrefix.length);
      // Every column of the row as the database returns it.
      const [raw] = await t.prisma.$queryRawUnsafe<{ row: string }[]>(`SELECT row_to_json(p)::text AS row FROM "Product" p WHERE id = $1::uuid`, id);
      expect(raw!.row).toContain(sha256(created.key));
      expect(raw!.row).not.toContain(created.key);
      expect(raw!.row).not.toContain(secret);
      expect(raw!.row).not.toContain(Buffer.from(created.key).toString('hex'));
      expect(raw!.row).not.toContain(Buffer.from(created.key).toString('base64'));
      // And nowhere else in the table either.
      const [all] = await t.prisma.$queryRawUnsafe<{ rows: string }[]>(
        `SELECT coalesce(string_agg(row_to_json(p)::text, '\n'), '') AS rows FROM "Product" p`,
      );
      expect(all!.rows).not.toContain(secret);
    });

    it('rejects a bad name as BAD_USER_INPUT and creates nothing', async () => {
      const before = await productCount();
      for (const name of ['', '   ', 'x'.repeat(201)]) {
        const r = await t.gql(CREATE, { admin: true, variables: { name } });
        expect(r.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      }
      expect(await productCount()).toBe(before);
    });
  });

  describe('rotateProductKey', () => {
    it('refuses the old key at once, accepts the new one, changes keyPrefix and keyHash', async () => {
      const p = await t.product('Rotating');
      const before = await productRow(p.id);
      expect((await t.gql(VIEWER, { key: p.key })).data.viewer.id).toBe(gid('Product', p.id));

      const r = await t.gql(ROTATE, { admin: true, variables: { id: gid('Product', p.id) } });
      expect(r.errors).toBeUndefined();
      const { key, product } = r.data.rotateProductKey;
      expect(product.id).toBe(gid('Product', p.id));
      expect(key).not.toBe(p.key);
      expect(key.startsWith(KEY_PREFIX)).toBe(true);
      expect(product.keyPrefix).toBe(key.slice(0, product.keyPrefix.length));
      expect(product.keyPrefix).not.toBe(before.keyPrefix);

      // The very next request with the old key is refused.
      expectUnauthenticated(await t.gql(VIEWER, { key: p.key }));
      expectUnauthenticated(await t.gql(VIEWER, { headers: { 'x-product-key': p.key } }));
      const now = await t.gql(VIEWER, { key });
      expect(now.errors).toBeUndefined();
      expect(now.data.viewer).toEqual({ id: gid('Product', p.id), name: 'Rotating', keyPrefix: product.keyPrefix });

      const after = await productRow(p.id);
      expect(after.keyHash).toBe(sha256(key));
      expect(after.keyHash).not.toBe(before.keyHash);
      expect(after.keyPrefix).toBe(product.keyPrefix);
      expect({ ...after, keyHash: '', keyPrefix: '' }).toEqual({ ...before, keyHash: '', keyPrefix: '' });

      // Rotating again retires the second key too.
      const again = await t.gql(ROTATE, { admin: true, variables: { id: gid('Product', p.id) } });
      expectUnauthenticated(await t.gql(VIEWER, { key }));
      expect((await t.gql(VIEWER, { key: again.data.rotateProductKey.key })).errors).toBeUndefined();
    });

    it('only rotates the product named: other keys keep working', async () => {
      const p = await t.product('Target');
      const other = await t.product('Bystander');
      await t.gql(ROTATE, { admin: true, variables: { id: gid('Product', p.id) } });
      expect((await t.gql(VIEWER, { key: other.key })).data.viewer.id).toBe(gid('Product', other.id));
      expect((await t.gql(VIEWER, { key: a.key })).data.viewer.id).toBe(gid('Product', a.id));
    });

    it('an unknown product is NOT_FOUND; a malformed or wrong-type id is BAD_USER_INPUT', async () => {
      const unknown = await t.gql(ROTATE, { admin: true, variables: { id: gid('Product', '0190f5f0-0000-7000-8000-000000000000') } });
      expect(unknown.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(unknown.data).toBeNull();
      for (const id of ['nope', gid('Conversation', a.id), gid('Product', 'not-a-uuid')]) {
        const r = await t.gql(ROTATE, { admin: true, variables: { id } });
        expect(r.errors?.[0]?.extensions?.code, id).toBe('BAD_USER_INPUT');
      }
      // A's key was not touched by any of it.
      expect((await t.gql(VIEWER, { key: a.key })).errors).toBeUndefined();
    });
  });
});
