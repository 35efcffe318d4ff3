import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';
import {
  CONVERSATION_EVENTS,
  PRODUCT_FEEDBACK,
  disposeClients,
  eventually,
  liveClient,
  openSse,
  subscribe,
  uniquePrefix,
  type Subscription,
} from '../helpers/live.js';
import { within } from '../helpers/time.js';
import { conversationEvents, type ConversationEvent } from '../../src/services/events.js';
import { uuidv7 } from '../../src/services/ids.js';
import { appendMessage } from '../../src/services/messages.js';
import { createTyping, memoryTypingStore, redisTypingStore } from '../../src/services/typing.js';

/**
 * Live conversations end to end, in both runtime modes: embedded (PGlite and
 * in-process events) and production (PostgreSQL and Redis). graphql-ws on a
 * real port, SSE through Yoga.
 */

const redisUrl = inject('redisUrl');
const [pglite, postgres] = databaseVariants();
const modes = [
  { name: 'embedded: PGlite, in-process events', variant: pglite!, redis: false, available: true },
  { name: 'PostgreSQL + Redis', variant: postgres!, redis: true, available: postgres!.available && Boolean(redisUrl) },
];

const SEND = `mutation($c: ID!, $text: String!) { sendMessage(input: { conversationId: $c, content: $text }) { message { id } } }`;
const START = `mutation { startConversation(input: { sessionId: "live" }) { id } }`;
const RATE = `mutation($m: ID!, $r: Rating!, $c: String) { submitFeedback(input: { messageId: $m, rating: $r, comment: $c }) { id } }`;
const TYPING = `mutation($c: ID!, $t: Boolean!) { setTyping(input: { conversationId: $c, isTyping: $t }) }`;
const MESSAGES = `query($id: ID!) { conversation(id: $id) { messages(first: 100) { edges { cursor node { id } } } } }`;

function ok<T>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}

const uuidOf = (globalId: string) => Buffer.from(globalId, 'base64').toString('utf8').split(':')[1]!;

