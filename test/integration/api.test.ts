import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';
import { NO_ANSWER } from '../../src/services/answers/local-engine.js';
import { appendMessage } from '../../src/services/messages.js';

// An example session through the API: what a widget and a dashboard do.

const CONVERSATION_FIELDS = /* GraphQL */ `
  fragment C on Conversation {
    id
    sessionId
    title
    messageCount
    lastMessageAt
    createdAt
    lastMessage { id role content createdAt }
  }
`;

const START = /* GraphQL */ `
  mutation Start($input: StartConversationInput!) { startConversation(input: $input) { ...C } }
  ${CONVERSATION_FIELDS}
`;

const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      message { id role content createdAt conversation { id messageCount } }
      reply { id role content createdAt model cached sources { id } }
      replyId
    }
  }
`;

const CONVERSATION = /* GraphQL */ `
  query Conversation($id: ID!) { conversation(id: $id) { ...C } }
  ${CONVERSATION_FIELDS}
`;

const PAGE = /* GraphQL */ `
  query Page($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
    conversation(id: $id) {
      messages(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id content createdAt } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
      }
    }
  }
`;

const LIST = /* GraphQL */ `
  query List($first: Int, $sessionId: String) {
    conversations(first: $first, sessionId: $sessionId) {
      edges { node { id sessionId lastMessageAt } }
      pageInfo { hasNextPage }
    }
  }
`;

const STATS = /* GraphQL */ `{ viewer { id stats { conversationCount messageCount feedbackUp feedbackDown } } }`;

const FEEDBACK = /* GraphQL */ `
  mutation Rate($input: SubmitFeedbackInput!) {
    submitFeedback(input: $input) { id rating comment createdAt message { id role feedback { id rating } } }
  }
