import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, dataOf, recordingLogger, sendQuestion, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { CONVERSATION_EVENTS, disposeClients, eventually, liveClient, subscribe, uniquePrefix } from '../helpers/live.js';
import { findRedisServer, freePort, startRedis, type Throwaway } from '../helpers/servers.js';
import { createPubSub } from '../../src/infra/pubsub/index.js';
import { createLiveEvents, type ParleyEvents } from '../../src/services/events.js';

/**
 * A real redis-server of this test's own, stopped and started again while
 * graphql-ws subscribers are connected: writes keep working during the
 * outage, the subscriptions resume by themselves once Redis is back (ioredis
 * re-subscribes) with the messages stored meanwhile first (more in
 * live-gaps.test.ts), and a client reconnecting with `after` gets every
 * message after its cursor.
 */

const [pglite, postgres] = databaseVariants();
const variant = postgres!.available ? postgres! : pglite!;
const available = Boolean(findRedisServer());
if (!available) console.warn('\n[parley tests] No redis-server binary: the Redis outage test is SKIPPED.\n');

describe.skipIf(!available)(`live events survive a Redis outage [${variant.name}]`, () => {
  let redis: Throwaway;
  let t: TestApp;
  let wsUrl: string;
  let key: string;
  let probe: Redis;

  const send = (c: string, text: string) => sendQuestion(t, key, c, text);
  /** Ids of the MessageAdded events so far (the replies' typing events interleave). */
  const messageIds = (s: { results: any[] }) =>
    s.results.filter((r) => r.conversationEvents.__typename === 'MessageAdded').map((r) => r.conversationEvents.message.id as string);
  const numsub = async (channel: string) => Number(((await probe.pubsub('NUMSUB', channel)) as [string, number])[1]);

  beforeAll(async () => {
    redis = await startRedis();
    t = await createTestApp(variant, { REDIS_URL: redis.url, PARLEY_REDIS_PREFIX: uniquePrefix('outage') });
    wsUrl = `ws://127.0.0.1:${(await t.app.start(0, '127.0.0.1')).port}/graphql`;
    key = (await t.product('Outage')).key;
    probe = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => 100 });
    probe.on('error', () => {});
  });
  afterEach(() => disposeClients());
  afterAll(async () => {
    probe?.disconnect();
    await t?.dispose();
    await redis?.dispose();
  });

  it('subscriptions resume without client action, the outage’s messages first, and `after` recovers them too', async () => {
    const c = dataOf(await t.gql(`mutation { startConversation(input: { sessionId: "outage" }) { id } }`, { key })).startConversation.id;
    const channel = t.app.deps.pubsub.channel('conversation', Buffer.from(c, 'base64').toString().split(':')[1]!);
    const { client, closed } = liveClient(wsUrl, { connectionParams: { productKey: key } });
    const live = subscribe(client, CONVERSATION_EVENTS, { id: c });
    await eventually(() => t.app.deps.pubsub.stats().subscribed === 1, 'listening');
    const m1 = await send(c, 'before the outage');
    await live.next(1);

    await redis.stop!();
    await eventually(() => !t.app.deps.pubsub.stats().connected, 'the node notices the outage');
    // Writes do not fail or hang while Redis is down; their events are lost.
    const m2 = await send(c, 'during the outage');
    const typing = dataOf(await t.gql(`mutation($c: ID!) { setTyping(input: { conversationId: $c, isTyping: true }) }`, { key, variables: { c } }));
    expect(typing.setTyping).toBe(false);

    await redis.start!();
    await eventually(() => t.app.deps.pubsub.stats().connected, 'the node reconnects', 20_000);
    await eventually(async () => (await numsub(channel).catch(() => 0)) === 1, 'the channel is subscribed again', 20_000);
    const m3 = await send(c, 'after the outage');
    await live.until((r) => r.conversationEvents.message?.id === m3[1], 'the events published after the restart');
    // The question and reply sent during the outage were stored, their events lost, and read back from the database.
    expect(messageIds(live)).toEqual([...m1, ...m2, ...m3]);
    expect(closed).toEqual([]); // the socket never dropped: nothing for the client to do

    // A client that reconnects from a message gets every later one.
    const cursor = dataOf(
      await t.gql(`query($id: ID!) { conversation(id: $id) { messages(first: 1) { edges { cursor } } } }`, { key, variables: { id: c } }),
    ).conversation.messages.edges[0].cursor;
    const again = subscribe(liveClient(wsUrl, { connectionParams: { productKey: key } }).client, CONVERSATION_EVENTS, { id: c, after: cursor });
    await again.next(5);
    expect(messageIds(again)).toEqual([m1[1], ...m2, ...m3]);
  });
});

describe('live events with a Redis that is not there', () => {
  it('publish fails at once (logged, not thrown to the writer), subscribe waits, dispose ends it all cleanly', async () => {
    const { log, logged } = recordingLogger();
    const pubsub = await createPubSub<ParleyEvents>({ redisUrl: `redis://127.0.0.1:${await freePort()}`, prefix: 'nowhere:', log });
    try {
      expect(pubsub.stats().connected).toBe(false);
      const at = new Date();
      await expect(
        pubsub.publish('conversation', 'c1', { type: 'messageAdded', messageId: 'm1', conversationId: 'c1', at: at.toISOString() }),
      ).rejects.toThrow();
      expect(await createLiveEvents(pubsub, log).messageAdded('c1', { id: 'm1', createdAt: at })).toBe(false);
      expect(logged.some((l) => l.msg === 'live event not published')).toBe(true);
      // A SUBSCRIBE waits for Redis; shutting down meanwhile must not leave a rejection unhandled.
      const stream = pubsub.subscribe('conversation', 'c1');
      const next = stream.next();
      await pubsub.dispose();
      expect(await next).toEqual({ value: undefined, done: true });
      expect(pubsub.stats()).toMatchObject({ streams: 0, channels: 0 });
    } finally {
      await pubsub.dispose();
    }
  });
});
