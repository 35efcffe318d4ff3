import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { gid, seedConversations, type SeededConversation } from '../helpers/fixtures.js';
import { formatPrismaCursor } from '@pothos/plugin-prisma';
import { uuidv7 } from '../../src/services/ids.js';

// Tenant isolation, attacked from product A with product B's ids.
//
// DESIGN: "Every read and write is scoped to the calling product. An id that
// belongs to another product is indistinguishable from one that does not
// exist." So every probe is sent twice, once with B's id and once with a fresh
// random id of the same type, through the same query text, and the two
// responses must be identical: status, data, error messages, codes, paths —
// and even the number of SQL statements the server ran (no cheaper path for
// "exists elsewhere").

/** B's searchable words: they appear nowhere in A's data. */
const B_WORD = 'xylophonequasar';
const B_SESSION = 'b-secret-session';

const fromGid = (id: string) => Buffer.from(id, 'base64').toString('utf8').split(':')[1]!;
/** A connection cursor for a row id, exactly as the server writes them (opaque, but forgeable). */
const cursorOf = (id: string) => formatPrismaCursor({ id }, 'id');

/** Every string anywhere in a response, to look for B's ids and words. */
function strings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) strings(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) strings(v, out);
  return out;
}

interface Tenant {
  id: string;
  key: string;
  conversations: SeededConversation[];
  /** An assistant reply that already has feedback, and one that has none. */
  ratedReply: string;
  unratedReply: string;
  userMessage: string;
  feedbackId: string;
  knowledgeIds: string[];
}

