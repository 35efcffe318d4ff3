import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, dataOf, recordingLogger, sendQuestion, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { PRODUCT_FEEDBACK, disposeClients, eventually, liveClient, subscribe, uniquePrefix, type Subscription } from '../helpers/live.js';
import { findRedisServer, startRedis, type Throwaway } from '../helpers/servers.js';
import { within } from '../helpers/time.js';
import { createPubSub } from '../../src/infra/pubsub/index.js';
import type { Store } from '../../src/services/store.js';
import { startConversation } from '../../src/services/conversations.js';
import { Replays } from '../../src/services/event-replay.js';
import { conversationEvents, createLiveEvents, type ConversationEvent, type ParleyEvents, type ParleyPubSub } from '../../src/services/events.js';
import { submitFeedback } from '../../src/services/feedback.js';
import { appendMessage, insertMessage } from '../../src/services/messages.js';

/**
 * Stored events (messages, ratings) are never lost to an open subscription:
 * a real redis-server of this test's own is stopped for 5 s while writes go
 * on, then started again, and the subscriptions receive what was stored
 * meanwhile — from PostgreSQL, in order, once — without the client doing
 * anything, before live events resume.
 */

const [pglite, postgres] = databaseVariants();
const available = Boolean(findRedisServer()) && postgres!.available;
if (!available) console.warn('\n[parley tests] No redis-server or PostgreSQL: the live-gap test is SKIPPED.\n');

