import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '../../src/infra/hash.js';
import { LeasedLimiter, createLimiterStore, type LimiterStore } from '../../src/infra/rate-limiter.js';
import { openRedis } from '../../src/infra/redis.js';
import { tags } from '../../src/services/store.js';
import { createTwoNodes, dataOf, sendQuestion, recordingLogger, type TestApp, type TwoNodes } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';
import { CONVERSATION_EVENTS, disposeClients, eventually, liveClient, subscribe, uniquePrefix } from '../helpers/live.js';
import { findRedisCli, startRedisCluster, type ThrowawayCluster } from '../helpers/redis-cluster.js';
import { findRedisServer, startRedis, type Throwaway } from '../helpers/servers.js';

/**
 * Two Parley nodes on one PostgreSQL and a Redis Cluster of three masters
 * (REDIS_URL=redis+cluster://…): the cache's L2, its cross-node invalidation,
 * live events, typing and rate limits work as on one Redis, and no command is
 * ever refused (a CROSSSLOT would count as a failure of the cache's Redis).
 */

const postgres = databaseVariants()[1]!;
const haveCluster = findRedisServer() !== null && findRedisCli() !== null;
if (process.env.CI === 'true' && !haveCluster)
  throw new Error('CI=true but redis-server/redis-cli are not installed: the Redis Cluster tests cannot run');

