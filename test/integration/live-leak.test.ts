import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createTestApp, recordingLogger, TEST_ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
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
import { appendMessage } from '../../src/services/messages.js';

/**
 * 1,000 subscribe/unsubscribe cycles — completed by the client, cut by a
 * socket that drops without a word, completed before the server finished
 * subscribing, SSE requests aborted — and afterwards nothing is left: no open
 * stream or listener in the process, and (with Redis) no subscriber on any
 * channel used, by Redis' own PUBSUB NUMSUB.
 */

const redisUrl = inject('redisUrl');
const [pglite] = databaseVariants();
const modes = [
  { name: 'in-process', redis: false, available: true },
  { name: 'Redis', redis: true, available: Boolean(redisUrl) },
];

const ROUNDS = 20;
// Short, so a silent peer is found within the test: a node of its own, on the same database.
const KEEPALIVE_MS = 200;
const CONVERSATIONS = 10;
// Per round: 20 completed by the client, 16 dropped with their socket, 10 completed at once, 4 SSE aborted.
const PER_ROUND = 20 + 16 + 10 + 4;

for (const mode of modes) {
  describe.skipIf(!mode.available)(`live subscriptions do not leak [${mode.name}]`, () => {
    let t: TestApp;
    let port: number;
    let key: string;
    let productId: string;
    let redis: Redis | undefined;
    const prefix = uniquePrefix('leak');
    const conversations: { id: string; gid: string; cursor: string; channel: string }[] = [];
    const sockets: WebSocket[] = [];

    beforeAll(async () => {
      t = await createTestApp(pglite!, mode.redis ? { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: prefix } : {});
      port = (await t.app.start(0, '127.0.0.1')).port;
      ({ key, id: productId } = await t.product('Leak test'));
      for (let i = 0; i < CONVERSATIONS; i++) {
        const c = await t.prisma.conversation.create({ data: { productId, sessionId: `leak-${i}` } });
        await appendMessage(t.store, productId, c.id, { role: 'USER', content: 'hello' });
        const edges = (
          await t.gql(`query($id: ID!) { conversation(id: $id) { messages(first: 1) { edges { cursor } } } }`, {
            key,
            variables: { id: gid('Conversation', c.id) },
          })
        ).data.conversation.messages.edges;
        expect(edges[0].cursor).toBeTruthy();
        const channel = t.app.deps.pubsub.channel('conversation', c.id);
        conversations.push({ id: c.id, gid: gid('Conversation', c.id), cursor: edges[0].cursor, channel });
      }
      if (mode.redis) redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
    });
    afterEach(async () => {
      for (const s of sockets.splice(0)) s.terminate();
      await disposeClients();
      await eventually(() => t.app.deps.pubsub.stats().streams === 0, 'no stream left open');
      await eventually(async () => (await numsub()) === 0, 'no Redis subscriber left');
    });
    afterAll(async () => {
      redis?.disconnect();
      await t?.dispose();
    });

    /** A raw graphql-transport-ws socket with `n` subscriptions, for dropping without a complete or a close frame. */
    async function rawSubscriber(n: number, round: number, options: WebSocket.ClientOptions = {}, at = port): Promise<WebSocket> {
      const socket = new WebSocket(`ws://127.0.0.1:${at}/graphql`, 'graphql-transport-ws', options);
      sockets.push(socket);
      await within(new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject)), 5_000, 'raw socket open');
      const acked = new Promise<void>((resolve) => socket.on('message', (data) => String(data).includes('connection_ack') && resolve()));
      socket.send(JSON.stringify({ type: 'connection_init', payload: { productKey: key } }));
      await within(acked, 5_000, 'connection_ack');
      for (let i = 0; i < n; i++) {
        const c = conversations[(round + i) % CONVERSATIONS]!;
        const payload = i % 2 ? { query: CONVERSATION_EVENTS, variables: { id: c.gid, after: c.cursor } } : { query: PRODUCT_FEEDBACK };
        socket.send(JSON.stringify({ id: `s${i}`, type: 'subscribe', payload }));
      }
      return socket;
    }

    async function numsub(): Promise<number> {
      if (!redis) return 0;
      const channels = [...conversations.map((c) => c.channel), t.app.deps.pubsub.channel('product', productId)];
      const reply = (await redis.pubsub('NUMSUB', ...channels)) as (string | number)[];
      let total = 0;
      for (let i = 1; i < reply.length; i += 2) total += Number(reply[i]);
      return total;
    }

    it(`after ${ROUNDS * PER_ROUND} cycles, no stream, listener or Redis subscription is left`, async () => {
      const pubsub = t.app.deps.pubsub;
      const baseline = pubsub.stats();
      expect(baseline).toMatchObject({ channels: 0, streams: 0, subscribed: 0, listeners: 0 });
      expect(await numsub()).toBe(0);
      const { client } = liveClient(`ws://127.0.0.1:${port}/graphql`, { connectionParams: { productKey: key }, lazy: false });
      const started = performance.now();
      let cycles = 0;
      let peak = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const completed: Subscription[] = [];
        for (let i = 0; i < 20; i++) {
          const c = conversations[(round + i) % CONVERSATIONS]!;
          completed.push(
            i % 4 === 0
              ? subscribe(client, PRODUCT_FEEDBACK)
              : subscribe(client, CONVERSATION_EVENTS, i % 4 === 1 ? { id: c.gid, after: c.cursor } : { id: c.gid }),
          );
        }
        const dropped = await Promise.all([0, 1, 2, 3].map((i) => rawSubscriber(4, round + i)));
        const aborted = await Promise.all(
          [0, 1, 2, 3].map((i) =>
            openSse(
              port,
              { authorization: `Bearer ${key}` },
              { query: CONVERSATION_EVENTS, variables: { id: conversations[(round + i) % CONVERSATIONS]!.gid } },
            ),
          ),
        );
        await eventually(() => pubsub.stats().subscribed >= 20 + 16 + 4, `round ${round}: all listening`);
        peak = Math.max(peak, pubsub.stats().streams);
        for (const s of completed) s.unsubscribe();
        for (const socket of dropped) socket.terminate();
        for (const sse of aborted) sse.close();
        // Completed before the server is done subscribing (auth, lookup, SUBSCRIBE in flight).
        for (let i = 0; i < 10; i++) subscribe(client, CONVERSATION_EVENTS, { id: conversations[i % CONVERSATIONS]!.gid }).unsubscribe();
        cycles += PER_ROUND;
        await eventually(() => pubsub.stats().streams === 0, `round ${round}: every stream released`);
      }
      await eventually(async () => (await numsub()) === 0, 'Redis: no subscriber left on any channel used', 15_000);
      const final = pubsub.stats();
      const seconds = (performance.now() - started) / 1000;
      console.log(
        `[leak test, ${mode.name}] ${cycles} cycles in ${seconds.toFixed(1)} s, peak ${peak} open streams; ` +
          `after: ${JSON.stringify(final)}, Redis NUMSUB ${await numsub()} (baseline ${JSON.stringify(baseline)})`,
      );
      expect(cycles).toBe(1_000);
      expect(final).toEqual(baseline);
      expect(t.app.deps.typing.stats().timers).toBe(0);
      // Still works after all that.
      const s = subscribe(client, CONVERSATION_EVENTS, { id: conversations[0]!.gid });
      await eventually(() => pubsub.stats().subscribed === 1, 'listening again');
      await appendMessage(t.store, productId, conversations[0]!.id, { role: 'USER', content: 'still alive' });
      await s.next(1);
    });

    it('drops a socket that stops answering pings within two keep-alive intervals, releasing its subscriptions', async () => {
      const config = loadConfig({
        NODE_ENV: 'test',
        PARLEY_DATA_DIR: t.app.deps.config.dataDir,
        PARLEY_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
        PARLEY_DEMO: 'false',
        PARLEY_WS_KEEPALIVE_MS: String(KEEPALIVE_MS),
        ...(mode.redis ? { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: prefix } : {}),
      });
      const node = await buildApp(config, { db: t.database.db, log: recordingLogger().log });
      try {
        const at = (await node.start(0, '127.0.0.1')).port;
        const silent = await rawSubscriber(3, 0, { autoPong: false }, at);
        const healthy = await rawSubscriber(1, 1, {}, at);
        let pings = 0;
        healthy.on('ping', () => (pings += 1));
        const closed = new Promise<void>((resolve) => silent.once('close', () => resolve()));
        await eventually(() => node.deps.pubsub.stats().subscribed === 4, 'four subscriptions listening');
        await within(closed, 10 * KEEPALIVE_MS + 5_000, 'the silent socket dropped by the server');
        await eventually(() => node.deps.pubsub.stats().streams === 1, "the silent socket's subscriptions released");
        await eventually(() => pings >= 2, 'the healthy socket pinged');
        expect(healthy.readyState).toBe(WebSocket.OPEN);
      } finally {
        await node.stop();
      }
    });

    it.skipIf(!mode.redis)('uses exactly one Redis channel per conversation and per product, under the configured prefix', async () => {
      const { client } = liveClient(`ws://127.0.0.1:${port}/graphql`, { connectionParams: { productKey: key } });
      subscribe(client, CONVERSATION_EVENTS, { id: conversations[0]!.gid });
      subscribe(client, CONVERSATION_EVENTS, { id: conversations[0]!.gid });
      subscribe(client, PRODUCT_FEEDBACK);
      await eventually(() => t.app.deps.pubsub.stats().subscribed === 3, 'three subscriptions listening');
      // (The cache has channels of its own under the same prefix.)
      const channels = ((await redis!.pubsub('CHANNELS', `${prefix}events:*`)) as string[]).sort();
      expect(channels).toEqual([conversations[0]!.channel, t.app.deps.pubsub.channel('product', productId)].sort());
      expect(channels[0]).toMatch(new RegExp(`^${prefix}events:(conversation|product):[0-9a-f-]{36}$`));
    });
  });
}
