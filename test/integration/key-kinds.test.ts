import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { gid, seedConversations } from '../helpers/fixtures.js';
import { CONVERSATION_EVENTS, PRODUCT_FEEDBACK, disposeClients, eventually, liveClient, openSse, subscribe } from '../helpers/live.js';
import { migrate, readMigrations } from '../../src/infra/migrate.js';
import { issueConversationToken } from '../../src/services/conversation-tokens.js';
import { uuidv7 } from '../../src/services/ids.js';
import { appendMessage } from '../../src/services/messages.js';

// Issue 16 point 1, attacked from the outside: a publishable key (the one a web
// page shows to everyone) and conversation tokens, against every operation,
// every other conversation and every other product.
//
// Decisions asserted here:
// - a field a publishable key may not use                     -> FORBIDDEN (403), nothing written
// - a conversation named by id that the token does not open   -> FORBIDDEN (whether or not it exists)
// - a row found by id (node, nodes, submitFeedback's message) -> as missing as another product's (null / NOT_FOUND)
// - a forged, tampered, expired or foreign token              -> UNAUTHENTICATED (401), the whole request

const KEY_KINDS_MIGRATION = '20261220000000_key_kinds';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
const uuidOf = (globalId: string) => Buffer.from(globalId, 'base64').toString('utf8').split(':')[1]!;

const START = /* GraphQL */ `mutation($s: String!) { startConversation(input: { sessionId: $s }) { id sessionId conversationToken messages(first: 5) { nodes { id } } } }`;
const READ = /* GraphQL */ `
  query($id: ID!) { conversation(id: $id) { id title messages(first: 20) { nodes { id role content conversation { id } feedback { id rating } sources { id } } } } }
`;
const SEND = /* GraphQL */ `mutation($c: ID!, $text: String!) { sendMessage(input: { conversationId: $c, content: $text }) { message { id conversation { id } } reply { id role } } }`;
const TYPING = /* GraphQL */ `mutation($c: ID!) { setTyping(input: { conversationId: $c, isTyping: true }) }`;
const RATE = /* GraphQL */ `mutation($m: ID!) { submitFeedback(input: { messageId: $m, rating: UP, comment: "from the widget" }) { id rating message { id } } }`;
const NODE = /* GraphQL */ `query($id: ID!) { node(id: $id) { id __typename } }`;
const NODES = /* GraphQL */ `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`;
const SEARCH = /* GraphQL */ `query { searchKnowledge(query: "refunds") { entry { id title } } }`;
const SET_SEARCH = /* GraphQL */ `mutation($id: ID!, $on: Boolean!) { updateProduct(input: { id: $id, publishableSearch: $on }) { publishableSearch } }`;
const ROTATE = /* GraphQL */ `mutation($id: ID!, $kind: KeyKind!) { rotateProductKey(id: $id, kind: $kind) { key kind product { keyPrefix publishableKeyPrefix } } }`;

/** Every operation a publishable key may not use, with variables aimed at the attacker's own product. */
function forbiddenOperations(own: { productId: string; knowledgeId: string; conversationId: string }) {
  const entry = gid('KnowledgeEntry', own.knowledgeId);
  const product = gid('Product', own.productId);
  return [
    ['viewer', `{ viewer { id name stats { conversationCount } } }`, {}],
    ['viewer.conversations', `{ viewer { conversations(first: 5) { nodes { id } } } }`, {}],
    ['conversations', `{ conversations(first: 5) { nodes { id messages(first: 5) { nodes { content } } } } }`, {}],
    ['searchKnowledge', SEARCH, {}],
    ['products', `{ products(first: 5) { nodes { id } } }`, {}],
    ['cacheStats', `{ cacheStats { cache } }`, {}],
    ['addKnowledge', `mutation { addKnowledge(input: { title: "t", content: "c" }) { id } }`, {}],
    ['addKnowledgeBatch', `mutation { addKnowledgeBatch(input: { entries: [{ title: "t", content: "c" }] }) { id } }`, {}],
    ['updateKnowledge', `mutation($id: ID!) { updateKnowledge(input: { id: $id, title: "defaced" }) { id } }`, { id: entry }],
    ['deleteKnowledge', `mutation($id: ID!) { deleteKnowledge(id: $id) }`, { id: entry }],
    ['createProduct', `mutation { createProduct(input: { name: "x" }) { key } }`, {}],
    ['rotateProductKey', `mutation($id: ID!) { rotateProductKey(id: $id) { key } }`, { id: product }],
    ['updateProduct', `mutation($id: ID!) { updateProduct(input: { id: $id, publishableSearch: true }) { id } }`, { id: product }],
  ] as const;
}