describeEachDatabase('tenant isolation', (variant) => {
  let t: TestApp;
  let A: Tenant;
  let B: Tenant;
  /** Every id of B's rows (database uuids), and the same as global ids. */
  let bIds: Set<string>;

  async function seedTenant(name: string, words: string, sessionId: string, conversations: number): Promise<Tenant> {
    const p = await t.product(name);
    // 4 messages: USER, ASSISTANT (rated), USER, ASSISTANT (unrated, feedbackEvery 2).
    const seeded = await seedConversations(t.prisma, p.id, { conversations, messages: 4, feedbackEvery: 2, sessionId });
    const first = seeded[0]!;
    const feedback = await t.prisma.feedback.findUniqueOrThrow({ where: { messageId: first.messageIds[1]! } });
    const knowledge = [];
    for (const [i, topic] of ['refunds', 'shipping', 'passwords'].entries()) {
      knowledge.push(
        await t.prisma.knowledgeEntry.create({
          data: { productId: p.id, title: `${name} ${topic} ${words}`, content: `About ${topic}: ${words} number ${i}.`, tags: [topic, words] },
        }),
      );
    }
    return {
      ...p,
      conversations: seeded,
      userMessage: first.messageIds[0]!,
      ratedReply: first.messageIds[1]!,
      unratedReply: first.messageIds[3]!,
      feedbackId: feedback.id,
      knowledgeIds: knowledge.map((k) => k.id),
    };
  }

  /** B's rows exactly as stored, to prove the attacks changed nothing. */
  async function snapshotB() {
    const where = { productId: B.id };
    return {
      product: await t.prisma.product.findUniqueOrThrow({ where: { id: B.id } }),
      conversations: await t.prisma.conversation.findMany({ where, orderBy: { id: 'asc' } }),
      messages: await t.prisma.message.findMany({ where: { conversation: where }, orderBy: { id: 'asc' } }),
      feedback: await t.prisma.feedback.findMany({ where: { OR: [where, { conversation: where }] }, orderBy: { id: 'asc' } }),
      knowledge: await t.prisma.knowledgeEntry.findMany({ where, orderBy: { id: 'asc' } }),
    };
  }
  let bBefore: Awaited<ReturnType<typeof snapshotB>>;

  beforeAll(async () => {
    t = await createTestApp(variant);
    A = await seedTenant('Alpha', 'alphaword', 'shared-session', 3);
    B = await seedTenant('Bravo', B_WORD, B_SESSION, 3);
    // B also uses A's session id: filtering by it must still only show A's.
    await seedConversations(t.prisma, B.id, { conversations: 1, messages: 2, feedbackEvery: 1, sessionId: 'shared-session' });
    // A again, after B: A's rows lie on both sides of B's in every order (time, updatedAt), so a
    // cursor that positioned A's pages by a B row would show.
    // (Two on each side at least: Prisma skips the first row after a cursor, assuming it is the cursor's.)
    A.conversations.push(...(await seedConversations(t.prisma, A.id, { conversations: 2, messages: 4, sessionId: 'shared-session' })));
    for (const n of [1, 2]) {
      const late = await t.prisma.knowledgeEntry.create({
        data: { productId: A.id, title: `Alpha late ${n} alphaword`, content: 'About refunds, later.', tags: ['late'] },
      });
      A.knowledgeIds.push(late.id);
    }
    bBefore = await snapshotB();
    bIds = new Set<string>();
    for (const row of [bBefore.product, ...bBefore.conversations, ...bBefore.messages, ...bBefore.feedback, ...bBefore.knowledge]) {
      bIds.add(row.id);
    }
    for (const [type, rows] of [
      ['Product', [bBefore.product]],
      ['Conversation', bBefore.conversations],
      ['Message', bBefore.messages],
      ['Feedback', bBefore.feedback],
      ['KnowledgeEntry', bBefore.knowledge],
    ] as const) {
      for (const row of rows) bIds.add(gid(type, row.id));
    }
  });
  afterAll(() => t?.dispose());

  /** Nothing of B anywhere in a response: no id (raw or global), no word, no session id. */
  function expectNothingOfB(result: GqlResult) {
    // What went back to the caller (the statements' arguments are what the caller sent, B's ids among them).
    for (const s of strings({ status: result.status, data: result.data, errors: result.errors, sql: result.sql })) {
      expect(bIds.has(s), `B's id ${s} leaked`).toBe(false);
      expect(s).not.toContain(B_WORD);
      expect(s).not.toContain('Bravo');
      expect(s).not.toContain(B_SESSION);
    }
  }

  /**
   * Sends `query` as A with B's id, then with a random id of the same type, and
   * requires the two responses to be identical. Returns B's response.
   */
  async function sameAsNonexistent(
    query: string,
    variables: (id: string) => Record<string, unknown>,
    bId: string,
    /** A type name (global id), 'raw' (the bare uuid) or how to encode the uuid. */
    encoding: string | ((uuid: string) => string),
  ): Promise<GqlResult> {
    const encode = typeof encoding === 'function' ? encoding : encoding === 'raw' ? (u: string) => u : (u: string) => gid(encoding, u);
    const random = uuidv7();
    const asB = await t.gql(query, { key: A.key, variables: variables(encode(bId)) });
    const asRandom = await t.gql(query, { key: A.key, variables: variables(encode(random)) });
    // An error may echo the value sent ("Invalid global ID: …"): that says nothing about existence.
    const shape = (r: GqlResult, sent: string) => ({
      status: r.status,
      data: r.data,
      errors: JSON.parse(
        JSON.stringify(r.errors ?? null)
          .split(sent)
          .join('<sent>'),
      ),
      statements: r.sql.length,
    });
    expect(shape(asB, encode(bId))).toEqual(shape(asRandom, encode(random)));
    expectNothingOfB(asB);
    return asB;
  }

  describe("reads by id: B's ids look exactly like ids that do not exist", () => {
    const NODE = /* GraphQL */ `
      query Node($id: ID!) {
        node(id: $id) {
          __typename
          id
          ... on Product { name keyPrefix metadata stats { conversationCount messageCount } }
          ... on Conversation { sessionId title messageCount messages(first: 10) { edges { node { id content } } } }
          ... on Message { role content conversation { id sessionId } feedback { id rating } }
          ... on Feedback { rating comment message { id content conversation { id } } }
          ... on KnowledgeEntry { entryTitle: title content tags }
        }
      }
    `;
    const nodeCases = () =>
      [
        ['Product', B.id, A.id],
        ['Conversation', B.conversations[0]!.id, A.conversations[0]!.id],
        ['Message', B.userMessage, A.userMessage],
        ['Message', B.ratedReply, A.ratedReply],
        ['Feedback', B.feedbackId, A.feedbackId],
        ['KnowledgeEntry', B.knowledgeIds[0]!, A.knowledgeIds[0]!],
      ] as const;

    it('node(id) for every type: A sees its own rows (the probe works) and null for B’s, same as random', async () => {
      for (const [type, bId, aId] of nodeCases()) {
        const own = await t.gql(NODE, { key: A.key, variables: { id: gid(type, aId) } });
        expect(own.errors, type).toBeUndefined();
        expect(own.data.node, type).toMatchObject({ __typename: type, id: gid(type, aId) });

        const r = await sameAsNonexistent(NODE, (id) => ({ id }), bId, type);
        expect(r.errors, type).toBeUndefined();
        expect(r.data, type).toEqual({ node: null });
      }
    });

    it("nodes(ids) mixing A's and B's ids (one batch) returns A's rows and null for every B id", async () => {
      const mixed = nodeCases().flatMap(([type, bId, aId]) => [gid(type, aId), gid(type, bId), gid(type, uuidv7())]);
      const r = await t.gql(`query Nodes($ids: [ID!]!) { nodes(ids: $ids) { __typename id } }`, { key: A.key, variables: { ids: mixed } });
      expect(r.errors).toBeUndefined();
      nodeCases().forEach(([type, , aId], i) => {
        expect(r.data.nodes[3 * i], type).toEqual({ __typename: type, id: gid(type, aId) });
        expect(r.data.nodes[3 * i + 1], type).toBeNull();
        expect(r.data.nodes[3 * i + 2], type).toBeNull();
      });
      expectNothingOfB(r);

      // Only B's ids, through nodes(): same as random ones.
      for (const [type, bId] of nodeCases()) {
        const only = await sameAsNonexistent(`query Nodes($ids: [ID!]!) { nodes(ids: $ids) { id } }`, (id) => ({ ids: [id] }), bId, type);
        expect(only.data).toEqual({ nodes: [null] });
      }
    });

    it("aliased node() fields in one request (the loader's batching path) never resolve B's rows", async () => {
      const cases = nodeCases();
      const query = `query Many(${cases.map((_, i) => `$a${i}: ID!, $b${i}: ID!`).join(', ')}) {
        ${cases.map((_, i) => `a${i}: node(id: $a${i}) { id } b${i}: node(id: $b${i}) { id ... on Message { content } ... on Conversation { sessionId } }`).join('\n')}
      }`;
      const variables = Object.fromEntries(
        cases.flatMap(([type, bId, aId], i) => [
          [`a${i}`, gid(type, aId)],
          [`b${i}`, gid(type, bId)],
        ]),
      );
      const r = await t.gql(query, { key: A.key, variables });
      expect(r.errors).toBeUndefined();
      cases.forEach(([type, , aId], i) => {
        expect(r.data[`a${i}`], type).toEqual({ id: gid(type, aId) });
        expect(r.data[`b${i}`], type).toBeNull();
      });
      expectNothingOfB(r);
    });

    it('a B uuid under another type name is just as absent', async () => {
      const NODE_ID = `query Node($id: ID!) { node(id: $id) { id } }`;
      for (const [type, bId] of [
        ['Conversation', B.userMessage],
        ['Message', B.conversations[0]!.id],
        ['Feedback', B.ratedReply],
        ['KnowledgeEntry', B.id],
        ['Product', B.conversations[0]!.id],
      ] as const) {
        const r = await sameAsNonexistent(NODE_ID, (id) => ({ id }), bId, type);
        expect(r.data).toEqual({ node: null });
      }
    });

    it('conversation(id) with B’s conversation is null, same as a random id', async () => {
      const Q = /* GraphQL */ `
        query C($id: ID!) {
          conversation(id: $id) { id sessionId title messageCount lastMessage { id content } messages(first: 50) { edges { node { id content feedback { rating } } } } }
        }
      `;
      const own = await t.gql(Q, { key: A.key, variables: { id: gid('Conversation', A.conversations[0]!.id) } });
      expect(own.data.conversation.id).toBe(gid('Conversation', A.conversations[0]!.id));
      for (const c of B.conversations) {
        const r = await sameAsNonexistent(Q, (id) => ({ id }), c.id, 'Conversation');
        expect(r.errors).toBeUndefined();
        expect(r.data).toEqual({ conversation: null });
      }
    });

    it('a malformed id, or a B id sent raw (not a global id), is BAD_USER_INPUT either way', async () => {
      const r = await sameAsNonexistent(`query C($id: ID!) { conversation(id: $id) { id } }`, (id) => ({ id }), B.conversations[0]!.id, 'raw');
      expect(r.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
      const n = await sameAsNonexistent(`query N($id: ID!) { node(id: $id) { id } }`, (id) => ({ id }), B.conversations[0]!.id, 'raw');
      expect(n.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    });
  });

  describe("writes by id: B's ids fail exactly like ids that do not exist, and change nothing", () => {
    const SEND = /* GraphQL */ `
      mutation Send($id: ID!) { sendMessage(input: { conversationId: $id, content: "injected by A" }) { message { id content conversation { id } } } }
    `;
    const FEEDBACK = /* GraphQL */ `
      mutation Rate($id: ID!) { submitFeedback(input: { messageId: $id, rating: UP, comment: "by A" }) { id rating message { id content } } }
    `;
    const UPDATE = /* GraphQL */ `
      mutation Update($id: ID!) { updateKnowledge(input: { id: $id, title: "pwned by A", content: "pwned", tags: ["pwned"] }) { id title content } }
    `;
    const DELETE = /* GraphQL */ `mutation Delete($id: ID!) { deleteKnowledge(id: $id) }`;

    function expectNotFound(r: GqlResult, what: string, path: string) {
      expect(r.data).toBeNull();
      expect(r.errors).toHaveLength(1);
      expect(r.errors![0]).toMatchObject({ message: `${what} not found`, path: [path], extensions: { code: 'NOT_FOUND' } });
    }

    it('sendMessage into B’s conversation: NOT_FOUND like a random id', async () => {
      for (const c of B.conversations) {
        expectNotFound(await sameAsNonexistent(SEND, (id) => ({ id }), c.id, 'Conversation'), 'Conversation', 'sendMessage');
      }
    });

    it('submitFeedback on B’s messages (rated reply, unrated reply, user message): NOT_FOUND like a random id', async () => {
      for (const m of [B.ratedReply, B.unratedReply, B.userMessage]) {
        expectNotFound(await sameAsNonexistent(FEEDBACK, (id) => ({ id }), m, 'Message'), 'Message', 'submitFeedback');
      }
      // Rating a user message of A's own is a different error (the check that hides B is not weaker than this one).
      const ownUser = await t.gql(FEEDBACK, { key: A.key, variables: { id: gid('Message', A.userMessage) } });
      expect(ownUser.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    });

    it('updateKnowledge on B’s entry: NOT_FOUND like a random id', async () => {
      for (const k of B.knowledgeIds) {
        expectNotFound(await sameAsNonexistent(UPDATE, (id) => ({ id }), k, 'KnowledgeEntry'), 'KnowledgeEntry', 'updateKnowledge');
      }
    });

    it('deleteKnowledge on B’s entry: NOT_FOUND like a random id', async () => {
      for (const k of B.knowledgeIds) {
        expectNotFound(await sameAsNonexistent(DELETE, (id) => ({ id }), k, 'KnowledgeEntry'), 'KnowledgeEntry', 'deleteKnowledge');
      }
    });

    it('the same writes on A’s own ids work (the probes are real)', async () => {
      const send = await t.gql(SEND, { key: A.key, variables: { id: gid('Conversation', A.conversations[1]!.id) } });
      expect(send.errors).toBeUndefined();
      expect(send.data.sendMessage.message.conversation.id).toBe(gid('Conversation', A.conversations[1]!.id));
      const rate = await t.gql(FEEDBACK, { key: A.key, variables: { id: gid('Message', A.conversations[1]!.messageIds[3]!) } });
      expect(rate.errors).toBeUndefined();
      const update = await t.gql(UPDATE, { key: A.key, variables: { id: gid('KnowledgeEntry', A.knowledgeIds[2]!) } });
      expect(update.data.updateKnowledge.title).toBe('pwned by A');
      const del = await t.gql(DELETE, { key: A.key, variables: { id: gid('KnowledgeEntry', A.knowledgeIds[2]!) } });
      expect(del.data.deleteKnowledge).toBe(gid('KnowledgeEntry', A.knowledgeIds[2]!));
      A.knowledgeIds.splice(2, 1);
    });

    it('rotateProductKey on B with A’s key is FORBIDDEN (same as on a random or on A’s own id), and B’s key still works', async () => {
      const ROTATE = `mutation R($id: ID!) { rotateProductKey(id: $id) { key product { id } } }`;
      const r = await sameAsNonexistent(ROTATE, (id) => ({ id }), B.id, 'Product');
      expect(r.status).toBe(403);
      expect(r.data).toBeNull();
      expect(r.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      const own = await t.gql(ROTATE, { key: A.key, variables: { id: gid('Product', A.id) } });
      expect(own.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      // And through the other header.
      const header = await t.gql(ROTATE, { headers: { 'x-product-key': A.key }, variables: { id: gid('Product', B.id) } });
      expect(header.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect((await t.gql(`{ viewer { id } }`, { key: B.key })).data.viewer.id).toBe(gid('Product', B.id));
      expect((await t.gql(`{ viewer { id } }`, { key: A.key })).data.viewer.id).toBe(gid('Product', A.id));
    });

    it('createProduct with a product key is FORBIDDEN (a tenant cannot mint tenants)', async () => {
      const before = await t.prisma.product.count();
      const r = await t.gql(`mutation { createProduct(input: { name: "by A" }) { key } }`, { key: A.key });
      expect(r.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      expect(await t.prisma.product.count()).toBe(before);
    });

    it("after all the attacks, B's rows are exactly as before", async () => {
      const after = await snapshotB();
      expect(after).toEqual(bBefore);
      // Spelled out for the reader: counters, contents, ratings, knowledge.
      expect(after.conversations.map((c) => c.messageCount)).toEqual(bBefore.conversations.map((c) => c.messageCount));
      expect(after.messages.some((m) => m.content.includes('injected by A'))).toBe(false);
      expect(after.feedback.some((f) => f.comment === 'by A')).toBe(false);
      expect(after.knowledge.some((k) => k.title.includes('pwned'))).toBe(false);
      expect(after.knowledge).toHaveLength(3);
      // Nothing A wrote landed under B's product id by another route.
      expect(await t.prisma.feedback.count({ where: { productId: B.id, comment: 'by A' } })).toBe(0);
      expect(await t.prisma.message.count({ where: { content: 'injected by A', conversation: { productId: B.id } } })).toBe(0);
    });
  });

  describe("cursors: a cursor made from B's row id pages exactly like one made from a missing id", () => {
    // Cursors are base64 of the row id: anyone can forge one for an id they hold. Prisma finds
    // the cursor row by id alone, so without a guard A's page would be positioned by B's row —
    // an existence oracle, and by bisection against A's own rows, B's activity times.
    const A_CONVERSATIONS = `query Q($c: String) { conversations(first: 50, after: $c) { edges { cursor node { id } } pageInfo { hasNextPage } } }`;
    const A_CONVERSATIONS_BEFORE = `query Q($c: String) { conversations(last: 50, before: $c) { edges { node { id } } } }`;
    const VIEWER_CONVERSATIONS = `query Q($c: String) { viewer { conversations(first: 50, after: $c) { edges { node { id } } } } }`;
    const VIEWER_CONVERSATIONS_BEFORE = `query Q($c: String) { viewer { conversations(last: 50, before: $c) { edges { node { id } } } } }`;
    const VIEWER_SESSION = `query Q($c: String) { viewer { conversations(first: 50, after: $c, sessionId: "shared-session") { edges { node { id } } } } }`;
    const VIEWER_KNOWLEDGE = `query Q($c: String) { viewer { knowledge(first: 50, after: $c) { edges { node { id } } } } }`;
    const VIEWER_KNOWLEDGE_BEFORE = `query Q($c: String) { viewer { knowledge(last: 50, before: $c) { edges { node { id } } } } }`;
    const NODE_PRODUCT = `query Q($p: ID!, $c: String) { node(id: $p) { ... on Product { conversations(first: 50, after: $c) { edges { node { id } } } knowledge(first: 50, after: $c) { edges { node { id } } } } } }`;
    const MESSAGES = `query Q($id: ID!, $c: String) { conversation(id: $id) { messages(first: 50, after: $c) { edges { node { id } } } } }`;
    const MESSAGES_BEFORE = `query Q($id: ID!, $c: String) { conversation(id: $id) { messages(last: 50, before: $c) { edges { node { id } } } } }`;

    function expectEmptyEverywhere(r: GqlResult) {
      expect(r.errors).toBeUndefined();
      // Every connection in the response is empty: nothing was positioned by B's row.
      for (const s of strings(r.data)) expect(A.knowledgeIds.map((id) => gid('KnowledgeEntry', id))).not.toContain(s);
      const edges = JSON.stringify(r.data).match(/"edges":\[[^\]]/g);
      expect(edges, JSON.stringify(r.data)).toBeNull();
    }

    it("A's own cursors page through all of A's rows (the guard does not break paging)", async () => {
      const seen: string[] = [];
      let after: string | null = null;
      for (let i = 0; i < 10; i++) {
        const page: GqlResult = await t.gql(
          `query Q($c: String) { viewer { conversations(first: 1, after: $c) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } } } }`,
          {
            key: A.key,
            variables: { c: after },
          },
        );
        expect(page.errors).toBeUndefined();
        seen.push(...page.data.viewer.conversations.edges.map((e: any) => fromGid(e.node.id)));
        if (!page.data.viewer.conversations.pageInfo.hasNextPage) break;
        after = page.data.viewer.conversations.pageInfo.endCursor;
      }
      expect(seen.sort()).toEqual(A.conversations.map((c) => c.id).sort());
      const k1 = await t.gql(`{ viewer { knowledge(first: 1) { pageInfo { endCursor } } } }`, { key: A.key });
      const k2 = await t.gql(VIEWER_KNOWLEDGE, { key: A.key, variables: { c: k1.data.viewer.knowledge.pageInfo.endCursor } });
      expect(k2.errors).toBeUndefined();
      expect(k2.data.viewer.knowledge.edges).toHaveLength(A.knowledgeIds.length - 1);
    });

    it('viewer.conversations and viewer.knowledge (after and before, with a filter, and through node(Product))', async () => {
      for (const c of B.conversations) {
        for (const q of [VIEWER_CONVERSATIONS, VIEWER_CONVERSATIONS_BEFORE, VIEWER_SESSION]) {
          expectEmptyEverywhere(await sameAsNonexistent(q, (x) => ({ c: x }), c.id, cursorOf));
        }
      }
      for (const k of B.knowledgeIds) {
        for (const q of [VIEWER_KNOWLEDGE, VIEWER_KNOWLEDGE_BEFORE]) {
          expectEmptyEverywhere(await sameAsNonexistent(q, (x) => ({ c: x }), k, cursorOf));
        }
      }
      for (const id of [B.conversations[0]!.id, B.knowledgeIds[0]!]) {
        expectEmptyEverywhere(await sameAsNonexistent(NODE_PRODUCT, (x) => ({ p: gid('Product', A.id), c: x }), id, cursorOf));
      }
    });

    it('Conversation.messages of A’s conversations with a cursor of B’s message (after and before)', async () => {
      for (const conversation of [A.conversations[0]!, A.conversations.at(-1)!]) {
        for (const q of [MESSAGES, MESSAGES_BEFORE]) {
          for (const m of [B.userMessage, B.ratedReply]) {
            const r = await sameAsNonexistent(q, (x) => ({ id: gid('Conversation', conversation.id), c: x }), m, cursorOf);
            expect(r.errors).toBeUndefined();
            expect(r.data.conversation.messages.edges).toEqual([]);
          }
        }
      }
    });

    it('a cursor that is not one (garbage, not a uuid) is BAD_USER_INPUT, never an internal error', async () => {
      for (const c of ['garbage', Buffer.from('GPC:S:not-a-uuid').toString('base64'), Buffer.from('GPC:N:5').toString('base64')]) {
        for (const q of [VIEWER_CONVERSATIONS, VIEWER_KNOWLEDGE]) {
          const r = await t.gql(q, { key: A.key, variables: { c } });
          expect(r.errors?.[0]?.extensions?.code, `${q} ${c}`).toBe('BAD_USER_INPUT');
        }
      }
    });

    it('Query.conversations (after and before)', async () => {
      for (const c of B.conversations) {
        for (const q of [A_CONVERSATIONS, A_CONVERSATIONS_BEFORE]) {
          expectEmptyEverywhere(await sameAsNonexistent(q, (x) => ({ c: x }), c.id, cursorOf));
        }
      }
      for (const c of ['garbage', Buffer.from('GPC:S:not-a-uuid').toString('base64')]) {
        const r = await t.gql(A_CONVERSATIONS, { key: A.key, variables: { c } });
        expect(r.errors?.[0]?.extensions?.code, c).toBe('BAD_USER_INPUT');
      }
    });

    it("Query.conversations with the cursors B was issued (they carry B's place in B's list): empty pages, like a missing row's", async () => {
      const issuedToB = await t.gql(A_CONVERSATIONS, { key: B.key, variables: { c: null } });
      const cursors: string[] = issuedToB.data.conversations.edges.map((e: any) => e.cursor);
      expect(cursors.length).toBeGreaterThanOrEqual(B.conversations.length);
      for (const c of cursors) {
        for (const q of [A_CONVERSATIONS, A_CONVERSATIONS_BEFORE]) {
          const r = await t.gql(q, { key: A.key, variables: { c } });
          expectEmptyEverywhere(r);
          expect(r.sql.length, 'no statement beyond the key').toBeLessThanOrEqual(1);
        }
      }
    });

    it("Query.conversations with a cursor A forges from B's place but A's product: A's own rows only", async () => {
      const issuedToA = await t.gql(A_CONVERSATIONS, { key: A.key, variables: { c: null } });
      const own = issuedToA.data.conversations.edges[0].cursor as string;
      const [, , productId] = JSON.parse(Buffer.from(own, 'base64').toString('utf8').slice('GPC:T:'.length)) as string[];
      const row = await t.prisma.conversation.findUniqueOrThrow({ where: { id: B.conversations[0]!.id } });
      const forged = formatPrismaCursor({ at: row.lastMessageAt, id: row.id, productId: productId!.slice(2) }, ['at', 'id', 'productId']);
      for (const q of [A_CONVERSATIONS, A_CONVERSATIONS_BEFORE]) {
        const r = await t.gql(q, { key: A.key, variables: { c: forged } });
        expect(r.errors).toBeUndefined();
        expectNothingOfB(r);
        for (const e of r.data.conversations.edges) expect(A.conversations.map((c) => c.id)).toContain(fromGid(e.node.id));
      }
      // A place that is not one (a date that is not a date, an id that is not a uuid) is the caller's mistake.
      for (const place of [
        { at: 'yesterday', id: row.id },
        { at: row.lastMessageAt, id: 'not-a-uuid' },
        { at: row.lastMessageAt, id: 5 },
      ]) {
        const c = formatPrismaCursor({ ...place, productId: productId!.slice(2) }, ['at', 'id', 'productId']);
        const r = await t.gql(A_CONVERSATIONS, { key: A.key, variables: { c } });
        expect(r.errors?.[0]?.extensions?.code, JSON.stringify(place)).toBe('BAD_USER_INPUT');
      }
    });
  });

  describe('lists and aggregates never include B', () => {
    it("conversations (with and without sessionId, including B's session id) list only A's", async () => {
      const Q = `query C($s: String) { conversations(first: 100, sessionId: $s) { edges { node { id sessionId title messages(first: 100) { edges { node { id content } } } } } } }`;
      const all = await t.gql(Q, { key: A.key });
      expect(all.errors).toBeUndefined();
      expect(all.data.conversations.edges.map((e: any) => fromGid(e.node.id)).sort()).toEqual(A.conversations.map((c) => c.id).sort());
      expectNothingOfB(all);
      const shared = await t.gql(Q, { key: A.key, variables: { s: 'shared-session' } });
      expect(shared.data.conversations.edges).toHaveLength(A.conversations.length);
      expectNothingOfB(shared);
      const secret = await t.gql(Q, { key: A.key, variables: { s: B_SESSION } });
      expect(secret.data.conversations.edges).toEqual([]);
    });

    it("searchKnowledge for B's words finds nothing; for shared words finds only A's", async () => {
      const Q = `query S($q: String!) { searchKnowledge(query: $q, first: 50) { score entry { id title content tags } } }`;
      for (const q of [B_WORD, `${B_WORD} refunds`, 'Bravo', `${B_WORD} | refunds`, `'${B_WORD}'`]) {
        const r = await t.gql(Q, { key: A.key, variables: { q } });
        expect(r.errors, q).toBeUndefined();
        expectNothingOfB(r);
        for (const hit of r.data.searchKnowledge) expect(A.knowledgeIds).toContain(fromGid(hit.entry.id));
      }
      expect((await t.gql(Q, { key: A.key, variables: { q: B_WORD } })).data.searchKnowledge).toEqual([]);
      const shared = await t.gql(Q, { key: A.key, variables: { q: 'refunds shipping' } });
      expect(shared.data.searchKnowledge.length).toBeGreaterThan(0);
      // The same search as B does find B's entries: the words are really there.
      const asB = await t.gql(Q, { key: B.key, variables: { q: B_WORD } });
      expect(asB.data.searchKnowledge).toHaveLength(3);
    });

    it('viewer.knowledge and viewer.conversations list only A’s rows', async () => {
      const r = await t.gql(
        `{ viewer { id knowledge(first: 100) { edges { node { id title } } } conversations(first: 100) { edges { node { id messages(first: 100) { edges { node { id feedback { id } } } } } } } } }`,
        { key: A.key },
      );
      expect(r.errors).toBeUndefined();
      expect(r.data.viewer.knowledge.edges.map((e: any) => fromGid(e.node.id)).sort()).toEqual([...A.knowledgeIds].sort());
      expect(r.data.viewer.conversations.edges).toHaveLength(A.conversations.length);
      expectNothingOfB(r);
    });

    it("viewer.stats counts A's rows only", async () => {
      const r = await t.gql(`{ viewer { stats { conversationCount messageCount feedbackUp feedbackDown } } }`, { key: A.key });
      const where = { productId: A.id };
      const messages = await t.prisma.message.count({ where: { conversation: where } });
      expect(r.data.viewer.stats).toEqual({
        conversationCount: await t.prisma.conversation.count({ where }),
        messageCount: messages,
        feedbackUp: await t.prisma.feedback.count({ where: { ...where, rating: 'UP' } }),
        feedbackDown: await t.prisma.feedback.count({ where: { ...where, rating: 'DOWN' } }),
      });
      // B has more of everything; none of it is counted.
      expect(r.data.viewer.stats.conversationCount).toBe(A.conversations.length);
      const bStats = await t.gql(`{ viewer { stats { conversationCount } } }`, { key: B.key });
      expect(bStats.data.viewer.stats.conversationCount).toBe(B.conversations.length + 1);
    });

    it('nested traversal from A’s rows never reaches B (Message.conversation, Feedback.message, lastMessage)', async () => {
      const r = await t.gql(
        `query N($m: ID!, $f: ID!, $c: ID!) {
          m: node(id: $m) { ... on Message { id conversation { id lastMessage { id conversation { id } } messages(first: 100) { edges { node { id feedback { id message { id conversation { id } } } } } } } } }
          f: node(id: $f) { ... on Feedback { id message { id conversation { id messages(first: 100) { edges { node { id } } } } } } }
          c: conversation(id: $c) { id lastMessage { id feedback { message { conversation { id } } } } }
        }`,
        {
          key: A.key,
          variables: { m: gid('Message', A.ratedReply), f: gid('Feedback', A.feedbackId), c: gid('Conversation', A.conversations[0]!.id) },
        },
      );
      expect(r.errors).toBeUndefined();
      expect(r.data.m.conversation.id).toBe(gid('Conversation', A.conversations[0]!.id));
      expect(r.data.f.message.id).toBe(gid('Message', A.ratedReply));
      expectNothingOfB(r);
    });

    it('the Product node: A sees itself only, never B (also under another case of the uuid)', async () => {
      const Q = `query P($id: ID!) { node(id: $id) { id ... on Product { name } } }`;
      const own = await t.gql(Q, { key: A.key, variables: { id: gid('Product', A.id) } });
      expect(own.data.node).toEqual({ id: gid('Product', A.id), name: 'Alpha' });
      for (const id of [B.id, B.id.toUpperCase()]) {
        const r = await sameAsNonexistent(Q, (x) => ({ id: x }), id, 'Product');
        expect(r.data).toEqual({ node: null });
      }
    });
  });

  describe('without a key, ids of any product reveal nothing', () => {
    it('node/conversation and every id-taking mutation refuse with UNAUTHENTICATED, same for B and random ids', async () => {
      const probes: [string, string, string][] = [
        [`query($id: ID!) { node(id: $id) { id } }`, 'Conversation', B.conversations[0]!.id],
        [`query($id: ID!) { node(id: $id) { id } }`, 'Message', B.ratedReply],
        [`query($id: ID!) { node(id: $id) { id } }`, 'Feedback', B.feedbackId],
        [`query($id: ID!) { node(id: $id) { id } }`, 'KnowledgeEntry', B.knowledgeIds[0]!],
        [`query($id: ID!) { node(id: $id) { id } }`, 'Product', B.id],
        [`query($id: ID!) { conversation(id: $id) { id } }`, 'Conversation', B.conversations[0]!.id],
        [
          `mutation($id: ID!) { sendMessage(input: { conversationId: $id, content: "x" }) { message { id } } }`,
          'Conversation',
          B.conversations[0]!.id,
        ],
        [`mutation($id: ID!) { submitFeedback(input: { messageId: $id, rating: UP }) { id } }`, 'Message', B.ratedReply],
        [`mutation($id: ID!) { updateKnowledge(input: { id: $id, title: "x" }) { id } }`, 'KnowledgeEntry', B.knowledgeIds[0]!],
        [`mutation($id: ID!) { deleteKnowledge(id: $id) }`, 'KnowledgeEntry', B.knowledgeIds[0]!],
      ];
      for (const [query, type, bId] of probes) {
        const asB = await t.gql(query, { variables: { id: gid(type, bId) } });
        const asRandom = await t.gql(query, { variables: { id: gid(type, uuidv7()) } });
        expect({ ...asB, sql: asB.sql.length }, `${type} ${query}`).toEqual({ ...asRandom, sql: asRandom.sql.length });
        expect(asB.errors?.[0]?.extensions?.code, `${type} ${query}`).toBe('UNAUTHENTICATED');
        expect(asB.data?.node ?? asB.data?.conversation ?? null).toBeNull();
      }
      expect(await snapshotB()).toEqual(bBefore);
    });
  });
});
