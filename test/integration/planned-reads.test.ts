import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, dataOf, sendQuestion, type GqlResult, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { seedConversations } from '../helpers/fixtures.js';
import { encodeGlobalID } from '@pothos/plugin-relay';

/**
 * Planned reads (plugins/planned-reads.ts) answer conversation trees from one
 * statement and write the response themselves: every query here is asked of an
 * app that plans and of one that resolves each field (PARLEY_PLANNED_READS=false),
 * on the same database, and the two answers must be the same, errors included.
 */

const CONVERSATION_FIELDS = /* GraphQL */ `
  __typename id sessionId title messageCount lastMessageAt createdAt
  lastMessage { __typename id role content createdAt model latencyMs cached feedback { id rating comment createdAt } }
`;
const MESSAGE_FIELDS = /* GraphQL */ `__typename id role content createdAt model latencyMs cached feedback { __typename id rating comment createdAt }`;

const EVERYTHING = /* GraphQL */ `
  query Everything($first: Int, $after: String, $last: Int, $before: String, $sessionId: String,
                   $mFirst: Int, $mAfter: String, $mLast: Int, $mBefore: String) {
    __typename
    list: conversations(first: $first, after: $after, last: $last, before: $before, sessionId: $sessionId) {
      __typename
      pageInfo { __typename hasNextPage hasPreviousPage startCursor endCursor }
      edges {
        __typename
        cursor
        node {
          ${CONVERSATION_FIELDS}
          messages(first: $mFirst, after: $mAfter, last: $mLast, before: $mBefore) {
            __typename
            pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
            edges { cursor node { ${MESSAGE_FIELDS} } }
            nodes { id content }
          }
        }
      }
      nodes { id title lastMessage { content } }
    }
  }
`;

const FRAGMENTS = /* GraphQL */ `
  query Fragments($after: String) {
    conversations(first: 4, after: $after) {
      nodes { ...Conv }
      ... on QueryConversationsConnection { pageInfo { endCursor } }
    }
  }
  fragment Conv on Conversation {
    id
    ... { title }
    texts: messages(last: 3) { nodes { ...Msg } }
  }
  fragment Msg on Message { said: content role feedback { rating } }
`;

/** Left to the executor: a field the plan does not answer (sources), a directive, two pages of messages. */
const UNPLANNED = [
  `{ conversations(first: 3) { edges { node { id messages(first: 2) { edges { node { id sources { id } } } } } } } }`,
  `query ($on: Boolean!) { conversations(first: 3) { edges { node { id title @include(if: $on) } } } }`,
  `{ conversations(first: 3) { edges { node { a: messages(first: 1) { nodes { id } } b: messages(last: 1) { nodes { id } } } } } }`,
  `{ conversations(first: 2) { nodes { id } } viewer { name } }`,
];

// The tree's statement: the conversations' columns with their pages as JSON.
const TREE_STATEMENT = /^SELECT c\."id", c\."lastMessageAt"/;