`;

/** Fails with the errors in the message, so a broken request says why. */
function ok<T>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}

const ms = (iso: string) => new Date(iso).getTime();

describeEachDatabase('API: an example session', (variant) => {
  let t: TestApp;
  let product: { id: string; key: string };
  const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: product.key, variables });
  const start = async (sessionId: string, title?: string) => ok(await gql(START, { input: { sessionId, title } })).startConversation;
  const send = async (conversationId: string, content: string) => ok(await gql(SEND, { input: { conversationId, content } })).sendMessage;
  const conversation = async (id: string) => ok(await gql(CONVERSATION, { id })).conversation;

  beforeAll(async () => {
    t = await createTestApp(variant);
    product = await t.product('Session shop');
  });
  afterAll(() => t?.dispose());

  describe('sendMessage', () => {
    it('starts a conversation, and messageCount, lastMessageAt and lastMessage follow every send', async () => {
      const started = await start('widget-1', 'Where is my order?');
      expect(started).toMatchObject({ sessionId: 'widget-1', title: 'Where is my order?', messageCount: 0, lastMessage: null });
      expect(ms(started.lastMessageAt)).toBeGreaterThanOrEqual(ms(started.createdAt));

      let previous = ms(started.lastMessageAt);
      const sent: string[] = [];
      for (const [i, content] of ['Hello!', 'Where is order #1234?', 'It was due yesterday.', 'Thanks'].entries()) {
        const payload = await send(started.id, content);
        // Every question gets its ASSISTANT reply (this product has no knowledge: the local engine says so).
        expect(payload.reply).toMatchObject({ role: 'ASSISTANT', model: 'local-fts', sources: [] });
        expect(payload.replyId).toBe(payload.reply.id);
        expect(payload.message).toMatchObject({ role: 'USER', content, conversation: { id: started.id, messageCount: 2 * (i + 1) } });
        const created = ms(payload.message.createdAt);
        expect(created).toBeGreaterThan(previous);
        expect(ms(payload.reply.createdAt)).toBeGreaterThan(created);
        previous = ms(payload.reply.createdAt);
        sent.push(payload.message.id, payload.reply.id);

        const now = await conversation(started.id);
        expect(now.messageCount).toBe(2 * (i + 1));
        const { id, role, content: replyContent, createdAt } = payload.reply;
        expect(now.lastMessage).toEqual({ id, role, content: replyContent, createdAt });
        expect(now.lastMessageAt).toBe(createdAt);
        expect(now.createdAt).toBe(started.createdAt);
      }

      const page = ok(await gql(PAGE, { id: started.id, first: 10 })).conversation.messages;
      expect(page.edges.map((e: any) => e.node.id)).toEqual(sent);
    });

    it('20 concurrent sends leave messageCount exact and lastMessage the newest', async () => {
      const { id } = await start('widget-burst');
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) => gql(SEND, { input: { conversationId: id, content: `burst ${i}` } })));
      // 20 questions and their 20 replies.
      const messages = results.flatMap((r) => [ok(r).sendMessage.message, ok(r).sendMessage.reply]);
      const times = messages.map((m: any) => ms(m.createdAt));
      expect(new Set(times).size).toBe(40);

      const now = await conversation(id);
      expect(now.messageCount).toBe(40);
      const newest = messages.reduce((a: any, b: any) => (ms(b.createdAt) > ms(a.createdAt) ? b : a));
      expect(now.lastMessage.id).toBe(newest.id);
      expect(now.lastMessageAt).toBe(newest.createdAt);

      const page = ok(await gql(PAGE, { id, first: 100 })).conversation.messages;
      const stored = page.edges.map((e: any) => e.node);
      expect(stored).toHaveLength(40);
      expect(new Set(stored.map((m: any) => m.id))).toEqual(new Set(messages.map((m: any) => m.id)));
      for (let i = 1; i < stored.length; i++) expect(ms(stored[i].createdAt)).toBeGreaterThan(ms(stored[i - 1].createdAt));
      expect(stored.at(-1).id).toBe(newest.id);
      // The stored counter agrees with the rows.
      expect(await t.prisma.message.count({ where: { conversation: { productId: product.id, sessionId: 'widget-burst' } } })).toBe(40);
    });

    it('an unknown conversation is NOT_FOUND and writes nothing', async () => {
      const before = await t.prisma.message.count();
      const missing = gid('Conversation', '0190a000-0000-7000-8000-000000000000');
      const result = await gql(SEND, { input: { conversationId: missing, content: 'hello?' } });
      expect(result.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
      expect(await t.prisma.message.count()).toBe(before);
    });
  });

  describe('messages paging', () => {
    let conversationId: string;
    let all: string[];

    beforeAll(async () => {
      ({ id: conversationId } = await start('widget-paging', 'Long chat'));
      all = [];
      // 12 questions and their replies: 24 messages.
      for (let i = 0; i < 12; i++) {
        const sent = await send(conversationId, `line ${String(i).padStart(2, '0')}`);
        all.push(sent.message.id, sent.reply.id);
      }
    });

    it('first/after walks oldest → newest without gaps or duplicates', async () => {
      const seen: string[] = [];
      const pages: any[] = [];
      let after: string | null = null;
      for (let guard = 0; guard < 10; guard++) {
        const page: any = ok(await gql(PAGE, { id: conversationId, first: 5, after })).conversation.messages;
        pages.push(page);
        seen.push(...page.edges.map((e: any) => e.node.id));
        expect(page.pageInfo.startCursor).toBe(page.edges[0]?.cursor ?? null);
        expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
        if (!page.pageInfo.hasNextPage) break;
        after = page.pageInfo.endCursor;
      }
      expect(seen).toEqual(all);
      expect(pages.map((p) => p.edges.length)).toEqual([5, 5, 5, 5, 4]);
      expect(pages[0].pageInfo).toMatchObject({ hasPreviousPage: false, hasNextPage: true });
      for (const middle of pages.slice(1, -1)) expect(middle.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: true });
      expect(pages.at(-1).pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: false });
    });

    it('last/before walks back newest → oldest without gaps or duplicates', async () => {
      const seen: string[] = [];
      const pages: any[] = [];
      let before: string | null = null;
      for (let guard = 0; guard < 10; guard++) {
        const page: any = ok(await gql(PAGE, { id: conversationId, last: 5, before })).conversation.messages;
        pages.push(page);
        // Each page is itself oldest → newest; pages come newest first.
        seen.unshift(...page.edges.map((e: any) => e.node.id));
        if (!page.pageInfo.hasPreviousPage) break;
        before = page.pageInfo.startCursor;
      }
      expect(seen).toEqual(all);
      expect(pages.map((p) => p.edges.length)).toEqual([5, 5, 5, 5, 4]);
      expect(pages[0].edges.at(-1).node.id).toBe(all.at(-1));
      expect(pages[0].pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: true });
      for (const middle of pages.slice(1, -1)) expect(middle.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: true });
      expect(pages.at(-1).pageInfo).toMatchObject({ hasPreviousPage: false, hasNextPage: true });
      expect(pages.at(-1).edges[0].node.id).toBe(all[0]);
    });

    it('a page size that divides the total exactly ends with hasNextPage false, not an empty page', async () => {
      const first = ok(await gql(PAGE, { id: conversationId, first: 24 })).conversation.messages;
      expect(first.edges).toHaveLength(24);
      expect(first.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
      const last = ok(await gql(PAGE, { id: conversationId, last: 24 })).conversation.messages;
      expect(last.edges.map((e: any) => e.node.id)).toEqual(all);
      expect(last.pageInfo).toMatchObject({ hasNextPage: false, hasPreviousPage: false });
    });

    it('a message sent while paging shows up on the next forward page (infinite scroll)', async () => {
      const { id } = await start('widget-live');
      const pair = async (content: string) => {
        const sent = await send(id, content);
        return [sent.message.id, sent.reply.id];
      };
      const ids = [...(await pair('one')), ...(await pair('two'))];
      const page = ok(await gql(PAGE, { id, first: 4 })).conversation.messages;
      expect(page.pageInfo.hasNextPage).toBe(false);
      const third = await pair('three');
      const next = ok(await gql(PAGE, { id, first: 4, after: page.pageInfo.endCursor })).conversation.messages;
      expect(next.edges.map((e: any) => e.node.id)).toEqual(third);
      expect(page.edges.map((e: any) => e.node.id)).toEqual(ids);
    });
  });

  describe('conversations', () => {
    it('lists newest activity first; a message to an old conversation moves it to the top', async () => {
      const other = await t.product('Conversation list');
      const list = async (variables: Record<string, unknown>) =>
        ok(await t.gql(LIST, { key: other.key, variables })).conversations.edges.map((e: any) => e.node);
      const as = (sessionId: string, title?: string) =>
        t.gql(START, { key: other.key, variables: { input: { sessionId, title } } }).then((r) => ok(r).startConversation);

      const a = await as('session-a', 'A');
      const b = await as('session-b', 'B');
      const c = await as('session-a', 'C');
      expect((await list({ first: 10 })).map((n: any) => n.id)).toEqual([c.id, b.id, a.id]);

      const sent = await t.gql(SEND, { key: other.key, variables: { input: { conversationId: a.id, content: 'Still there?' } } });
      ok(sent);
      const reordered = await list({ first: 10 });
      expect(reordered.map((n: any) => n.id)).toEqual([a.id, c.id, b.id]);
      for (let i = 1; i < reordered.length; i++) {
        expect(ms(reordered[i - 1].lastMessageAt)).toBeGreaterThanOrEqual(ms(reordered[i].lastMessageAt));
      }

      // Page size is honoured and says there is more.
      const top = ok(await t.gql(LIST, { key: other.key, variables: { first: 2 } })).conversations;
      expect(top.edges.map((e: any) => e.node.id)).toEqual([a.id, c.id]);
      expect(top.pageInfo.hasNextPage).toBe(true);

      // sessionId filter, same order.
      expect((await list({ first: 10, sessionId: 'session-a' })).map((n: any) => n.id)).toEqual([a.id, c.id]);
      expect((await list({ first: 10, sessionId: 'session-b' })).map((n: any) => n.id)).toEqual([b.id]);
      expect(await list({ first: 10, sessionId: 'nobody' })).toEqual([]);

      // viewer.conversations is the same list.
      const viewer = ok(
        await t.gql(`{ viewer { conversations(first: 10, sessionId: "session-a") { edges { node { id } } } } }`, { key: other.key }),
      ).viewer.conversations.edges.map((e: any) => e.node.id);
      expect(viewer).toEqual([a.id, c.id]);

      // Another product's conversations are not listed.
      const mine = (await list({ first: 100 })).map((n: any) => n.id);
      expect(mine).toHaveLength(3);
    });
  });

  describe('feedback, stats and node', () => {
    let fresh: { id: string; key: string };
    let conversationId: string;
    let userMessageId: string;
    let replyIds: string[];

    beforeAll(async () => {
      fresh = await t.product('Feedback shop');
      const started = await t.gql(START, { key: fresh.key, variables: { input: { sessionId: 's', title: 'Rate me' } } });
      conversationId = ok(started).startConversation.id;
      replyIds = [];
      for (const content of ['How long is shipping?', 'And express delivery?']) {
        const sent = ok(await t.gql(SEND, { key: fresh.key, variables: { input: { conversationId, content } } })).sendMessage;
        userMessageId ??= sent.message.id;
        replyIds.push(sent.reply.id);
      }
    });

    const asFresh = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: fresh.key, variables });

    it('submitFeedback then re-submitting replaces the rating (one row), and stats follow', async () => {
      expect(ok(await asFresh(STATS)).viewer.stats).toEqual({ conversationCount: 1, messageCount: 4, feedbackUp: 0, feedbackDown: 0 });

      const first = ok(await asFresh(FEEDBACK, { input: { messageId: replyIds[0], rating: 'UP', comment: 'helpful' } })).submitFeedback;
      expect(first).toMatchObject({ rating: 'UP', comment: 'helpful', message: { id: replyIds[0], role: 'ASSISTANT' } });
      expect(first.message.feedback).toEqual({ id: first.id, rating: 'UP' });
      expect(ok(await asFresh(STATS)).viewer.stats).toMatchObject({ feedbackUp: 1, feedbackDown: 0 });

      const again = ok(await asFresh(FEEDBACK, { input: { messageId: replyIds[0], rating: 'DOWN' } })).submitFeedback;
      expect(again).toMatchObject({ id: first.id, rating: 'DOWN', comment: null });
      expect(ms(again.createdAt)).toBeGreaterThanOrEqual(ms(first.createdAt));
      expect(await t.prisma.feedback.count({ where: { productId: fresh.id } })).toBe(1);
      expect(ok(await asFresh(STATS)).viewer.stats).toEqual({ conversationCount: 1, messageCount: 4, feedbackUp: 0, feedbackDown: 1 });

      ok(await asFresh(FEEDBACK, { input: { messageId: replyIds[1], rating: 'UP' } }));
      expect(await t.prisma.feedback.count({ where: { productId: fresh.id } })).toBe(2);
      expect(ok(await asFresh(STATS)).viewer.stats).toEqual({ conversationCount: 1, messageCount: 4, feedbackUp: 1, feedbackDown: 1 });

      // A second conversation counts too.
      const second = ok(await asFresh(START, { input: { sessionId: 's2' } })).startConversation;
      ok(await asFresh(SEND, { input: { conversationId: second.id, content: 'hi' } }));
      expect(ok(await asFresh(STATS)).viewer.stats).toEqual({ conversationCount: 2, messageCount: 6, feedbackUp: 1, feedbackDown: 1 });
    });

    it('concurrent ratings of one reply all succeed and leave one row', async () => {
      const reply = await appendMessage(
        t.store,
        fresh.id,
        (await t.prisma.conversation.findFirstOrThrow({ where: { productId: fresh.id, sessionId: 's' } })).id,
        { role: 'ASSISTANT', content: 'Anything else?' },
      );
      const messageId = gid('Message', reply.id);
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => asFresh(FEEDBACK, { input: { messageId, rating: i % 2 ? 'UP' : 'DOWN', comment: `#${i}` } })),
      );
      const ids = new Set(results.map((r) => ok(r).submitFeedback.id));
      expect(ids.size).toBe(1);
      const rows = await t.prisma.feedback.findMany({ where: { messageId: reply.id } });
      expect(rows).toHaveLength(1);
      // The stored rating is the one of whichever request wrote last, and node agrees.
      const shown = ok(await asFresh(`query($id: ID!) { node(id: $id) { ... on Message { feedback { rating comment } } } }`, { id: messageId }));
      expect(shown.node.feedback).toEqual({ rating: rows[0]!.rating, comment: rows[0]!.comment });
    });

    it('feedback on a USER message is BAD_USER_INPUT and writes nothing', async () => {
      const before = await t.prisma.feedback.count();
      const result = await asFresh(FEEDBACK, { input: { messageId: userMessageId, rating: 'UP' } });
      expect(result.data).toBeNull();
      expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.messageId' });
      expect(await t.prisma.feedback.count()).toBe(before);
    });

    it("feedback on another product's message is NOT_FOUND", async () => {
      const result = await gql(FEEDBACK, { input: { messageId: replyIds[1], rating: 'UP' } });
      expect(result.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    });

    it('node(id) round-trips every node type', async () => {
      const entry = ok(await asFresh(`mutation { addKnowledge(input: { title: "Shipping", content: "Ships in 2 days." }) { id } }`)).addKnowledge.id;
      const feedbackId = ok(await asFresh(`query($id: ID!) { node(id: $id) { ... on Message { feedback { id } } } }`, { id: replyIds[1] })).node
        .feedback.id;
      const productId = ok(await asFresh(`{ viewer { id } }`)).viewer.id;
      expect(productId).toBe(gid('Product', fresh.id));

      const NODE = /* GraphQL */ `
        query($id: ID!) {
          node(id: $id) {
            __typename id
            ... on Product { name }
            ... on Conversation { title }
            ... on Message { content }
            ... on Feedback { rating }
            ... on KnowledgeEntry { entryTitle: title }
          }
        }
      `;
      const expected: [string, string, Record<string, unknown>][] = [
        ['Product', productId, { name: 'Feedback shop' }],
        ['Conversation', conversationId, { title: 'Rate me' }],
        ['Message', userMessageId, { content: 'How long is shipping?' }],
        ['Message', replyIds[1]!, { content: NO_ANSWER }],
        ['Feedback', feedbackId, { rating: 'UP' }],
        ['KnowledgeEntry', entry, { entryTitle: 'Shipping' }],
      ];
      for (const [typename, id, fields] of expected) {
        const node = ok(await asFresh(NODE, { id })).node;
        expect(node).toEqual({ __typename: typename, id, ...fields });
      }
      const nodes = ok(await asFresh(`query($ids: [ID!]!) { nodes(ids: $ids) { id __typename } }`, { ids: expected.map((e) => e[1]) })).nodes;
      expect(nodes.map((n: any) => [n.__typename, n.id])).toEqual(expected.map(([type, id]) => [type, id]));

      // Another product sees none of them: same answer as an id that does not exist.
      for (const [, id] of expected) {
        const other = await gql(NODE, { id });
        expect(other.errors).toBeUndefined();
        expect(other.data.node).toBeNull();
      }
      expect(ok(await gql(CONVERSATION, { id: conversationId })).conversation).toBeNull();
    });
  });
});