describe.skipIf(!postgres.available || !haveCluster)('Parley on a three-master Redis Cluster', () => {
  let cluster: ThrowawayCluster;
  let a: TestApp;
  let b: TestApp;
  let nodes: TwoNodes | undefined;
  let wsB: string;
  const prefix = uniquePrefix('cluster');

  const gql = async (node: TestApp, key: string, query: string, variables: Record<string, unknown> = {}) =>
    dataOf(await node.gql(query, { key, variables }));
  const LIST = `{ conversations(first: 5) { edges { node { id messageCount } } } }`;
  const TYPING = `mutation($c: ID!, $t: Boolean!) { setTyping(input: { conversationId: $c, isTyping: $t }) }`;

  beforeAll(async () => {
    cluster = await startRedisCluster();
    // A generous bound: on a busy machine a slow reply is no refusal, and a refused command is what this counts.
    const env = { REDIS_URL: cluster.url, PARLEY_REDIS_PREFIX: prefix, PARLEY_REDIS_TIMEOUT_MS: '1000' };
    nodes = await createTwoNodes(postgres, env);
    ({ a, b, wsB } = nodes);
  }, 60_000);
  afterEach(() => disposeClients());
  afterAll(async () => {
    await nodes?.dispose();
    await cluster?.dispose();
  });

  it('serves reads, writes, invalidations, events and typing across nodes, no command refused', async () => {
    const product = await a.product('Cluster');
    const other = await a.product('Cluster, another product');
    const c = (await gql(a, product.key, `mutation { startConversation(input: { sessionId: "cluster" }) { id } }`)).startConversation.id as string;
    const s = subscribe(liveClient(wsB, { connectionParams: { productKey: product.key } }).client, CONVERSATION_EVENTS, { id: c });
    await eventually(() => b.app.deps.pubsub.stats().subscribed >= 1, 'subscribed on B');

    // B caches the list (L1 and the cluster), A writes: B's next read shows the write (the bump crossed nodes).
    expect((await gql(b, product.key, LIST)).conversations.edges[0].node.messageCount).toBe(0);
    const [message, reply] = await sendQuestion(a, product.key, c, 'hello cluster');
    await s.until((e) => e.conversationEvents.message?.id === message, 'the message on B');
    await s.until((e) => e.conversationEvents.message?.id === reply, 'the reply on B');
    expect((await gql(b, product.key, LIST)).conversations.edges[0].node.messageCount).toBe(2);

    await gql(a, product.key, TYPING, { c, t: true });
    await s.until((e) => e.conversationEvents.__typename === 'TypingChanged' && e.conversationEvents.isTyping, 'typing on B');
    await gql(a, product.key, `mutation($m: ID!) { submitFeedback(input: { messageId: $m, rating: UP }) { id } }`, { m: reply });
    await s.until((e) => e.conversationEvents.__typename === 'FeedbackAdded', 'the feedback on B');

    // Reads of several products in one turn of the event loop: one batch of generations over several slots and the epoch.
    const reads = await Promise.all([product, other, product, other].map((p) => gql(b, p.key, LIST)));
    expect(reads.map((r) => r.conversations.edges.length)).toEqual([1, 0, 1, 0]);

    // A key rotation bumps the product and the old key's hash: two slots. B refuses the old key at once.
    const rotated = await a.gql(`mutation($id: ID!) { rotateProductKey(id: $id) { key } }`, {
      admin: true,
      variables: { id: gid('Product', product.id) },
    });
    expect(rotated.errors).toBeUndefined();
    expect((await b.gql(LIST, { key: product.key })).errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    await gql(b, rotated.data.rotateProductKey.key, LIST);

    for (const node of [a, b]) {
      const guard = node.app.deps.cache.redisGuard!;
      expect(guard.calls).toBeGreaterThan(0);
      expect(guard.failuresTotal).toBe(0);
      expect(node.logged.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
    }
    const stats = dataOf(await b.gql(`{ cacheStats { cache layer hits sets } }`, { admin: true })).cacheStats as { layer: string; sets: number }[];
    expect(stats.filter((stat) => stat.layer === 'L2').some((stat) => stat.sets > 0)).toBe(true);
  });

  it('finds a persisted query registered on one node on the other', async () => {
    const { key } = await a.product('Cluster APQ');
    const post = async (node: TestApp, body: object) =>
      (await (
        await node.app.yoga.fetch('http://parley.test/graphql', {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: JSON.stringify(body),
        })
      ).json()) as { data?: { viewer: { name: string } }; errors?: unknown[] };
    const query = `query ClusterApq${Date.now()} { viewer { name } }`;
    const extensions = { persistedQuery: { version: 1, sha256Hash: sha256(query) } };
    expect((await post(a, { query, extensions })).data?.viewer.name).toBe('Cluster APQ');
    // Registration is written after the response: allow it a moment to land.
    const found = await eventually(async () => {
      const answer = await post(b, { extensions });
      return answer.errors ? undefined : answer;
    }, 'the hash alone answered on B');
    expect(found.data?.viewer.name).toBe('Cluster APQ');
  });

  it('bumps the tags of several products, the epoch and a key hash at once: each in Redis, none local', async () => {
    const cache = a.app.deps.cache;
    const products = ['0190a2b4-0000-7000-8000-00000000000a', '0190a2b4-0000-7000-8000-00000000000b'];
    const bumped = [...products.flatMap((p) => [tags.product(p), tags.knowledge(p), tags.conversation(p, p)]), tags.productKey('abc')];
    await cache.invalidate(bumped);
    const gens = await cache.generations.current(bumped);
    // `r<n>` is a generation Redis counted; a local one (`l…`) would mean a MULTI or MGET was refused.
    expect(gens.every((gen) => gen.startsWith('r'))).toBe(true);
    await cache.flush();
    expect((await cache.generations.current([]))[0]).toMatch(/^r[1-9]/);
    expect(cache.redisGuard!.failuresTotal).toBe(0);
  });

  it('counts rate limits across nodes in the cluster, both kinds', async () => {
    const { log } = recordingLogger();
    const stores: LimiterStore[] = await Promise.all(
      [0, 1].map(() => createLimiterStore({ redisUrl: cluster.url, prefix: `${prefix}rl-`, timeoutMs: 500, log })),
    );
    try {
      expect(stores.map((store) => store.kind)).toEqual(['redis', 'redis']);
      const spec = { name: 'cluster', points: 4, durationSeconds: 60 };
      const flexible = stores.map((store) => store.limiter(spec));
      const refused: boolean[] = [];
      for (let i = 0; i < 6; i++)
        refused.push(
          await flexible[i % 2]!.consume('k').then(
            () => false,
            () => true,
          ),
        );
      expect(refused).toEqual([false, false, false, false, true, true]);

      const never = { consume: async () => 0 };
      const client = openRedis(cluster.url, { role: 'commands', commandTimeoutMs: 500 });
      await client.connect();
      try {
        const leased = [0, 1].map(() => new LeasedLimiter(client, { ...spec, fraction: 1 / 4, key: (k) => `${prefix}lease:${k}`, insurance: never }));
        const answers: (number | null)[] = [];
        for (let i = 0; i < 6; i++) answers.push(await leased[i % 2]!.consume('k'));
        // A refusal by the insurance would be 0; a refusal by Redis' window is the time left in it.
        expect(answers.slice(0, 4)).toEqual([null, null, null, null]);
        expect(answers.slice(4).every((ms) => ms !== null && ms > 0)).toBe(true);
      } finally {
        client.disconnect();
      }
    } finally {
      await Promise.all(stores.map((store) => store.dispose()));
    }
  });
});

describe.skipIf(!haveCluster)("a cluster subscriber's connection", () => {
  const servers: Throwaway[] = [];
  afterAll(() => Promise.all(servers.map((server) => server.dispose())));

  it('moves to the next node of the URL when its node dies, and subscribes its channels again', async () => {
    // Two plain Redis servers stand in for two cluster nodes: SUBSCRIBE is the same on any node.
    servers.push(await startRedis(), await startRedis());
    const [first, second] = servers.map((server) => new URL(server.url).port);
    const subscriber = openRedis(`redis+cluster://127.0.0.1:${first},127.0.0.1:${second}`, { role: 'subscriber' });
    const heard: string[] = [];
    subscriber.on('message', (_channel: string, message: string) => heard.push(message));
    subscriber.on('error', () => undefined);
    const publisher = (port: string) => openRedis(`redis://127.0.0.1:${port}`, { role: 'commands' });
    try {
      await subscriber.connect();
      await subscriber.subscribe('events');
      const onFirst = publisher(first!);
      await onFirst.connect();
      await onFirst.publish('events', 'from the first node');
      onFirst.disconnect();
      await eventually(() => heard.includes('from the first node'), 'heard on the first node');

      await servers[0]!.stop!();
      const onSecond = publisher(second!);
      await onSecond.connect();
      try {
        await eventually(async () => (await onSecond.publish('events', 'from the second node')) > 0, 'subscribed again on the second node');
      } finally {
        onSecond.disconnect();
      }
      await eventually(() => heard.includes('from the second node'), 'heard on the second node');
    } finally {
      subscriber.disconnect();
    }
  });
});
