import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';
import { appendMessage } from '../../src/services/messages.js';

// Every limit of the spec, just over and exactly at it; page sizes rejected
// before any SQL; all-or-nothing batches; malformed ids; masked internals.

const START = /* GraphQL */ `
  mutation Start($input: StartConversationInput!) { startConversation(input: $input) { id sessionId title } }
`;
const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { message { id content } } }
`;
const FEEDBACK = /* GraphQL */ `
  mutation Rate($input: SubmitFeedbackInput!) { submitFeedback(input: $input) { id rating comment } }
`;
const ADD = /* GraphQL */ `mutation Add($input: KnowledgeInput!) { addKnowledge(input: $input) { id title content tags } }`;
const ADD_BATCH = /* GraphQL */ `
  mutation AddBatch($input: AddKnowledgeBatchInput!) { addKnowledgeBatch(input: $input) { id } }
`;
const UPDATE = /* GraphQL */ `
  mutation Update($input: UpdateKnowledgeInput!) { updateKnowledge(input: $input) { id title content tags } }
`;
const SEARCH = /* GraphQL */ `
  query Search($query: String!, $first: Int) { searchKnowledge(query: $query, first: $first) { score } }
`;

function ok<T>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}

/** The request failed as a whole with BAD_USER_INPUT naming `field`. */
function rejected(result: GqlResult, field?: string): void {
  expect(result.errors, 'expected an error').toBeDefined();
  expect(result.errors).toHaveLength(1);
  const error = result.errors![0]!;
  expect(error.extensions?.code, error.message).toBe('BAD_USER_INPUT');
  if (field !== undefined) expect(error.extensions?.field, error.message).toBe(field);
  if (result.data) for (const value of Object.values(result.data)) expect(value).toBeNull();
}

const x = (n: number) => 'x'.repeat(n);

describeEachDatabase('validation', (variant) => {
  let t: TestApp;
  let shop: { id: string; key: string };
  let conversationId: string;
  let conversationUuid: string;
  let replyId: string;
  let entryId: string;
  const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: shop.key, variables });
  const counts = async () => ({
    conversations: await t.prisma.conversation.count(),
    messages: await t.prisma.message.count(),
    feedback: await t.prisma.feedback.count(),
    knowledge: await t.prisma.knowledgeEntry.count(),
  });

  beforeAll(async () => {
    t = await createTestApp(variant);
    shop = await t.product('Validation');
    conversationId = ok(await gql(START, { input: { sessionId: 'v', title: 'Limits' } })).startConversation.id;
    ok(await gql(SEND, { input: { conversationId, content: 'first question' } }));
    conversationUuid = (await t.prisma.conversation.findFirstOrThrow({ where: { productId: shop.id } })).id;
    const reply = await appendMessage(t.store, shop.id, conversationUuid, { role: 'ASSISTANT', content: 'An answer' });
    replyId = gid('Message', reply.id);
    entryId = ok(await gql(ADD, { input: { title: 'Entry', content: 'Some content' } })).addKnowledge.id;
  });
  afterAll(() => t?.dispose());

  describe('length limits: just over → BAD_USER_INPUT naming the field and nothing written; at the limit → accepted', () => {
    it('sendMessage content ≤ 8,000', async () => {
      const before = await counts();
      const conversation = await t.prisma.conversation.findUniqueOrThrow({ where: { id: conversationUuid } });
      rejected(await gql(SEND, { input: { conversationId, content: x(8_001) } }), 'input.content');
      expect(await counts()).toEqual(before);
      // The counters did not move either.
      expect(await t.prisma.conversation.findUniqueOrThrow({ where: { id: conversationUuid } })).toEqual(conversation);

      const sent = ok(await gql(SEND, { input: { conversationId, content: x(8_000) } })).sendMessage.message;
      expect(sent.content).toHaveLength(8_000);
      // Multi-byte characters count as characters.
      ok(await gql(SEND, { input: { conversationId, content: 'é'.repeat(8_000) } }));
      rejected(await gql(SEND, { input: { conversationId, content: 'é'.repeat(8_001) } }), 'input.content');
    });

    it('conversation title ≤ 200 and sessionId ≤ 200', async () => {
      const before = await counts();
      rejected(await gql(START, { input: { sessionId: 's', title: x(201) } }), 'input.title');
      rejected(await gql(START, { input: { sessionId: x(201) } }), 'input.sessionId');
      expect(await counts()).toEqual(before);
      expect(ok(await gql(START, { input: { sessionId: x(200), title: x(200) } })).startConversation.title).toHaveLength(200);
    });

    it('knowledge title ≤ 200 and content ≤ 50,000 (add and update)', async () => {
      const before = await counts();
      rejected(await gql(ADD, { input: { title: 't', content: x(50_001) } }), 'input.content');
      rejected(await gql(ADD, { input: { title: x(201), content: 'c' } }), 'input.title');
      expect(await counts()).toEqual(before);
      const added = ok(await gql(ADD, { input: { title: x(200), content: x(50_000) } })).addKnowledge;
      expect(added.content).toHaveLength(50_000);
      expect(added.title).toHaveLength(200);

      // A patch with one valid and one invalid field changes nothing.
      rejected(await gql(UPDATE, { input: { id: entryId, title: 'Changed', content: x(50_001) } }), 'input.content');
      rejected(await gql(UPDATE, { input: { id: entryId, title: x(201) } }), 'input.title');
      const unchanged = ok(await gql(`query($id: ID!) { node(id: $id) { ... on KnowledgeEntry { title content } } }`, { id: entryId }));
      expect(unchanged.node).toEqual({ title: 'Entry', content: 'Some content' });
      ok(await gql(UPDATE, { input: { id: added.id, title: x(200).replace(/^x/, 'y'), content: x(50_000) } }));
    });

    it('knowledge tags: at most 20, each at most 50 characters', async () => {
      const tags = (n: number, len = 3) => Array.from({ length: n }, (_, i) => `${i}`.padEnd(len, 't'));
      rejected(await gql(ADD, { input: { title: 't', content: 'c', tags: tags(21) } }), 'input.tags');
      rejected(await gql(ADD, { input: { title: 't', content: 'c', tags: ['ok', x(51)] } }), 'input.tags.1');
      ok(await gql(ADD, { input: { title: 't', content: 'c', tags: tags(20, 50) } }));
    });

    it('feedback comment ≤ 2,000', async () => {
      const before = await counts();
      rejected(await gql(FEEDBACK, { input: { messageId: replyId, rating: 'UP', comment: x(2_001) } }), 'input.comment');
      expect(await counts()).toEqual(before);
      const rated = ok(await gql(FEEDBACK, { input: { messageId: replyId, rating: 'DOWN', comment: x(2_000) } })).submitFeedback;
      expect(rated.comment).toHaveLength(2_000);
      // A rejected re-submission leaves the earlier rating alone.
      rejected(await gql(FEEDBACK, { input: { messageId: replyId, rating: 'UP', comment: x(2_001) } }), 'input.comment');
      const row = await t.prisma.feedback.findFirstOrThrow({ where: { productId: shop.id } });
      expect(row.rating).toBe('DOWN');
    });

    it('searchKnowledge query ≤ 500 and first between 1 and 100', async () => {
      rejected(await gql(SEARCH, { query: x(501) }), 'searchKnowledge.query');
      ok(await gql(SEARCH, { query: x(500) }));
      rejected(await gql(SEARCH, { query: 'entry', first: 0 }), 'searchKnowledge.first');
      rejected(await gql(SEARCH, { query: 'entry', first: 101 }));
      ok(await gql(SEARCH, { query: 'entry', first: 100 }));
    });
  });

  describe('empty or whitespace-only required text is rejected', () => {
    const blanks = ['', '   ', ' \n\t '];

    it('sendMessage content, startConversation sessionId and title', async () => {
      const before = await counts();
      for (const blank of blanks) {
        rejected(await gql(SEND, { input: { conversationId, content: blank } }), 'input.content');
        rejected(await gql(START, { input: { sessionId: blank } }), 'input.sessionId');
      }
      expect(await counts()).toEqual(before);
    });

    it('a blank optional title or comment means none (a widget sends "" for an empty box)', async () => {
      for (const blank of blanks) {
        const started = ok(await gql(START, { input: { sessionId: 'blank-title', title: blank } })).startConversation;
        expect(started.title).toBeNull();
        const rated = ok(await gql(FEEDBACK, { input: { messageId: replyId, rating: 'UP', comment: blank } })).submitFeedback;
        expect(rated.comment).toBeNull();
      }
    });

    it('knowledge title and content (add and update), and tags', async () => {
      const before = await counts();
      for (const blank of blanks) {
        rejected(await gql(ADD, { input: { title: blank, content: 'c' } }), 'input.title');
        rejected(await gql(ADD, { input: { title: 't', content: blank } }), 'input.content');
        rejected(await gql(ADD, { input: { title: 't', content: 'c', tags: [blank] } }), 'input.tags.0');
        rejected(await gql(UPDATE, { input: { id: entryId, title: blank } }), 'input.title');
        rejected(await gql(UPDATE, { input: { id: entryId, content: blank } }), 'input.content');
      }
      expect(await counts()).toEqual(before);
    });

    it('text PostgreSQL cannot store (NUL) is BAD_USER_INPUT, not an internal error', async () => {
      const before = await counts();
      const logged = t.logged.length;
      const nul = 'a\u0000b';
      rejected(await gql(SEND, { input: { conversationId, content: nul } }), 'input.content');
      rejected(await gql(START, { input: { sessionId: nul } }), 'input.sessionId');
      rejected(await gql(START, { input: { sessionId: 's', title: nul } }), 'input.title');
      rejected(await gql(ADD, { input: { title: nul, content: 'c' } }), 'input.title');
      rejected(await gql(ADD, { input: { title: 't', content: 'c', tags: [nul] } }), 'input.tags.0');
      rejected(await gql(UPDATE, { input: { id: entryId, content: nul } }), 'input.content');
      rejected(await gql(FEEDBACK, { input: { messageId: replyId, rating: 'UP', comment: nul } }), 'input.comment');
      rejected(await gql(SEARCH, { query: nul }), 'searchKnowledge.query');
      rejected(await gql(`query($s: String) { conversations(first: 1, sessionId: $s) { edges { cursor } } }`, { s: nul }), 'sessionId');
      expect(await counts()).toEqual(before);
      expect(t.logged.slice(logged).filter((l) => l.level === 'error')).toEqual([]);
    });

    it('limits count characters, not UTF-16 units: 8,000 emoji fit in a message', async () => {
      const sent = ok(await gql(SEND, { input: { conversationId, content: '😀'.repeat(8_000) } })).sendMessage.message;
      expect([...sent.content]).toHaveLength(8_000);
      rejected(await gql(SEND, { input: { conversationId, content: '😀'.repeat(8_001) } }), 'input.content');
      ok(await gql(START, { input: { sessionId: '🙂'.repeat(200), title: '👍'.repeat(200) } }));
      rejected(await gql(START, { input: { sessionId: 's', title: '👍'.repeat(201) } }), 'input.title');
    });

    it('surrounding whitespace is trimmed before the limit is applied', async () => {
      const sent = ok(await gql(SEND, { input: { conversationId, content: `  ${x(8_000)}\n` } })).sendMessage.message;
      expect(sent.content).toBe(x(8_000));
    });
  });

  describe('page sizes: first > 100 or last < 0 are rejected before any SQL runs', () => {
    const connections: [string, (args: string) => string, string][] = [
      ['conversations', (args) => `conversations(${args}) { edges { node { id } } }`, 'conversations'],
      ['viewer.conversations', (args) => `viewer { conversations(${args}) { edges { node { id } } } }`, 'conversations'],
      ['viewer.knowledge', (args) => `viewer { knowledge(${args}) { edges { node { id } } } }`, 'knowledge'],
      ['conversation.messages', (args) => `conversation(id: "$ID") { messages(${args}) { edges { node { id } } } }`, 'messages'],
    ];
    const literal = (build: (args: string) => string, args: string) => `{ ${build(args).replace('$ID', conversationId)} }`;

    /** Only the product-key lookup (context creation) may have run. */
    function noSqlBeyondAuth(result: GqlResult): void {
      expect(result.sql.length, result.sql.join('\n')).toBeLessThanOrEqual(1);
      for (const sql of result.sql) expect(sql).toMatch(/"Product"/);
    }

    for (const [name, build, field] of connections) {
      it(`${name}: literal first: 101 / last: -1`, async () => {
        for (const [arg, value] of [
          ['first', 101],
          ['last', -1],
          ['first', -1],
          ['last', 101],
        ] as const) {
          const result = await gql(literal(build, `${arg}: ${value}`));
          rejected(result, `${field}.${arg}`);
          noSqlBeyondAuth(result);
        }
        ok(await gql(literal(build, 'first: 100')));
        ok(await gql(literal(build, 'last: 100')));
        ok(await gql(literal(build, 'first: 0')));
      });

      it(`${name}: first: 101 / last: -1 via variables (also as a variable default)`, async () => {
        const query = (decl: string, args: string) => `query(${decl}) { ${build(args).replace('$ID', conversationId)} }`;
        for (const [arg, value] of [
          ['first', 101],
          ['last', -1],
        ] as const) {
          const viaVariable = await gql(query(`$n: Int`, `${arg}: $n`), { n: value });
          rejected(viaVariable, `${field}.${arg}`);
          noSqlBeyondAuth(viaVariable);
          const viaDefault = await gql(query(`$n: Int = ${value}`, `${arg}: $n`));
          rejected(viaDefault, `${field}.${arg}`);
          noSqlBeyondAuth(viaDefault);
        }
        ok(await gql(query(`$n: Int`, `first: $n`), { n: 100 }));
        ok(await gql(query(`$n: Int = 100`, `last: $n`)));
      });
    }

    it('inside a fragment, and under an alias (named by its alias)', async () => {
      const fragment = await gql(`{ ...F } fragment F on Query { conversations(first: 101) { edges { cursor } } }`);
      rejected(fragment, 'conversations.first');
      noSqlBeyondAuth(fragment);
      const aliased = await gql(`{ recent: conversations(last: -1) { edges { cursor } } }`);
      rejected(aliased, 'recent.last');
      noSqlBeyondAuth(aliased);
    });
  });

  describe('addKnowledgeBatch is all or nothing', () => {
    const entry = (i: number) => ({ title: `Batch ${i}`, content: `Content ${i}` });

    it('101 entries → BAD_USER_INPUT, nothing written; 100 → accepted', async () => {
      const before = await counts();
      rejected(await gql(ADD_BATCH, { input: { entries: Array.from({ length: 101 }, (_, i) => entry(i)) } }), 'input.entries');
      expect(await counts()).toEqual(before);
      const added = ok(await gql(ADD_BATCH, { input: { entries: Array.from({ length: 100 }, (_, i) => entry(i)) } }));
      expect(added.addKnowledgeBatch).toHaveLength(100);
      expect((await counts()).knowledge).toBe(before.knowledge + 100);
    });

    it('50 valid entries and 1 invalid → BAD_USER_INPUT naming the entry, nothing written', async () => {
      const before = await counts();
      const valid = Array.from({ length: 50 }, (_, i) => entry(i));
      rejected(await gql(ADD_BATCH, { input: { entries: [...valid, { title: 'Too long', content: x(50_001) }] } }), 'input.entries.50.content');
      rejected(
        await gql(ADD_BATCH, { input: { entries: [...valid.slice(0, 25), { title: ' ', content: 'c' }, ...valid.slice(25)] } }),
        'input.entries.25.title',
      );
      rejected(await gql(ADD_BATCH, { input: { entries: [] } }), 'input.entries');
      expect(await counts()).toEqual(before);
    });
  });

  describe('ids and variables', () => {
    it('a malformed global id → BAD_USER_INPUT', async () => {
      const malformed = ['garbage', '', '%%%', Buffer.from('Conversation:').toString('base64'), Buffer.from('Conversation:123').toString('base64')];
      for (const id of malformed) {
        rejected(await gql(`query($id: ID!) { conversation(id: $id) { id } }`, { id }), 'id');
        rejected(await gql(`query($id: ID!) { node(id: $id) { id } }`, { id }));
        rejected(await gql(SEND, { input: { conversationId: id, content: 'hi' } }), 'input.conversationId');
        rejected(await gql(FEEDBACK, { input: { messageId: id, rating: 'UP' } }), 'input.messageId');
        rejected(await gql(UPDATE, { input: { id, title: 'x' } }), 'input.id');
        rejected(await gql(`mutation($id: ID!) { deleteKnowledge(id: $id) }`, { id }), 'id');
      }
      // A well-formed id of the wrong type is malformed for that argument.
      rejected(await gql(FEEDBACK, { input: { messageId: conversationId, rating: 'UP' } }), 'input.messageId');
      rejected(await gql(SEND, { input: { conversationId: replyId, content: 'hi' } }), 'input.conversationId');
      // A global id naming no node type (or a non-node type) is the client's mistake, not an internal error.
      const loggedBefore = t.logged.filter((l) => l.level === 'error').length;
      for (const typename of ['Nope', 'Rating', 'Node', 'ProductStats']) {
        const id = Buffer.from(`${typename}:00000000-0000-7000-8000-000000000000`).toString('base64');
        rejected(await gql(`query($id: ID!) { node(id: $id) { id } }`, { id }), 'id');
      }
      expect(t.logged.filter((l) => l.level === 'error')).toHaveLength(loggedBefore);
      // Several at once: the first bad one fails the whole list.
      rejected(await gql(`query($ids: [ID!]!) { nodes(ids: $ids) { id } }`, { ids: [conversationId, 'garbage'] }));
    });

    it('an id of another type, or without a uuid inside, names the argument and the type it must be', async () => {
      const refused = (result: GqlResult, field: string, typename: string) => {
        rejected(result, field);
        expect(result.status).toBe(200);
        expect(result.errors![0]!.message).toBe(`${field} is not a valid ${typename} id`);
      };
      const notUuid = Buffer.from('Conversation:123').toString('base64');
      // Arguments.
      refused(await gql(`query($id: ID!) { conversation(id: $id) { id } }`, { id: replyId }), 'id', 'Conversation');
      refused(await gql(`query($id: ID!) { conversation(id: $id) { id } }`, { id: notUuid }), 'id', 'Conversation');
      refused(await gql(`mutation($id: ID!) { deleteKnowledge(id: $id) }`, { id: conversationId }), 'id', 'KnowledgeEntry');
      refused(await t.gql(`mutation($id: ID!) { rotateProductKey(id: $id) { key } }`, { admin: true, variables: { id: entryId } }), 'id', 'Product');
      // Fields of input types.
      refused(await gql(SEND, { input: { conversationId: replyId, content: 'hi' } }), 'input.conversationId', 'Conversation');
      refused(await gql(SEND, { input: { conversationId: notUuid, content: 'hi' } }), 'input.conversationId', 'Conversation');
      refused(await gql(UPDATE, { input: { id: conversationId, title: 'x' } }), 'input.id', 'KnowledgeEntry');
      refused(await gql(FEEDBACK, { input: { messageId: entryId, rating: 'UP' } }), 'input.messageId', 'Message');
      refused(
        await gql(`mutation($id: ID!) { setTyping(input: { conversationId: $id, isTyping: true }) }`, { id: entryId }),
        'input.conversationId',
        'Conversation',
      );
      // A subscription's argument (over SSE): refused when it starts.
      const response = await t.app.yoga.fetch('http://parley.test/graphql', {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'text/event-stream', authorization: `Bearer ${shop.key}` },
        body: JSON.stringify({
          query: 'subscription($id: ID!) { conversationEvents(conversationId: $id) { __typename } }',
          variables: { id: replyId },
        }),
      });
      const events = (await response.text()).split('\n').filter((line) => line.startsWith('data:') && line.length > 'data:'.length);
      expect(events).toHaveLength(1);
      const { errors } = JSON.parse(events[0]!.slice('data:'.length));
      expect(errors).toMatchObject([
        { message: 'conversationId is not a valid Conversation id', extensions: { code: 'BAD_USER_INPUT', field: 'conversationId' } },
      ]);
    });

    it('a malformed cursor → BAD_USER_INPUT naming after/before; a cursor of another conversation or product → empty page', async () => {
      const b64 = (s: string) => Buffer.from(s).toString('base64');
      const CONVERSATIONS = `query($after: String, $before: String) {
        conversations(first: 5, after: $after) { edges { cursor } }
        older: conversations(last: 5, before: $before) { edges { cursor } }
      }`;
      const MESSAGES = `query($id: ID!, $after: String, $before: String) {
        conversation(id: $id) {
          forward: messages(first: 5, after: $after) { edges { cursor } }
          backward: messages(last: 5, before: $before) { edges { cursor } }
        }
      }`;
      for (const cursor of ['garbage', b64('GPC:S:not-a-uuid'), b64('GPC:N:5'), b64('GPC:Z:'), b64('nope')]) {
        // Pothos itself rejects a cursor it cannot decode at all, before the resolver (and without a field).
        const decodable = !['garbage', b64('nope')].includes(cursor);
        rejected(
          await gql(`query($c: String) { conversations(first: 5, after: $c) { edges { cursor } } }`, { c: cursor }),
          decodable ? 'after' : undefined,
        );
        rejected(
          await gql(`query($c: String) { conversations(last: 5, before: $c) { edges { cursor } } }`, { c: cursor }),
          decodable ? 'before' : undefined,
        );
        for (const [arg, field] of [
          ['after', 'after'],
          ['before', 'before'],
        ] as const) {
          const result = await gql(
            `query($id: ID!, $c: String) { conversation(id: $id) { messages(${arg === 'after' ? 'first' : 'last'}: 5, ${arg}: $c) { edges { cursor } } } }`,
            { id: conversationId, c: cursor },
          );
          rejected(result, decodable ? field : undefined);
        }
      }

      // Real cursors of this product work; the same cursors seen by another product give empty pages.
      // (Without the ownership filter Prisma positions the page on the foreign row and skips one row.)
      const other = await t.product('Cursor thief');
      const asOther = (query: string, variables: Record<string, unknown>) => t.gql(query, { key: other.key, variables });
      const theirStart = async () => ok(await asOther(START, { input: { sessionId: 'v' } })).startConversation.id as string;
      const older = [await theirStart(), await theirStart()];

      const sibling = ok(await gql(START, { input: { sessionId: 'v2' } })).startConversation.id;
      for (const content of ['x', 'y', 'z']) ok(await gql(SEND, { input: { conversationId: sibling, content } }));
      ok(await gql(SEND, { input: { conversationId, content: 'one more' } }));
      const mine = ok(await gql(CONVERSATIONS)).conversations.edges;
      expect(mine.length).toBeGreaterThan(1);
      const messages = ok(await gql(MESSAGES, { id: conversationId })).conversation.forward.edges;
      expect(messages.length).toBeGreaterThan(1);
      const own = ok(await gql(MESSAGES, { id: conversationId, after: messages[0].cursor, before: messages.at(-1).cursor })).conversation;
      expect(own.forward.edges[0].cursor).toBe(messages[1].cursor);
      expect(own.backward.edges.at(-1).cursor).toBe(messages.at(-2).cursor);

      const theirs = await theirStart();
      await theirStart();
      for (const content of ['a', 'b', 'c']) ok(await asOther(SEND, { input: { conversationId: theirs, content } }));
      expect(ok(await asOther(CONVERSATIONS, {})).conversations.edges).toHaveLength(4);
      expect(older).toHaveLength(2);

      const foreign = ok(await asOther(CONVERSATIONS, { after: mine[0].cursor, before: mine.at(-1).cursor }));
      expect(foreign).toEqual({ conversations: { edges: [] }, older: { edges: [] } });
      const foreignMessages = ok(await asOther(MESSAGES, { id: theirs, after: messages[0].cursor, before: messages.at(-1).cursor })).conversation;
      expect(foreignMessages).toEqual({ forward: { edges: [] }, backward: { edges: [] } });
      // A message cursor of another conversation of the same product does not position the page either.
      const crossed = ok(await gql(MESSAGES, { id: sibling, after: messages[0].cursor, before: messages.at(-1).cursor })).conversation;
      expect(crossed).toEqual({ forward: { edges: [] }, backward: { edges: [] } });
    });

    it('a well-formed id that does not exist is null / NOT_FOUND, not an error about its shape', async () => {
      const missing = '0190a000-0000-7000-8000-000000000000';
      expect(ok(await gql(`query($id: ID!) { node(id: $id) { id } }`, { id: gid('Conversation', missing) })).node).toBeNull();
      expect(ok(await gql(`query($id: ID!) { conversation(id: $id) { id } }`, { id: gid('Conversation', missing) })).conversation).toBeNull();
      const send = await gql(SEND, { input: { conversationId: gid('Conversation', missing), content: 'hi' } });
      expect(send.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    });

    it('a wrong-typed or missing variable → an error with an extensions.code, nothing executed', async () => {
      const cases: [string, Record<string, unknown>][] = [
        [`query($n: Int) { conversations(first: $n) { edges { cursor } } }`, { n: 'ten' }],
        [`query($n: Int) { conversations(first: $n) { edges { cursor } } }`, { n: 1.5 }],
        [`query($n: Int) { conversations(first: $n) { edges { cursor } } }`, { n: 2 ** 40 }],
        [FEEDBACK, { input: { messageId: replyId, rating: 'MEH' } }],
        [FEEDBACK, { input: { messageId: replyId } }],
        [SEND, { input: { conversationId, content: 42 } }],
        [SEND, { input: { conversationId, content: { text: 'hi' } } }],
        [SEND, {}],
      ];
      const logged = t.logged.length;
      for (const [query, variables] of cases) {
        const result = await gql(query, variables);
        expect(result.errors?.length, JSON.stringify(variables)).toBeGreaterThan(0);
        expect(result.data ?? null).toBeNull();
        expect(result.errors![0]!.extensions?.code, result.errors![0]!.message).toEqual(expect.any(String));
        expect(result.errors![0]!.extensions?.code).not.toBe('INTERNAL_SERVER_ERROR');
        expect(result.sql.length).toBeLessThanOrEqual(1);
      }
      expect(t.logged.slice(logged).filter((l) => l.level === 'error')).toEqual([]);
    });

    it('an unknown field or a syntax error → GRAPHQL_VALIDATION_FAILED / GRAPHQL_PARSE_FAILED', async () => {
      expect((await gql(`{ viewer { nope } }`)).errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect((await gql(`{ viewer { `)).errors?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
    });
  });

  describe('unexpected failures are masked and logged', () => {
    it('a missing table makes submitFeedback INTERNAL_SERVER_ERROR with no SQL or table name in the message', async () => {
      const logged = t.logged.length;
      await t.prisma.$executeRawUnsafe(`ALTER TABLE "Feedback" RENAME TO "Feedback_x"`);
      let result: GqlResult;
      try {
        result = await gql(FEEDBACK, { input: { messageId: replyId, rating: 'UP', comment: 'masked?' } });
      } finally {
        await t.prisma.$executeRawUnsafe(`ALTER TABLE "Feedback_x" RENAME TO "Feedback"`);
      }
      expect(result.data).toBeNull();
      expect(result.errors).toHaveLength(1);
      const error = result.errors![0]!;
      expect(error.extensions?.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.path).toEqual(['submitFeedback']);
      const shown = JSON.stringify(error);
      for (const leak of [
        /Feedback_x|"Feedback"|\bFeedback\b.*exist/i,
        /relation/i,
        /\b(select|insert|update|delete)\b/i,
        /prisma/i,
        /\bat \w+ \(/,
      ]) {
        expect(shown).not.toMatch(leak);
      }
      expect(error.extensions).not.toHaveProperty('stacktrace');
      expect(error.extensions).not.toHaveProperty('originalError');

      const errors = t.logged.slice(logged).filter((l) => l.level === 'error');
      expect(errors).toHaveLength(1);
      expect(String((errors[0]!.fields?.error as Error | undefined)?.message ?? errors[0]!.fields?.error)).toMatch(/Feedback/);

      // Renamed back: the same request works again.
      expect(ok(await gql(FEEDBACK, { input: { messageId: replyId, rating: 'UP' } })).submitFeedback.rating).toBe('UP');
    });

    it('expected errors are not logged as unexpected', async () => {
      const logged = t.logged.length;
      rejected(await gql(SEND, { input: { conversationId, content: '' } }), 'input.content');
      await gql(SEND, { input: { conversationId: gid('Conversation', '0190a000-0000-7000-8000-000000000000'), content: 'x' } });
      expect(t.logged.slice(logged).filter((l) => l.level === 'error')).toEqual([]);
    });
  });
});