function expectCode(result: GqlResult, code: string, status?: number) {
  expect(result.errors?.length, JSON.stringify(result)).toBeGreaterThan(0);
  for (const error of result.errors!) expect(error.extensions?.code, JSON.stringify(result.errors)).toBe(code);
  if (status !== undefined) expect(result.status).toBe(status);
  // Nothing alongside the error: no data, or a nullable root field's null.
  const data = (result.data ?? {}) as Record<string, unknown>;
  expect(
    Object.values(data).every((value) => value === null),
    JSON.stringify(data),
  ).toBe(true);
}

function ok<T = any>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}

describeEachDatabase('publishable keys and conversation tokens', (variant) => {
  let t: TestApp;
  let port: number;
  let A: { id: string; key: string; publishableKey: string };
  let B: { id: string; key: string; publishableKey: string };
  /** Two conversations started with A's publishable key, and their tokens. */
  let mine: { id: string; token: string };
  let neighbour: { id: string; token: string };
  /** A conversation the server made with A's secret key, with messages and a rating. */
  let server: { id: string; messageIds: string[]; feedbackId: string };
  let theirs: { id: string; token: string };
  let knowledgeId: string;

  /** A request with A's publishable key and, if given, a conversation token. */
  const widget = (query: string, variables: Record<string, unknown> = {}, token?: string, key = A.publishableKey) =>
    t.gql(query, { key, variables, headers: token ? { 'x-conversation-token': token } : {} });

  beforeAll(async () => {
    t = await createTestApp(variant);
    port = (await t.app.start(0, '127.0.0.1')).port;
    A = await t.product('Product A');
    B = await t.product('Product B');
    const start = async (key: string, session: string) => {
      const started = ok(await t.gql(START, { key, variables: { s: session } })).startConversation;
      return { id: started.id as string, token: started.conversationToken as string };
    };
    mine = await start(A.publishableKey, 'visitor-1');
    neighbour = await start(A.publishableKey, 'visitor-2');
    theirs = await start(B.publishableKey, 'visitor-b');
    const [seeded] = await seedConversations(t.prisma, A.id, { conversations: 1, messages: 4, feedbackEvery: 1, sessionId: 'server' });
    const feedback = await t.prisma.feedback.findFirstOrThrow({ where: { conversationId: seeded!.id } });
    server = { id: gid('Conversation', seeded!.id), messageIds: seeded!.messageIds, feedbackId: feedback.id };
    knowledgeId = (await t.prisma.knowledgeEntry.create({ data: { productId: A.id, title: 'Refunds', content: 'Refunds take 5 days.' } })).id;
  });
  afterEach(async () => {
    await disposeClients();
    await eventually(() => t.app.deps.pubsub.stats().streams === 0, 'no stream left open');
  });
  afterAll(() => t?.dispose());

  describe('the two kinds of key', () => {
    it('createProduct issues an sk_live_ secret key and a pk_pub_ publishable key, each stored as a hash in its own column', async () => {
      const r = ok(
        await t.gql(
          `mutation { createProduct(input: { name: "Kinds" }) { key kind publishableKey product { id keyPrefix publishableKeyPrefix } } }`,
          { admin: true },
        ),
      ).createProduct;
      expect(r.key).toMatch(/^sk_live_[A-Za-z0-9_-]{32}$/);
      expect(r.publishableKey).toMatch(/^pk_pub_[A-Za-z0-9_-]{32}$/);
      expect(r.kind).toBe('SECRET');
      expect(r.product.keyPrefix).toBe(r.key.slice(0, 12));
      expect(r.product.publishableKeyPrefix).toBe(r.publishableKey.slice(0, 11));
      const row = await t.prisma.product.findUniqueOrThrow({ where: { id: uuidOf(r.product.id) } });
      expect(row.keyHash).toBe(sha256(r.key));
      expect(row.publishableKeyHash).toBe(sha256(r.publishableKey));
      expect(JSON.stringify(row)).not.toContain(r.publishableKey.slice(11));
      // The secret key is the whole product; the publishable key is not.
      expect(ok(await t.gql(`{ viewer { name } }`, { key: r.key })).viewer.name).toBe('Kinds');
      expectCode(await t.gql(`{ viewer { name } }`, { key: r.publishableKey }), 'FORBIDDEN', 403);
    });

    it('the kind comes from the column a hash is in, never from the prefix', async () => {
      // A publishable key's random part behind the secret prefix (and the reverse) is no key at all.
      expectCode(await t.gql(`{ viewer { id } }`, { key: `sk_live_${A.publishableKey.slice('pk_pub_'.length)}` }), 'UNAUTHENTICATED', 401);
      expectCode(await t.gql(`{ viewer { id } }`, { key: `pk_pub_${A.key.slice('sk_live_'.length)}` }), 'UNAUTHENTICATED', 401);
      // A secret key stored in the publishable column is a publishable key, whatever its prefix says.
      const p = await t.product('Swapped');
      await t.prisma.product.update({ where: { id: p.id }, data: { keyHash: sha256(p.publishableKey), publishableKeyHash: sha256(p.key) } });
      expectCode(await t.gql(`{ viewer { id } }`, { key: p.key }), 'FORBIDDEN', 403);
      expect(ok(await t.gql(`{ viewer { id } }`, { key: p.publishableKey })).viewer.id).toBe(gid('Product', p.id));
    });
  });

  describe('what a publishable key may do', () => {
    it('startConversation returns a ct_ token; it is shown in that response only', async () => {
      expect(mine.token).toMatch(/^ct_[A-Za-z0-9_-]+$/);
      expect(mine.token).not.toBe(neighbour.token);
      const again = ok(await widget(`query($id: ID!) { conversation(id: $id) { id conversationToken } }`, { id: mine.id }, mine.token));
      expect(again.conversation).toEqual({ id: mine.id, conversationToken: null });
      // A secret key gets one too (a server may start the conversation and hand the page its token).
      const bySecret = ok(await t.gql(START, { key: A.key, variables: { s: 'server-started' } })).startConversation;
      expect(bySecret.conversationToken).toMatch(/^ct_/);
      expect(
        ok(await widget(`query($id: ID!) { conversation(id: $id) { id } }`, { id: bySecret.id }, bySecret.conversationToken)).conversation.id,
      ).toBe(bySecret.id);
    });

    it('with its token: reads its conversation, sends, types, rates, and finds it (and only it) by node', async () => {
      const sent = ok(await widget(SEND, { c: mine.id, text: 'How long do refunds take?' }, mine.token)).sendMessage;
      expect(sent.message.conversation.id).toBe(mine.id);
      expect(sent.reply.role).toBe('ASSISTANT');
      expect(ok(await widget(TYPING, { c: mine.id }, mine.token)).setTyping).toBe(true);
      const rated = ok(await widget(RATE, { m: sent.reply.id }, mine.token)).submitFeedback;
      expect(rated).toMatchObject({ rating: 'UP', message: { id: sent.reply.id } });
      const read = ok(await widget(READ, { id: mine.id }, mine.token)).conversation;
      expect(read.messages.nodes.map((m: any) => m.id)).toEqual([sent.message.id, sent.reply.id]);
      expect(read.messages.nodes.every((m: any) => m.conversation.id === mine.id)).toBe(true);
      for (const id of [mine.id, sent.message.id, sent.reply.id, rated.id]) {
        expect(ok(await widget(NODE, { id }, mine.token)).node.id).toBe(id);
      }
    });

    it('an idempotency key replayed with the publishable key never hands over a conversation the secret key started', async () => {
      const START_ONCE = `mutation($k: String!) { startConversation(input: { sessionId: "same", idempotencyKey: $k }) { id conversationToken } }`;
      const k = 'a1b2c3d4-same-key';
      const bySecret = ok(await t.gql(START_ONCE, { key: A.key, variables: { k } })).startConversation;
      const byWidget = ok(await widget(START_ONCE, { k })).startConversation;
      expect(byWidget.id).not.toBe(bySecret.id);
      // The widget's own retry is still a retry: the same conversation, and a token for it.
      const retried = ok(await widget(START_ONCE, { k })).startConversation;
      expect(retried.id).toBe(byWidget.id);
      expect(
        ok(await widget(`query($id: ID!) { conversation(id: $id) { id } }`, { id: retried.id }, retried.conversationToken)).conversation.id,
      ).toBe(byWidget.id);
    });

    it('without a token: starts conversations only', async () => {
      for (const [query, variables] of [
        [READ, { id: mine.id }],
        [SEND, { c: mine.id, text: 'hi' }],
        [TYPING, { c: mine.id }],
        [RATE, { m: gid('Message', server.messageIds[1]!) }],
      ] as const) {
        expectCode(await widget(query, variables), 'FORBIDDEN', 403);
      }
      expect(ok(await widget(NODE, { id: mine.id })).node).toBeNull();
    });

    it('everything else is FORBIDDEN, with or without a token, and changes nothing', async () => {
      const before = await t.prisma.knowledgeEntry.findMany({ where: { productId: A.id }, orderBy: { id: 'asc' } });
      const productBefore = await t.prisma.product.findUniqueOrThrow({ where: { id: A.id } });
      for (const [name, query, variables] of forbiddenOperations({ productId: A.id, knowledgeId, conversationId: mine.id })) {
        for (const token of [undefined, mine.token]) {
          const r = await widget(query, variables, token);
          expect(r.errors?.[0]?.extensions?.code, name).toBe('FORBIDDEN');
          expect(r.status, name).toBe(403);
          expect(
            Object.values(r.data ?? {}).every((value) => value === null),
            name,
          ).toBe(true);
        }
      }
      expect(await t.prisma.knowledgeEntry.findMany({ where: { productId: A.id }, orderBy: { id: 'asc' } })).toEqual(before);
      expect(await t.prisma.product.findUniqueOrThrow({ where: { id: A.id } })).toEqual(productBefore);
    });

    it('searchKnowledge opens to it only while the admin allows it', async () => {
      expectCode(await widget(SEARCH, {}, mine.token), 'FORBIDDEN', 403);
      expect(ok(await t.gql(SET_SEARCH, { admin: true, variables: { id: gid('Product', A.id), on: true } })).updateProduct.publishableSearch).toBe(
        true,
      );
      const hits = ok(await widget(SEARCH, {}, mine.token)).searchKnowledge;
      expect(hits.map((h: any) => h.entry.id)).toEqual([gid('KnowledgeEntry', knowledgeId)]);
      // B's publishable key is not opened by A's setting.
      expectCode(await widget(SEARCH, {}, undefined, B.publishableKey), 'FORBIDDEN', 403);
      ok(await t.gql(SET_SEARCH, { admin: true, variables: { id: gid('Product', A.id), on: false } }));
      expectCode(await widget(SEARCH, {}, mine.token), 'FORBIDDEN', 403);
    });
  });

  describe('a token opens its conversation and no other', () => {
    const missing = () => gid('Conversation', uuidv7());

    it('another conversation named by id is FORBIDDEN, exactly as one that does not exist', async () => {
      for (const other of [neighbour.id, server.id, theirs.id, missing()]) {
        for (const [query, variables] of [
          [READ, { id: other }],
          [SEND, { c: other, text: 'let me in' }],
          [TYPING, { c: other }],
        ] as const) {
          const r = await widget(query, variables, mine.token);
          expectCode(r, 'FORBIDDEN', 403);
          expect(r.errors![0]!.message).toBe((await widget(READ, { id: missing() }, mine.token)).errors![0]!.message);
        }
      }
      const serverMessages = await t.prisma.message.count({ where: { conversationId: uuidOf(server.id) } });
      expect(serverMessages).toBe(4);
    });

    it('node and nodes find nothing of other conversations, their messages and feedback, knowledge or the product', async () => {
      const others = [
        neighbour.id,
        server.id,
        theirs.id,
        ...server.messageIds.map((id) => gid('Message', id)),
        gid('Feedback', server.feedbackId),
        gid('KnowledgeEntry', knowledgeId),
        gid('Product', A.id),
        gid('Product', B.id),
      ];
      for (const id of others) {
        const r = await widget(NODE, { id }, mine.token);
        expect(r.errors, id).toBeUndefined();
        expect(r.data.node, id).toBeNull();
      }
      const r = ok(await widget(NODES, { ids: [mine.id, ...others] }, mine.token));
      expect(r.nodes).toEqual([{ id: mine.id }, ...others.map(() => null)]);
    });

    it('submitFeedback on another conversation’s reply is NOT_FOUND, as a missing message', async () => {
      const reply = gid('Message', server.messageIds[1]!);
      const before = await t.prisma.feedback.findMany({ where: { conversationId: uuidOf(server.id) } });
      const r = await widget(RATE, { m: reply }, mine.token);
      expectCode(r, 'NOT_FOUND');
      expect(r.errors![0]!.message).toBe((await widget(RATE, { m: gid('Message', uuidv7()) }, mine.token)).errors![0]!.message);
      expect(await t.prisma.feedback.findMany({ where: { conversationId: uuidOf(server.id) } })).toEqual(before);
    });

    it('walking from its own rows (Message.conversation, Conversation.messages, Feedback.message) stays in its conversation', async () => {
      const walk = ok(
        await widget(
          `query($id: ID!) { conversation(id: $id) { messages(first: 20) { nodes { conversation { id messages(first: 20) { nodes { id conversation { id } feedback { message { conversation { id } } } } } } } } } }`,
          { id: mine.id },
          mine.token,
        ),
      );
      const text = JSON.stringify(walk);
      for (const other of [neighbour.id, server.id, theirs.id]) expect(text).not.toContain(other);
      // A cursor of another conversation's messages positions nothing.
      const serverPage = ok(
        await t.gql(`query($id: ID!) { conversation(id: $id) { messages(first: 1) { pageInfo { endCursor } } } }`, {
          key: A.key,
          variables: { id: server.id },
        }),
      );
      const after = serverPage.conversation.messages.pageInfo.endCursor;
      const paged = ok(
        await widget(
          `query($id: ID!, $after: String) { conversation(id: $id) { messages(first: 5, after: $after) { nodes { id } } } }`,
          { id: mine.id, after },
          mine.token,
        ),
      );
      expect(paged.conversation.messages.nodes).toEqual([]);
    });

    it('a token of product B opens nothing of A, and no conversation of B with A’s key', async () => {
      // B's token with B's key: B's conversation only.
      expect(ok(await widget(READ, { id: theirs.id }, theirs.token, B.publishableKey)).conversation.id).toBe(theirs.id);
      expectCode(await widget(READ, { id: mine.id }, theirs.token, B.publishableKey), 'FORBIDDEN', 403);
      // B's token with A's key (and A's token with B's key): not signed for that product.
      expectCode(await widget(READ, { id: theirs.id }, theirs.token, A.publishableKey), 'UNAUTHENTICATED', 401);
      expectCode(await widget(READ, { id: mine.id }, mine.token, B.publishableKey), 'UNAUTHENTICATED', 401);
    });
  });

  describe('tokens that are not right are UNAUTHENTICATED, the whole request', () => {
    it('forged, tampered, truncated, re-encoded and expired tokens', async () => {
      const product = await t.prisma.product.findUniqueOrThrow({ where: { id: A.id } });
      const body = mine.token.slice(3);
      const flip = (s: string, i: number) => s.slice(0, i) + (s[i] === 'A' ? 'B' : 'A') + s.slice(i + 1);
      const otherSecret = { id: A.id, conversationTokenSecret: 'ab'.repeat(32) };
      const bad = [
        `ct_${Buffer.alloc(52).toString('base64url')}`,
        issueConversationToken(otherSecret, uuidOf(mine.id), 60_000),
        // Another conversation's id in the body, the MAC left as it was.
        'ct_' +
          Buffer.concat([Buffer.from(uuidOf(neighbour.id).replace(/-/g, ''), 'hex'), Buffer.from(body, 'base64url').subarray(16)]).toString(
            'base64url',
          ),
        `ct_${flip(body, 5)}`,
        `ct_${flip(body, 25)}`,
        `ct_${flip(body, body.length - 2)}`,
        mine.token.slice(0, -1),
        `${mine.token}A`,
        mine.token.replace('ct_', 'CT_'),
        'garbage',
        issueConversationToken(product, uuidOf(mine.id), -1),
        issueConversationToken(product, uuidOf(mine.id), 1_000, Date.now() - 2_000),
      ];
      for (const token of bad) {
        const r = await widget(READ, { id: mine.id }, token);
        expectCode(r, 'UNAUTHENTICATED', 401);
      }
      // A token of the right product and time still works (the list above is not refused for another reason).
      expect(ok(await widget(READ, { id: mine.id }, issueConversationToken(product, uuidOf(mine.id), 60_000))).conversation.id).toBe(mine.id);
    });

    it('a token goes with a publishable key: with a secret key, the admin token or alone it is refused', async () => {
      expectCode(
        await t.gql(READ, { key: A.key, variables: { id: mine.id }, headers: { 'x-conversation-token': mine.token } }),
        'UNAUTHENTICATED',
        401,
      );
      expectCode(
        await t.gql(READ, { admin: true, variables: { id: mine.id }, headers: { 'x-conversation-token': mine.token } }),
        'UNAUTHENTICATED',
        401,
      );
      expectCode(await t.gql(READ, { variables: { id: mine.id }, headers: { 'x-conversation-token': mine.token } }), 'UNAUTHENTICATED', 401);
    });
  });

  describe('shared caches never hand a publishable request what its rules forbid', () => {
    it('a response cached for the secret key is not served to the publishable key, nor across tokens', async () => {
      const query = `query($id: ID!) { conversation(id: $id) { id title messageCount } }`;
      // Cached for the secret key (twice: the second is a hit).
      ok(await t.gql(query, { key: A.key, variables: { id: neighbour.id } }));
      ok(await t.gql(query, { key: A.key, variables: { id: neighbour.id } }));
      ok(await t.gql(`{ viewer { name } }`, { key: A.key }));
      expectCode(await widget(query, { id: neighbour.id }, mine.token), 'FORBIDDEN', 403);
      expectCode(await widget(`{ viewer { name } }`, {}, mine.token), 'FORBIDDEN', 403);
      // Read by its own token, then asked with another token: refused, not served.
      ok(await widget(query, { id: mine.id }, mine.token));
      expectCode(await widget(query, { id: mine.id }, neighbour.token), 'FORBIDDEN', 403);
    });

    it('a GET answered to a token is cacheable by that client only, and varies on the token header', async () => {
      const params = new URLSearchParams({ query: `query($id: ID!) { conversation(id: $id) { id } }`, variables: JSON.stringify({ id: mine.id }) });
      const response = await t.app.yoga.fetch(`http://parley.test/graphql?${params}`, {
        headers: { accept: 'application/json', authorization: `Bearer ${A.publishableKey}`, 'x-conversation-token': mine.token },
      });
      expect(response.status).toBe(200);
      expect(response.headers.get('cache-control')).toMatch(/^private/);
      expect(response.headers.get('vary')).toMatch(/x-conversation-token/);
      const other = await t.app.yoga.fetch(`http://parley.test/graphql?${params}`, {
        headers: {
          accept: 'application/json',
          authorization: `Bearer ${A.publishableKey}`,
          'x-conversation-token': neighbour.token,
          'if-none-match': response.headers.get('etag')!,
        },
      });
      expect(other.status).toBe(403);
      expect(other.headers.get('cache-control')).toBe('no-store');
    });

    it('identical queries in flight at once are not joined across kinds of key or tokens', async () => {
      const query = `query($id: ID!) { conversation(id: $id) { id title } }`;
      const results = await Promise.all([
        t.gql(query, { key: A.key, variables: { id: mine.id } }),
        widget(query, { id: mine.id }, neighbour.token),
        widget(query, { id: mine.id }, mine.token),
        widget(query, { id: mine.id }),
      ]);
      expect(results[0]!.data.conversation.id).toBe(mine.id);
      expectCode(results[1]!, 'FORBIDDEN', 403);
      expect(results[2]!.data.conversation.id).toBe(mine.id);
      expectCode(results[3]!, 'FORBIDDEN', 403);
    });
  });

  describe('subscriptions', () => {
    const wsUrl = () => `ws://127.0.0.1:${port}/graphql`;
    const socket = (params: Record<string, string>) => liveClient(wsUrl(), { connectionParams: params });

    it('graphql-ws: its conversation’s events with its token; any other conversation and productFeedback are FORBIDDEN', async () => {
      const { client } = socket({ productKey: A.publishableKey, conversationToken: mine.token });
      const base = t.app.deps.pubsub.stats().subscribed;
      const own = subscribe(client, CONVERSATION_EVENTS, { id: mine.id });
      await eventually(() => t.app.deps.pubsub.stats().subscribed >= base + 1, 'subscribed');
      const id = (await appendMessage(t.store, A.id, uuidOf(mine.id), { role: 'ASSISTANT', content: 'Live answer' })).id;
      const [event] = await own.next(1);
      expect(event.conversationEvents).toMatchObject({ __typename: 'MessageAdded', message: { id: gid('Message', id) } });
      for (const other of [neighbour.id, server.id, theirs.id]) {
        const s = subscribe(client, CONVERSATION_EVENTS, { id: other });
        await s.ended;
        expect(s.results).toEqual([]);
        expect(s.errors[0]?.extensions?.code ?? s.errors[0]?.[0]?.extensions?.code).toBe('FORBIDDEN');
      }
      const feedback = subscribe(client, PRODUCT_FEEDBACK);
      await feedback.ended;
      expect(JSON.stringify(feedback.errors)).toContain('FORBIDDEN');
    });

    it('graphql-ws: a bad token refuses the socket (4403)', async () => {
      const { client, closed } = socket({ productKey: A.publishableKey, conversationToken: mine.token.slice(0, -2) });
      const s = subscribe(client, CONVERSATION_EVENTS, { id: mine.id });
      await s.ended;
      await eventually(() => closed.length > 0, 'closed');
      expect(closed[0]!.code).toBe(4403);
    });

    it('SSE: its conversation with the token header; another conversation is FORBIDDEN', async () => {
      const headers = { authorization: `Bearer ${A.publishableKey}`, 'x-conversation-token': mine.token };
      const refused = await openSse(port, headers, { query: CONVERSATION_EVENTS, variables: { id: server.id } });
      const first = await refused.next();
      refused.close();
      expect(first.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      const base = t.app.deps.pubsub.stats().subscribed;
      const own = await openSse(port, headers, { query: CONVERSATION_EVENTS, variables: { id: mine.id } });
      await eventually(() => t.app.deps.pubsub.stats().subscribed >= base + 1, 'subscribed');
      const id = (await appendMessage(t.store, A.id, uuidOf(mine.id), { role: 'ASSISTANT', content: 'Over SSE' })).id;
      const event = await own.next();
      own.close();
      expect(event.data.conversationEvents.message.id).toBe(gid('Message', id));
    });

    it('a subscription ends when the token that opened it expires (graphql-ws and SSE)', async () => {
      // A quiet conversation of its own: no typing indicator of another test ends in it meanwhile.
      const quiet = ok(await t.gql(START, { key: A.publishableKey, variables: { s: 'short-lived' } })).startConversation.id as string;
      const product = await t.prisma.product.findUniqueOrThrow({ where: { id: A.id } });
      const shortLived = issueConversationToken(product, uuidOf(quiet), 3_000);
      const { client } = socket({ productKey: A.publishableKey, conversationToken: shortLived });
      const overWs = subscribe(client, CONVERSATION_EVENTS, { id: quiet });
      const sse = await openSse(
        port,
        { authorization: `Bearer ${A.publishableKey}`, 'x-conversation-token': shortLived },
        {
          query: CONVERSATION_EVENTS,
          variables: { id: quiet },
        },
      );
      const last = await sse.next(8_000);
      sse.close();
      expect(last.errors?.[0]?.extensions?.code, JSON.stringify(last)).toBe('UNAUTHENTICATED');
      expect(last.errors?.[0]?.message).toMatch(/expired/);
      await overWs.ended;
      expect(JSON.stringify(overWs.errors)).toContain('UNAUTHENTICATED');
      expect(overWs.results).toEqual([]);
    });

    it('rotating the publishable key closes its sockets (4403), ends its tokens, and leaves the secret key’s sockets open', async () => {
      const p = await t.product('Rotating publishable');
      const started = ok(await t.gql(START, { key: p.publishableKey, variables: { s: 'r' } })).startConversation;
      const pub = socket({ productKey: p.publishableKey, conversationToken: started.conversationToken });
      const secret = socket({ productKey: p.key });
      const base = t.app.deps.pubsub.stats().subscribed;
      subscribe(pub.client, CONVERSATION_EVENTS, { id: started.id });
      const kept = subscribe(secret.client, CONVERSATION_EVENTS, { id: started.id });
      const sse = await openSse(
        port,
        { authorization: `Bearer ${p.publishableKey}`, 'x-conversation-token': started.conversationToken },
        {
          query: CONVERSATION_EVENTS,
          variables: { id: started.id },
        },
      );
      await eventually(() => t.app.deps.pubsub.stats().subscribed >= base + 3, 'subscribed');

      const rotated = ok(await t.gql(ROTATE, { admin: true, variables: { id: gid('Product', p.id), kind: 'PUBLISHABLE' } })).rotateProductKey;
      expect(rotated.kind).toBe('PUBLISHABLE');
      expect(rotated.key).toMatch(/^pk_pub_/);
      expect(rotated.product.publishableKeyPrefix).toBe(rotated.key.slice(0, 11));
      await eventually(() => pub.closed.length > 0, 'publishable socket closed');
      expect(pub.closed[0]!.code).toBe(4403);
      expect(secret.closed).toEqual([]);
      // Its SSE stream ends with UNAUTHENTICATED.
      const last = await sse.next();
      sse.close();
      expect(last.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      // The old key is refused; the new key with the old token is refused too (tokens end with the key).
      expectCode(await t.gql(`mutation { startConversation(input: { sessionId: "x" }) { id } }`, { key: p.publishableKey }), 'UNAUTHENTICATED', 401);
      expectCode(await widget(READ, { id: started.id }, started.conversationToken, rotated.key), 'UNAUTHENTICATED', 401);
      // The secret key and its subscription carry on.
      const id = (await appendMessage(t.store, p.id, uuidOf(started.id), { role: 'ASSISTANT', content: 'still here' })).id;
      expect((await kept.next(1))[0].conversationEvents.message.id).toBe(gid('Message', id));
      expect(ok(await t.gql(`{ viewer { id } }`, { key: p.key })).viewer.id).toBe(gid('Product', p.id));
    });

    it('a token the secret key issues right after a publishable rotation is signed with the new secret', async () => {
      const p = await t.product('Server-started');
      // The secret key's lookup is cached now, with the signing secret of then.
      ok(await t.gql(START, { key: p.key, variables: { s: 'before' } }));
      const rotated = ok(await t.gql(ROTATE, { admin: true, variables: { id: gid('Product', p.id), kind: 'PUBLISHABLE' } })).rotateProductKey;
      const started = ok(await t.gql(START, { key: p.key, variables: { s: 'after' } })).startConversation;
      expect(ok(await widget(READ, { id: started.id }, started.conversationToken, rotated.key)).conversation.id).toBe(started.id);
    });

    it('rotating the secret key leaves the publishable key and its tokens working', async () => {
      const p = await t.product('Rotating secret');
      const started = ok(await t.gql(START, { key: p.publishableKey, variables: { s: 'r' } })).startConversation;
      const rotated = ok(await t.gql(ROTATE, { admin: true, variables: { id: gid('Product', p.id), kind: 'SECRET' } })).rotateProductKey;
      expect(rotated.key).toMatch(/^sk_live_/);
      expectCode(await t.gql(`{ viewer { id } }`, { key: p.key }), 'UNAUTHENTICATED', 401);
      expect(ok(await widget(READ, { id: started.id }, started.conversationToken, p.publishableKey)).conversation.id).toBe(started.id);
    });
  });
});

// Upgrading: keys issued before this migration (pk_live_…) are secret keys after it, nothing breaks.
describeEachDatabase('upgrade to two kinds of key', (variant) => {
  let t: TestApp;
  const legacyKey = `pk_live_${'L'.repeat(32)}`;
  let productId: string;
  let conversationId: string;

  beforeAll(async () => {
    const database = await variant.open();
    // The database as the release before left it: every migration up to this one, and a product with a key of then.
    const before = readMigrations().filter((m) => m.name < KEY_KINDS_MIGRATION);
    expect(before.length).toBe(readMigrations().findIndex((m) => m.name === KEY_KINDS_MIGRATION));
    await migrate(database.db.prisma, before);
    const [product] = await database.db.prisma.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO "Product" (id, name, "keyPrefix", "keyHash") VALUES ($1::uuid, 'Before', $2, $3) RETURNING id::text AS id`,
      uuidv7(),
      legacyKey.slice(0, 12),
      sha256(legacyKey),
    );
    productId = product!.id;
    conversationId = uuidv7();
    await database.db.prisma.$executeRawUnsafe(
      `INSERT INTO "Conversation" (id, "productId", "sessionId") VALUES ($1::uuid, $2::uuid, 'old')`,
      conversationId,
      productId,
    );
    // Starting the app applies the rest (as a deploy does).
    t = await createTestApp(variant, {}, { shared: database });
    t.dispose = ((dispose) => async () => {
      await dispose();
      await database.dispose();
    })(t.dispose);
  });
  afterAll(() => t?.dispose());

  it('the migration keeps the key as the secret key, adds no publishable key, and gives the product a token secret', async () => {
    const row = await t.prisma.product.findUniqueOrThrow({ where: { id: productId } });
    expect(row.keyHash).toBe(sha256(legacyKey));
    expect(row.publishableKeyHash).toBeNull();
    expect(row.publishableKeyPrefix).toBeNull();
    expect(row.conversationTokenSecret).toMatch(/^[0-9a-f]{64}$/);
    expect(row.publishableSearch).toBe(false);
  });

  it('the pk_live_ key works as a secret key: the whole product, every conversation', async () => {
    const r = ok(await t.gql(`{ viewer { id keyPrefix publishableKeyPrefix conversations(first: 5) { nodes { id } } } }`, { key: legacyKey }));
    expect(r.viewer).toEqual({
      id: gid('Product', productId),
      keyPrefix: legacyKey.slice(0, 12),
      publishableKeyPrefix: null,
      conversations: { nodes: [{ id: gid('Conversation', conversationId) }] },
    });
    ok(await t.gql(`mutation { addKnowledge(input: { title: "t", content: "c" }) { id } }`, { key: legacyKey }));
  });

  it('the admin issues its first publishable key by rotation; the old secret key keeps working', async () => {
    const rotated = ok(await t.gql(ROTATE, { admin: true, variables: { id: gid('Product', productId), kind: 'PUBLISHABLE' } })).rotateProductKey;
    expect(rotated.key).toMatch(/^pk_pub_/);
    expect(rotated.product.keyPrefix).toBe(legacyKey.slice(0, 12));
    const started = ok(await t.gql(START, { key: rotated.key, variables: { s: 'new' } })).startConversation;
    const read = await t.gql(READ, {
      key: rotated.key,
      variables: { id: started.id },
      headers: { 'x-conversation-token': started.conversationToken },
    });
    expect(ok(read).conversation.id).toBe(started.id);
    expectCode(await t.gql(`{ viewer { id } }`, { key: rotated.key }), 'FORBIDDEN', 403);
    expect(ok(await t.gql(`{ viewer { id } }`, { key: legacyKey })).viewer.id).toBe(gid('Product', productId));
  });
});