const OUTAGE_MS = 5_000;
const RATE = `mutation($m: ID!, $r: Rating!) { submitFeedback(input: { messageId: $m, rating: $r }) { id } }`;
const EVENTS = /* GraphQL */ `
  subscription Events($id: ID!, $after: String) {
    conversationEvents(conversationId: $id, after: $after) {
      __typename
      ... on MessageAdded { cursor message { id } }
      ... on FeedbackAdded { feedback { id rating message { id } } }
    }
  }
`;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!available)('stored live events survive a Redis outage without client action [postgres]', () => {
  let redis: Throwaway;
  let t: TestApp;
  let wsUrl: string;
  let key: string;

  const send = (c: string, text: string) => sendQuestion(t, key, c, text);
  const rate = async (m: string, r: 'UP' | 'DOWN') => dataOf(await t.gql(RATE, { key, variables: { m, r } })).submitFeedback.id as string;
  /** Events that announce something stored (messages, ratings). */
  const stored = (s: Subscription) => s.results.filter((r) => ['MessageAdded', 'FeedbackAdded'].includes(r.conversationEvents.__typename));
  const messageIds = (s: Subscription) =>
    s.results.filter((r) => r.conversationEvents.__typename === 'MessageAdded').map((r) => r.conversationEvents.message.id as string);
  /** Ratings as delivered: `<message>:<rating>`. */
  const ratings = (s: Subscription) =>
    s.results
      .filter((r) => r.conversationEvents.__typename === 'FeedbackAdded')
      .map((r) => `${r.conversationEvents.feedback.message.id}:${r.conversationEvents.feedback.rating}`);

  beforeAll(async () => {
    redis = await startRedis();
    t = await createTestApp(postgres!, { REDIS_URL: redis.url, PARLEY_REDIS_PREFIX: uniquePrefix('gaps') });
    wsUrl = `ws://127.0.0.1:${(await t.app.start(0, '127.0.0.1')).port}/graphql`;
    key = (await t.product('Gaps')).key;
  });
  afterEach(() => disposeClients());
  afterAll(async () => {
    await t?.dispose();
    await redis?.dispose();
  });

  it('every message and rating stored during a 5 s outage reaches open subscriptions once, in order, before live events', async () => {
    const c = dataOf(await t.gql(`mutation { startConversation(input: { sessionId: "gaps" }) { id } }`, { key })).startConversation.id as string;
    const { client, closed } = liveClient(wsUrl, { connectionParams: { productKey: key } });
    const widget = subscribe(client, EVENTS, { id: c });
    const dashboard = subscribe(client, PRODUCT_FEEDBACK);
    await eventually(() => t.app.deps.pubsub.stats().subscribed === 2, 'both listening');
    const [q0, r0] = await send(c, 'before the outage');
    await rate(r0, 'UP');
    await widget.until((r) => r.conversationEvents.feedback?.message.id === r0, 'the rating before the outage');
    await dashboard.next(1);
    // A widget that resumes from its last message, opened before the outage too.
    const cursor = dataOf(
      await t.gql(`query($id: ID!) { conversation(id: $id) { messages(first: 1) { edges { cursor } } } }`, { key, variables: { id: c } }),
    ).conversation.messages.edges[0].cursor;
    const resumed = subscribe(client, EVENTS, { id: c, after: cursor });
    await resumed.until((r) => r.conversationEvents.message?.id === r0, 'the reply after the cursor');

    await redis.stop!();
    const down = Date.now();
    await eventually(() => !t.app.deps.pubsub.stats().connected, 'the node notices the outage');
    const during: string[] = [];
    for (let i = 0; i < 8; i++) {
      const [q, r] = await send(c, `during the outage ${i}`);
      during.push(q, r);
      await rate(r, i % 2 ? 'DOWN' : 'UP');
      await sleep(OUTAGE_MS / 10);
    }
    await rate(r0, 'DOWN'); // a rating changed during the outage: its new state is delivered
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - down)));
    await redis.start!();

    // Nothing asked by the client: what the outage swallowed arrives by itself.
    const before = [widget, resumed].map((s) => stored(s).length);
    const last = during.at(-1)!;
    const rerated = (r: any) => r.conversationEvents.feedback?.message.id === r0 && r.conversationEvents.feedback.rating === 'DOWN';
    for (const s of [widget, resumed]) {
      await s.until((r) => r.conversationEvents.feedback?.message.id === last, 'the outage’s events, replayed', 20_000);
      await s.until(rerated, 'the rating changed during the outage', 20_000);
    }
    await dashboard.next(10, 20_000);
    // 16 messages and 9 ratings to each conversation subscription, 9 ratings to the dashboard: no more, no less.
    expect([widget, resumed].map((s, i) => stored(s).length - before[i]!)).toEqual([25, 25]);
    expect(t.app.deps.pubsub.stats().resubscribed).toBe(1);
    // The subscriptions' replays queued for the node's bound instead of reading all at once.
    expect(t.app.deps.replays.stats.peak).toBeLessThanOrEqual(t.app.deps.replays.concurrency);
    const [q9, r9] = await send(c, 'after the outage');
    await rate(r9, 'UP');
    for (const s of [widget, resumed]) await s.until((r) => r.conversationEvents.feedback?.message.id === r9, 'live events again');
    await dashboard.next(11);

    const edges = dataOf(
      await t.gql(`query($id: ID!) { conversation(id: $id) { messages(first: 100) { edges { cursor node { id } } } } }`, {
        key,
        variables: { id: c },
      }),
    ).conversation.messages.edges as { cursor: string; node: { id: string } }[];
    const all = edges.map((e) => e.node.id);
    expect(all).toEqual([q0, r0, ...during, q9, r9]);
    expect(messageIds(widget)).toEqual(all);
    expect(messageIds(resumed)).toEqual(all.slice(1));
    // Each MessageAdded carries its message's cursor, live or replayed: a client can resume from the last it saw.
    const cursors = (s: Subscription) =>
      s.results.filter((r) => r.conversationEvents.__typename === 'MessageAdded').map((r) => r.conversationEvents.cursor as string);
    expect(cursors(widget)).toEqual(edges.map((e) => e.cursor));
    const outageRatings = during.filter((_, i) => i % 2).map((r, i) => `${r}:${i % 2 ? 'DOWN' : 'UP'}`);
    for (const s of [widget, resumed]) {
      const seen = ratings(s);
      expect(seen.slice(0, -1).sort()).toEqual([...(s === widget ? [`${r0}:UP`] : []), ...outageRatings, `${r0}:DOWN`].sort());
      expect(seen.at(-1)).toBe(`${r9}:UP`);
      // A rating never comes before the reply it rates.
      const order = s.results
        .map((r) => r.conversationEvents)
        .filter((e) => e.__typename !== 'TypingChanged')
        .map((e) => e.message?.id ?? `rating of ${e.feedback.message.id}`);
      for (const rated of seen) expect(order.indexOf(`rating of ${rated.split(':')[0]}`)).toBeGreaterThan(order.indexOf(rated.split(':')[0]!));
      expect(s.errors).toEqual([]);
    }
    const dashboardRatings = dashboard.results.map((r) => `${r.productFeedback.message.id}:${r.productFeedback.rating}`);
    expect(dashboardRatings.slice(1, -1).sort()).toEqual([...outageRatings, `${r0}:DOWN`].sort());
    expect([dashboardRatings[0], dashboardRatings.at(-1)]).toEqual([`${r0}:UP`, `${r9}:UP`]);
    expect(closed).toEqual([]); // the socket never dropped: nothing for the client to do
  }, 60_000);
});