for (const mode of modes) {
  describe.skipIf(!mode.available)(`live conversations [${mode.name}]`, () => {
    let t: TestApp;
    let wsUrl: string;
    let port: number;
    let a: { id: string; key: string };
    let b: { id: string; key: string };
    const prefix = uniquePrefix('live');

    const as = (key: string) => (query: string, variables?: Record<string, unknown>) => t.gql(query, { key, variables });
    const client = (key: string) => liveClient(wsUrl, { connectionParams: { productKey: key } }).client;
    const start = async (key: string) => ok(await as(key)(START)).startConversation.id as string;
    const send = async (key: string, c: string, text: string) => ok(await as(key)(SEND, { c, text })).sendMessage.message.id as string;
    /** Waits until `n` more subscriptions than `base` are listening: events published now reach them. */
    const listening = (base: number, n = 1) => eventually(() => t.app.deps.pubsub.stats().subscribed >= base + n, `${n} subscription(s) listening`);
    const subscribedNow = () => t.app.deps.pubsub.stats().subscribed;
    const reply = async (productId: string, conversationGid: string, content = 'An answer') =>
      (await appendMessage(t.store, productId, uuidOf(conversationGid), { role: 'ASSISTANT', content })).id;
    /** Ids of the MessageAdded events so far (typing events of replies interleave). */
    const messageIds = (s: Subscription) =>
      s.results.filter((r) => r.conversationEvents.__typename === 'MessageAdded').map((r) => r.conversationEvents.message.id as string);

    beforeAll(async () => {
      t = await createTestApp(mode.variant, mode.redis ? { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: prefix } : {});
      port = (await t.app.start(0, '127.0.0.1')).port;
      wsUrl = `ws://127.0.0.1:${port}/graphql`;
      a = await t.product('Product A');
      b = await t.product('Product B');
    });
    afterEach(async () => {
      await disposeClients();
      // Every subscription of the test is released on the server before the next test counts.
      await eventually(() => t.app.deps.pubsub.stats().streams === 0, 'no stream left open');
    });
    afterAll(() => t?.dispose());

    it('uses the pub/sub of its mode', () => {
      expect(t.app.deps.pubsub.kind).toBe(mode.redis ? 'redis' : 'memory');
    });

    it('sendMessage reaches a graphql-ws subscriber as MessageAdded', async () => {
      const c = await start(a.key);
      const base = subscribedNow();
      const s = subscribe(client(a.key), CONVERSATION_EVENTS, { id: c });
      await listening(base);
      const id = await send(a.key, c, 'Where is my parcel?');
      const [event] = await s.next(1);
      expect(event.conversationEvents).toEqual({ __typename: 'MessageAdded', message: { id, role: 'USER', content: 'Where is my parcel?' } });
      expect(s.errors).toEqual([]);
    });

    it('setTyping broadcasts changes only: repeated true is not re-broadcast; an explicit false is', async () => {
      const c = await start(a.key);
      const base = subscribedNow();
      const s = subscribe(client(a.key), CONVERSATION_EVENTS, { id: c });
      await listening(base);
      for (let i = 0; i < 3; i++) expect(ok(await as(a.key)(TYPING, { c, t: true })).setTyping).toBe(true);
      expect(ok(await as(a.key)(TYPING, { c, t: false })).setTyping).toBe(true);
      // Not typing any more: another false is no change either. A message marks the end.
      expect(ok(await as(a.key)(TYPING, { c, t: false })).setTyping).toBe(true);
      await send(a.key, c, 'marker');
      await s.until((r) => r.conversationEvents.__typename === 'MessageAdded', 'the marker');
      // Up to the marker (its reply's ASSISTANT typing and MessageAdded follow).
      expect(s.results.map((r) => r.conversationEvents).slice(0, 3)).toEqual([
        { __typename: 'TypingChanged', conversationId: c, role: 'USER', isTyping: true },
        { __typename: 'TypingChanged', conversationId: c, role: 'USER', isTyping: false },
        expect.objectContaining({ __typename: 'MessageAdded' }),
      ]);
    });

    it('a typing state that is not refreshed expires: subscribers get isTyping false', async () => {
      // A typing service of its own with a short TTL, publishing through the app's pub/sub.
      const redis = t.app.deps.pubsub.redis;
      const typing = createTyping({
        events: t.app.deps.events,
        store: redis ? redisTypingStore(redis, prefix) : memoryTypingStore(),
        ttlMs: 150,
        log: t.app.deps.log,
      });
      try {
        const c = await start(a.key);
        const base = subscribedNow();
        const s = subscribe(client(a.key), CONVERSATION_EVENTS, { id: c });
        await listening(base);
        expect(await typing.set(uuidOf(c), 'USER', true)).toBe(true);
        await s.next(2);
        expect(s.results.map((r) => r.conversationEvents.isTyping)).toEqual([true, false]);
        await eventually(() => typing.stats().timers === 0, 'no expiry pending');
      } finally {
        typing.dispose();
      }
    });

    it('withAssistantTyping: ASSISTANT types while the reply is produced, then stops', async () => {
      const c = await start(a.key);
      const base = subscribedNow();
      const s = subscribe(client(a.key), CONVERSATION_EVENTS, { id: c });
      await listening(base);
      const replyId = await t.app.deps.typing.withAssistantTyping(uuidOf(c), async () => {
        await s.next(1); // typing is announced before the work starts
        return (await appendMessage(t.store, a.id, uuidOf(c), { role: 'ASSISTANT', content: 'Here you go' })).id;
      });
      await s.next(3);
      expect(s.results.map((r) => r.conversationEvents)).toEqual([
        { __typename: 'TypingChanged', conversationId: c, role: 'ASSISTANT', isTyping: true },
        { __typename: 'MessageAdded', message: { id: gid('Message', replyId), role: 'ASSISTANT', content: 'Here you go' } },
        { __typename: 'TypingChanged', conversationId: c, role: 'ASSISTANT', isTyping: false },
      ]);
    });

    it('sendMessage answered within the typing delay: the question, then its reply, and no typing', async () => {
      const c = await start(a.key);
      const base = subscribedNow();
      const s = subscribe(client(a.key), CONVERSATION_EVENTS, { id: c });
      await listening(base);
      const sent = ok(
        await as(a.key)(
          `mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "Hello there" }) { message { id } reply { id content } } }`,
          { c },
        ),
      ).sendMessage;
      await s.next(2);
      // A typing event would follow within milliseconds: give it time to show up.
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(s.results.map((r) => r.conversationEvents)).toEqual([
        { __typename: 'MessageAdded', message: { id: sent.message.id, role: 'USER', content: 'Hello there' } },
        { __typename: 'MessageAdded', message: { id: sent.reply.id, role: 'ASSISTANT', content: sent.reply.content } },
      ]);
      // Read after write: both are in the conversation once the mutation returned.
      const read = ok(await as(a.key)(MESSAGES, { id: c })).conversation.messages.edges.map((e: { node: { id: string } }) => e.node.id);
      expect(read).toEqual([sent.message.id, sent.reply.id]);
    });

    it('a streamed reply arrives as ReplyDelta pieces, then MessageAdded under the announced id', async () => {
      const c = await start(a.key);
      const base = subscribedNow();
      const s = subscribe(client(a.key), CONVERSATION_EVENTS, { id: c });
      await listening(base);
      const replyId = uuidv7();
      const events = t.app.deps.events;
      await events.replyDelta(uuidOf(c), replyId, 'Orders ship ', false);
      await events.replyDelta(uuidOf(c), replyId, 'in 2 days.', true);
      await appendMessage(t.store, a.id, uuidOf(c), { id: replyId, role: 'ASSISTANT', content: 'Orders ship in 2 days.' });
      await s.next(3);
      const messageId = gid('Message', replyId);
      expect(s.results.map((r) => r.conversationEvents)).toEqual([
        { __typename: 'ReplyDelta', messageId, delta: 'Orders ship ', done: false },
        { __typename: 'ReplyDelta', messageId, delta: 'in 2 days.', done: true },
        { __typename: 'MessageAdded', message: { id: messageId, role: 'ASSISTANT', content: 'Orders ship in 2 days.' } },
      ]);
    });

    it('feedback reaches the conversation subscriber and the product dashboard', async () => {
      const c = await start(a.key);
      const answer = await reply(a.id, c);
      const ws = client(a.key);
      const base = subscribedNow();
      const conversation = subscribe(ws, CONVERSATION_EVENTS, { id: c });
      const dashboard = subscribe(ws, PRODUCT_FEEDBACK);
      await listening(base, 2);
      const feedbackId = ok(await as(a.key)(RATE, { m: gid('Message', answer), r: 'UP', c: 'Helpful' })).submitFeedback.id;
      const [event] = await conversation.next(1);
      expect(event.conversationEvents).toEqual({ __typename: 'FeedbackAdded', feedback: { id: feedbackId, rating: 'UP', comment: 'Helpful' } });
      const [dash] = await dashboard.next(1);
      expect(dash.productFeedback).toEqual({ id: feedbackId, rating: 'UP', comment: 'Helpful', message: { id: gid('Message', answer) } });
    });

    it('resolves every event with fresh loaders: a re-rating and a new message show current rows', async () => {
      const c = await start(a.key);
      const answer = await reply(a.id, c);
      const base = subscribedNow();
      const s = subscribe(client(a.key), `subscription { productFeedback { id rating comment message { id conversation { messageCount } } } }`);
      await listening(base);
      const rate = (r: string, comment: string) => as(a.key)(RATE, { m: gid('Message', answer), r, c: comment });
      const first = ok(await rate('UP', 'good')).submitFeedback.id;
      await s.next(1);
      await send(a.key, c, 'one more question');
      // The same feedback row again (a re-rating keeps its id), and the same message and conversation.
      const second = ok(await rate('DOWN', 'wrong after all')).submitFeedback.id;
      expect(second).toBe(first);
      await s.next(2);
      expect(s.results.map((r) => r.productFeedback)).toEqual([
        { id: first, rating: 'UP', comment: 'good', message: { id: gid('Message', answer), conversation: { messageCount: 1 } } },
        // The question and its reply were added meanwhile.
        { id: first, rating: 'DOWN', comment: 'wrong after all', message: { id: gid('Message', answer), conversation: { messageCount: 3 } } },
      ]);
    });

    it('subscribers of one event with different variables get their own results (only identical work is shared)', async () => {
      const c = await start(a.key);
      const ws = client(a.key);
      const query = `subscription($id: ID!, $full: Boolean!) {
        conversationEvents(conversationId: $id) { ... on MessageAdded { message { id content @include(if: $full) } } } }`;
      const base = subscribedNow();
      const full = subscribe(ws, query, { id: c, full: true });
      const short = subscribe(ws, query, { id: c, full: false });
      const same = subscribe(ws, query, { id: c, full: true });
      await listening(base, 3);
      const id = await send(a.key, c, 'shared?');
      await Promise.all([full.next(1), short.next(1), same.next(1)]);
      expect(full.results[0].conversationEvents.message).toEqual({ id, content: 'shared?' });
      expect(same.results[0]).toEqual(full.results[0]);
      expect(short.results[0].conversationEvents.message).toEqual({ id });
    });

    it('a subscription refused before it runs (page size) is its own error: the socket and its other subscriptions stay', async () => {
      const c = await start(a.key);
      const live = liveClient(wsUrl, { connectionParams: { productKey: a.key } });
      const base = subscribedNow();
      const good = subscribe(live.client, CONVERSATION_EVENTS, { id: c });
      await listening(base);
      const refused = subscribe(
        live.client,
        `subscription($id: ID!) { conversationEvents(conversationId: $id) {
          ... on MessageAdded { message { conversation { messages(first: 500) { edges { cursor } } } } } } }`,
        { id: c },
      );
      await within(refused.ended, 10_000, 'refused');
      expect(refused.errors.map((e) => [e.extensions?.code, e.extensions?.field])).toEqual([['BAD_USER_INPUT', 'messages.first']]);
      await send(a.key, c, 'still here');
      await good.next(1);
      expect(live.closed).toEqual([]);
    });

    it('with `after`, replays every later message first, then live events', async () => {
      const c = await start(a.key);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push((await appendMessage(t.store, a.id, uuidOf(c), { role: 'USER', content: `m${i}` })).id);
      const edges = ok(await as(a.key)(MESSAGES, { id: c })).conversation.messages.edges;
      const base = subscribedNow();
      const s = subscribe(client(a.key), CONVERSATION_EVENTS, { id: c, after: edges[1].cursor });
      await listening(base);
      const live = await send(a.key, c, 'live');
      await eventually(() => messageIds(s).length >= 4 && true, 'the replay and the live message');
      expect(messageIds(s).slice(0, 4)).toEqual([...ids.slice(2).map((id) => gid('Message', id)), live]);
    });

    it('no gap and no duplicate when messages arrive while the subscription replays', async () => {
      const c = await start(a.key);
      for (let i = 0; i < 10; i++) await appendMessage(t.store, a.id, uuidOf(c), { role: 'USER', content: `old ${i}` });
      const edges = ok(await as(a.key)(MESSAGES, { id: c })).conversation.messages.edges;
      const s = subscribe(client(a.key), CONVERSATION_EVENTS, { id: c, after: edges[2].cursor });
      // Sent while the subscription is being set up and replayed: not waiting for it. Each gets its reply.
      for (let i = 0; i < 15; i++) await send(a.key, c, `new ${i}`);
      const stored = ok(await as(a.key)(MESSAGES, { id: c })).conversation.messages.edges.map((e: any) => e.node.id);
      expect(stored).toHaveLength(10 + 2 * 15);
      await eventually(() => messageIds(s).length >= stored.length - 3 && true, 'every message after the cursor');
      expect(messageIds(s)).toEqual(stored.slice(3));
    });

    it('the replay de-duplicates by id what was both stored before the read and published after the subscribe', async () => {
      // The service directly, with tiny pages, to put writes exactly between subscribe, pages and live.
      const c = uuidOf(await start(a.key));
      const first = await appendMessage(t.store, a.id, c, { role: 'USER', content: 'before' });
      const sources = { prisma: t.prisma, pubsub: t.app.deps.pubsub, replays: t.app.deps.replays };
      const stream = await conversationEvents(sources, a.id, c, first.id, 2);
      const write = async (n: number) => {
        const out: string[] = [];
        for (let i = 0; i < n; i++) out.push((await appendMessage(t.store, a.id, c, { role: 'USER', content: `w${i}` })).id);
        return out;
      };
      const seen: string[] = [];
      const read = async (n: number) => {
        for (let i = 0; i < n; i++) {
          const r = await within(stream.next(), 10_000, 'next event');
          seen.push((r.value as Extract<ConversationEvent, { type: 'messageAdded' }>).messageId);
        }
      };
      try {
        const written = await write(3); // subscribed, nothing read yet: in the replay and live
        await read(1); // mid-replay (page of 2)
        written.push(...(await write(3)));
        await read(5);
        written.push(...(await write(2))); // after the replay caught up: live only
        await read(2);
        expect(seen).toEqual(written);
        expect(new Set(seen).size).toBe(8);
      } finally {
        await stream.return?.();
      }
    });

    it('refuses a malformed cursor, and one of another conversation exactly like a missing one', async () => {
      const c = await start(a.key);
      const other = await start(a.key);
      await appendMessage(t.store, a.id, uuidOf(other), { role: 'USER', content: 'elsewhere' });
      const cursor = ok(await as(a.key)(MESSAGES, { id: other })).conversation.messages.edges[0].cursor;
      const ws = client(a.key);
      const foreign = subscribe(ws, CONVERSATION_EVENTS, { id: c, after: cursor });
      const malformed = subscribe(ws, CONVERSATION_EVENTS, { id: c, after: 'nope' });
      await within(Promise.all([foreign.ended, malformed.ended]), 10_000, 'both refused');
      expect(foreign.errors.map((e) => [e.extensions?.code, e.message])).toEqual([
        ['BAD_USER_INPUT', 'after is not a cursor of this conversation’s messages'],
      ]);
      expect(malformed.errors.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
    });

    it("another product's conversation is NOT_FOUND, like a missing one, and none of its events arrive", async () => {
      const c = await start(a.key);
      const answer = await reply(a.id, c);
      const ws = client(b.key);
      const foreign = subscribe(ws, CONVERSATION_EVENTS, { id: c });
      const missing = subscribe(ws, CONVERSATION_EVENTS, { id: gid('Conversation', '00000000-0000-7000-8000-000000000000') });
      await within(Promise.all([foreign.ended, missing.ended]), 10_000, 'both refused');
      expect(foreign.errors.map((e) => [e.extensions?.code, e.message])).toEqual([['NOT_FOUND', 'Conversation not found']]);
      expect(missing.errors.map((e) => [e.extensions?.code, e.message])).toEqual([['NOT_FOUND', 'Conversation not found']]);
      // B's dashboard stays silent through A's activity; B's own feedback is the marker.
      const base = subscribedNow();
      const dashboard = subscribe(ws, PRODUCT_FEEDBACK);
      await listening(base);
      await send(a.key, c, 'private');
      ok(await as(a.key)(RATE, { m: gid('Message', answer), r: 'UP' }));
      const bc = await start(b.key);
      const bAnswer = await reply(b.id, bc);
      const bFeedback = ok(await as(b.key)(RATE, { m: gid('Message', bAnswer), r: 'DOWN' })).submitFeedback.id;
      await dashboard.next(1);
      expect(dashboard.results.map((r) => r.productFeedback.id)).toEqual([bFeedback]);
      expect([...foreign.results, ...missing.results]).toEqual([]);
    });

    it("setTyping on another product's conversation is NOT_FOUND", async () => {
      const c = await start(a.key);
      const result = await as(b.key)(TYPING, { c, t: true });
      expect(result.errors?.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND']);
    });

    it('subscriptions need a product key: UNAUTHENTICATED for an admin-only connection', async () => {
      const admin = liveClient(wsUrl, { connectionParams: { adminToken: 'adm_test_admin_token_0123456789abcdef' } }).client;
      const s = subscribe(admin, PRODUCT_FEEDBACK);
      await within(s.ended, 10_000, 'refused');
      expect(s.errors.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    });

    it('graphql-ws: no credentials close with 4401 Unauthorized, a wrong key with 4403 Forbidden', async () => {
      const none = liveClient(wsUrl, { lazy: false });
      const wrong = liveClient(wsUrl, { lazy: false, connectionParams: { productKey: 'pk_live_wrong_0000000000000000000000' } });
      await eventually(() => none.closed.length > 0 && wrong.closed.length > 0, 'both closed');
      expect(none.closed).toEqual([{ code: 4401, reason: 'Unauthorized' }]);
      expect(wrong.closed).toEqual([{ code: 4403, reason: 'Forbidden' }]);
    });

    it('SSE: subscribes with the Authorization header and gets the events; closing the request ends the subscription', async () => {
      const c = await start(a.key);
      const base = t.app.deps.pubsub.stats();
      const sse = await openSse(port, { authorization: `Bearer ${a.key}` }, { query: CONVERSATION_EVENTS, variables: { id: c } });
      try {
        expect(sse.status).toBe(200);
        expect(sse.headers['content-type']).toMatch(/text\/event-stream/);
        await listening(base.subscribed);
        const id = await send(a.key, c, 'over SSE');
        expect(await sse.next()).toEqual({
          data: { conversationEvents: { __typename: 'MessageAdded', message: { id, role: 'USER', content: 'over SSE' } } },
        });
      } finally {
        sse.close();
      }
      await eventually(() => t.app.deps.pubsub.stats().streams === base.streams, 'SSE subscription released');
    });

    it('SSE: a wrong key is 401, no key is UNAUTHENTICATED', async () => {
      const wrong = await openSse(port, { authorization: 'Bearer pk_live_wrong_0000000000000000000000' }, { query: PRODUCT_FEEDBACK });
      wrong.close();
      expect(wrong.status).toBe(401);
      const none = await openSse(port, {}, { query: PRODUCT_FEEDBACK });
      try {
        expect((await none.next()).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      } finally {
        none.close();
      }
    });
  });
}