describeEachDatabase('planned reads', (variant) => {
  let planned: TestApp;
  let resolved: TestApp;
  let key: string;
  let otherKey: string;
  let publishableKey: string;
  let conversations: { id: string; messageIds: string[] }[];

  beforeAll(async () => {
    planned = await createTestApp(variant, { PARLEY_RESPONSE_CACHE: 'false' });
    resolved = await createTestApp(variant, { PARLEY_RESPONSE_CACHE: 'false', PARLEY_PLANNED_READS: 'false' }, { shared: planned.database });
    const product = await planned.product('Planned');
    key = product.key;
    publishableKey = product.publishableKey;
    const other = await planned.product('Other');
    otherKey = other.key;
    conversations = await seedConversations(planned.prisma, product.id, { conversations: 12, messages: 9, feedbackEvery: 2 });
    conversations.push(...(await seedConversations(planned.prisma, product.id, { conversations: 3, messages: 2, sessionId: 'session-2' })));
    await seedConversations(planned.prisma, other.id, { conversations: 3, messages: 3 });
    // Nullable columns with values, a conversation without messages, and ties on the order's time (the id decides).
    await planned.prisma.message.updateMany({
      where: { id: { in: conversations.map((c) => c.messageIds[1]!) } },
      data: { model: 'm-1', latencyMs: 12, cached: true },
    });
    await planned.prisma.feedback.updateMany({ where: { productId: product.id }, data: { comment: 'thanks' } });
    await planned.prisma.conversation.create({ data: { productId: product.id, sessionId: 'session-1', title: 'Empty' } });
    const tied = new Date('2026-01-01T00:00:00.000Z');
    await planned.prisma.conversation.updateMany({
      where: { id: { in: conversations.slice(2, 5).map((c) => c.id) } },
      data: { lastMessageAt: tied },
    });
    await planned.prisma.message.updateMany({ where: { id: { in: conversations[0]!.messageIds.slice(3, 6) } }, data: { createdAt: tied } });
  });
  afterAll(async () => {
    await resolved?.dispose();
    await planned?.dispose();
  });

  /** The query asked of both apps: the same status, data and errors; the planned app's SQL is returned. */
  const both = async (
    query: string,
    variables: Record<string, unknown> = {},
    asKey = key,
    refused = false,
    headers: Record<string, string> = {},
  ): Promise<GqlResult> => {
    await planned.app.deps.cache.flush();
    const a = await planned.gql(query, { key: asKey, variables, headers });
    const b = await resolved.gql(query, { key: asKey, variables, headers });
    const shape = (r: GqlResult) => ({
      status: r.status,
      data: r.data,
      errors: r.errors?.map((e) => ({ message: e.message, path: e.path, code: e.extensions?.code })),
    });
    expect(shape(a)).toEqual(shape(b));
    if (!refused) expect(a.errors, JSON.stringify(a.errors)).toBeUndefined();
    // Same bytes as well: same keys in the same order.
    expect(JSON.stringify(a.data)).toBe(JSON.stringify(b.data));
    return a;
  };

  const treeStatements = (r: GqlResult) => r.sql.filter((s) => TREE_STATEMENT.test(s));

  it('answers a first page with everything beneath it from one statement, as the executor does', async () => {
    const r = await both(EVERYTHING, { first: 6, mFirst: 4 });
    expect(r.data.list.edges).toHaveLength(6);
    // The newest is the conversation without messages.
    expect(r.data.list.edges[0].node.lastMessage).toBeNull();
    expect(r.data.list.edges.map((e: any) => e.node.messages.edges.length)).toContain(4);
    expect(treeStatements(r)).toHaveLength(1);
    // The product key's lookup, then the tree: nothing else.
    expect(r.sql.length).toBeLessThanOrEqual(2);
  });

  it('pages forwards and backwards through every conversation with the same cursors and page info', async () => {
    let after: string | null = null;
    let seen = 0;
    for (let page = 0; page < 10; page++) {
      const r = await both(EVERYTHING, { first: 4, after, mLast: 3 });
      expect(treeStatements(r)).toHaveLength(1);
      seen += r.data.list.edges.length;
      if (!r.data.list.pageInfo.hasNextPage) break;
      after = r.data.list.pageInfo.endCursor;
    }
    expect(seen).toBe(conversations.length + 1);
    let before: string | null = after;
    for (let page = 0; page < 10 && before; page++) {
      const r = await both(EVERYTHING, { last: 5, before, mFirst: 2 });
      expect(treeStatements(r)).toHaveLength(1);
      before = r.data.list.pageInfo.hasPreviousPage ? r.data.list.pageInfo.startCursor : null;
    }
  });

  it("pages one conversation's messages by its cursor; other conversations' pages are empty", async () => {
    const first = await both(EVERYTHING, { first: 8, mFirst: 3 });
    const edge = first.data.list.edges.find((e: any) => e.node.messages.edges.length === 3);
    const cursor = edge.node.messages.pageInfo.endCursor;
    const next = await both(EVERYTHING, { first: 8, mFirst: 3, mAfter: cursor });
    expect(treeStatements(next)).toHaveLength(1);
    const pages = next.data.list.edges.map((e: any) => e.node.messages.edges.length);
    expect(pages.filter((n: number) => n > 0)).toHaveLength(1);
    await both(EVERYTHING, { first: 8, mLast: 2, mBefore: cursor });
  });

  it('filters by session, follows fragments and aliases, and gives another product nothing', async () => {
    const session = await both(EVERYTHING, { first: 10, sessionId: 'session-2' });
    expect(session.data.list.edges).toHaveLength(3);
    const fragments = await both(FRAGMENTS);
    expect(treeStatements(fragments)).toHaveLength(1);
    await both(FRAGMENTS, { after: fragments.data.conversations.pageInfo.endCursor });
    // A cursor of this product's list, sent with another product's key: an empty page, no rows.
    const theirs = await both(FRAGMENTS, { after: fragments.data.conversations.pageInfo.endCursor }, otherKey);
    expect(theirs.data.conversations.nodes).toEqual([]);
    await both(EVERYTHING, { first: 0 });
    await both(EVERYTHING, { last: 3, mLast: 0 });
  });

  it('leaves what it does not answer to the executor, errors included', async () => {
    for (const query of UNPLANNED) {
      const r = await both(query, { on: true });
      expect(treeStatements(r)).toEqual([]);
    }
    const refusals = [
      { first: 2, after: 'not-a-cursor' },
      { first: 2, last: 2, after: 'x' },
      { first: 2, mFirst: 1, mBefore: 'nope' },
      { first: 2, sessionId: 'a\u0000b' },
      // A cursor of the earlier format: the row id alone.
      { first: 2, after: Buffer.from(`GPC:S:${conversations[0]!.id}`).toString('base64') },
    ];
    for (const variables of refusals) await both(EVERYTHING, variables, key, true);
    // A publishable key's checks run in the executor: the list is closed to it.
    const widget = await both(EVERYTHING, { first: 2 }, publishableKey, true);
    expect(widget.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
  });

  it("answers the chat widget's read of one conversation, for the secret key and for the token's own conversation", async () => {
    const WIDGET = `query($id: ID!) { conversation(id: $id) { __typename id title messages(last: 4) { edges { cursor node { ${MESSAGE_FIELDS} } } pageInfo { hasPreviousPage startCursor } } lastMessage { content } } }`;
    const id = encodeGlobalID('Conversation', conversations[0]!.id);
    const secret = await both(WIDGET, { id });
    expect(secret.data.conversation.messages.edges).toHaveLength(4);
    expect(treeStatements(secret)).toHaveLength(1);
    const older = await both(
      WIDGET.replace('messages(last: 4)', 'messages(last: 4, before: $before)').replace('($id: ID!)', '($id: ID!, $before: String)'),
      {
        id,
        before: secret.data.conversation.messages.pageInfo.startCursor,
      },
    );
    expect(older.data.conversation.messages.edges).toHaveLength(4);
    // Another product's conversation is null, as a missing one; a malformed id is the executor's error.
    const theirs = await both(WIDGET, { id }, otherKey);
    expect(theirs.data.conversation).toBeNull();
    await both(WIDGET, { id: 'nope' }, key, true);

    // The publishable key with a token: planned for the token's own conversation only.
    const started = dataOf(await planned.gql(`mutation { startConversation(input: { sessionId: "w" }) { id conversationToken } }`, { key }));
    const headers = { 'x-conversation-token': started.startConversation.conversationToken };
    const own = await both(WIDGET, { id: started.startConversation.id }, publishableKey, false, headers);
    expect(own.data.conversation.id).toBe(started.startConversation.id);
    expect(treeStatements(own)).toHaveLength(1);
    const other = await both(WIDGET, { id }, publishableKey, true, headers);
    expect(treeStatements(other)).toEqual([]);
  });

  it('keeps a first page until a write changes it, and shows the write after', async () => {
    const query = `{ conversations(first: 2) { edges { node { id messageCount lastMessage { content } } } } }`;
    await planned.app.deps.cache.flush();
    const filled = await planned.gql(query, { key });
    expect(treeStatements(filled)).toHaveLength(1);
    const again = await planned.gql(query, { key });
    expect(again.sql).toEqual([]);
    expect(again.data).toEqual(filled.data);
    const id = encodeGlobalID('Conversation', conversations[7]!.id);
    await sendQuestion(planned, key, id, 'What is new?');
    const after = dataOf(await planned.gql(query, { key }));
    expect(after.conversations.edges[0].node.id).toBe(id);
    expect(after.conversations.edges[0].node.lastMessage.content).toMatch(/./);
    expect(after.conversations.edges[0]).not.toEqual(filled.data.conversations.edges[0]);
  });
});