describe('a subscription catches up from the database after a GAP [pglite, in-process events]', () => {
  let t: TestApp;
  let pubsub: ParleyPubSub;
  let store: Store;
  let product: { id: string; key: string };
  const { log } = recordingLogger();

  beforeAll(async () => {
    t = await createTestApp(pglite!);
    pubsub = await createPubSub<ParleyEvents>({ log, maxBuffered: 4 });
    store = { prisma: t.prisma, cache: t.app.deps.cache, events: createLiveEvents(pubsub, log) };
    product = await t.product('Lagging');
  });
  afterAll(async () => {
    await pubsub?.dispose();
    await t?.dispose();
  });

  /** A conversation's events through the service, and a reader naming each (`rating <id>` for ratings). */
  const open = async () => {
    const c = (await startConversation(store, product.id, { sessionId: 'slow' })).id;
    const stream = await conversationEvents({ prisma: t.prisma, pubsub, replays: new Replays(1) }, product.id, c);
    const read = async (n: number) => {
      const out: string[] = [];
      for (let i = 0; i < n; i++) {
        const event = (await within(stream.next(), 10_000, 'next event')).value as ConversationEvent;
        out.push(event.type === 'messageAdded' ? event.messageId : event.type === 'feedbackAdded' ? `rating ${event.feedbackId}` : event.type);
      }
      return out;
    };
    return { c, stream, read };
  };
  const append = async (c: string, content: string, role: 'USER' | 'ASSISTANT' = 'USER') =>
    (await appendMessage(store, product.id, c, { role, content })).id;

  it('what it had not read gives way to a GAP, and the messages and ratings stored meanwhile come once, in order', async () => {
    const { c, stream, read } = await open();
    try {
      // Nothing read while 11 events come for a buffer of 4.
      const written: string[] = [];
      for (let i = 0; i < 10; i++) written.push(await append(c, `m${i}`, i % 2 ? 'ASSISTANT' : 'USER'));
      const rating = await submitFeedback(store, product.id, written[9]!, { rating: 'UP' });
      expect(await read(11)).toEqual([...written, `rating ${rating.id}`]);
      const next = await append(c, 'live again');
      expect(await read(1)).toEqual([next]);
    } finally {
      await stream.return?.();
    }
  });

  it('a message whose event was lost although a later one arrived is replayed after the GAP', async () => {
    const { c, stream, read } = await open();
    try {
      // Stored first, its event never published (as if its PUBLISH failed while a later one's went through).
      const unannounced = (await insertMessage(t.prisma, product.id, c, { role: 'USER', content: 'lost' })).id;
      const later = await append(c, 'delivered live');
      expect(await read(1)).toEqual([later]);
      // Five typing events for a buffer of 4: a GAP (then the fifth), and the replay finds the lost message, not the later one again.
      for (let i = 0; i < 5; i++) await store.events.typingChanged(c, 'USER', i % 2 === 0);
      expect(await read(2)).toEqual([unannounced, 'typingChanged']);
    } finally {
      await stream.return?.();
    }
  });
});
