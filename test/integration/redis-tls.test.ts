import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { createServer as createTlsServer, TLSSocket } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { openRedis, type RedisClient } from '../../src/infra/redis.js';
import { createTestApp, createTwoNodes, dataOf, sendQuestion, type TestApp, type TwoNodes } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { CONVERSATION_EVENTS, disposeClients, eventually, liveClient, subscribe, uniquePrefix } from '../helpers/live.js';
import { findRedisCli, startRedisCluster } from '../helpers/redis-cluster.js';
import { createTestCertificates, findOpenssl, type TestCertificates } from '../helpers/redis-tls.js';
import { findRedisServer, startRedis, startRedisSentinel, type Throwaway } from '../helpers/servers.js';

/**
 * Parley on Redis that speaks TLS only, with a certificate from a throwaway CA
 * named by PARLEY_REDIS_CA_FILE: one Redis (rediss://), a three-master cluster
 * (rediss+cluster://) and a master watched by Sentinel (rediss+sentinel://).
 * Two nodes share the cache's L2, a write on one invalidates the other's
 * reads, and live events cross — every connection verified against the CA. A
 * node that does not trust the certificate is refused, says why and writes
 * nothing; one that meets a Redis without TLS sends it nothing.
 */

const postgres = databaseVariants()[1]!;
const haveTls = findRedisServer() !== null && findRedisCli() !== null && findOpenssl() !== null;
if (process.env.CI === 'true' && !haveTls)
  throw new Error('CI=true but redis-server/redis-cli/openssl are not installed: the Redis TLS tests cannot run');
if (!haveTls) console.warn('[parley tests] redis-server, redis-cli or openssl missing: the Redis TLS tests are SKIPPED');

const run = promisify(execFile);
const LIST = `{ conversations(first: 5) { edges { node { id messageCount } } } }`;

const gql = async (node: TestApp, key: string, query: string, variables: Record<string, unknown> = {}) =>
  dataOf(await node.gql(query, { key, variables }));
const l2Hits = (node: TestApp) =>
  node.app.deps.cache
    .snapshot()
    .filter((stat) => stat.layer === 'L2')
    .reduce((sum, stat) => sum + stat.hits, 0);
/** Every open connection of a client: one Redis, or each node of a cluster. */
const connectionsOf = (client: RedisClient): Redis[] => ('nodes' in client ? client.nodes('all') : [client]);
/** TLS, with the server's certificate verified (not merely encrypted). */
const verified = (client: RedisClient) =>
  connectionsOf(client).every((connection) => connection.stream instanceof TLSSocket && connection.stream.authorized);

describe.skipIf(!postgres.available || !haveTls)('Parley on Redis over TLS', () => {
  let certs: TestCertificates;
  /** Servers of the tests below, stopped here: a test that times out does not reach its own `finally`. */
  const servers: Throwaway[] = [];
  // DEP0123: an IP address sent as the TLS server name, which RFC 6066 forbids (Node warns once per process).
  const ipServernames: Error[] = [];
  const onWarning = (warning: Error & { code?: string }) => warning.code === 'DEP0123' && ipServernames.push(warning);
  beforeAll(async () => {
    process.on('warning', onWarning);
    certs = await createTestCertificates();
  });
  afterAll(async () => {
    process.off('warning', onWarning);
    await Promise.all(servers.map((server) => server.dispose()));
    certs?.dispose();
  });
  afterEach(() => disposeClients());

  const topologies: [string, () => Promise<Throwaway>][] = [
    ['one Redis (rediss://)', () => startRedis({ tls: certs })],
    ['a three-master cluster (rediss+cluster://)', () => startRedisCluster({ tls: certs })],
    ['a master watched by Sentinel (rediss+sentinel://)', () => startRedisSentinel({ tls: certs })],
  ];

  describe.each(topologies)('%s', (_, start) => {
    let redis: Throwaway;
    let a: TestApp;
    let b: TestApp;
    let nodes: TwoNodes | undefined;
    let wsB: string;
    const prefix = uniquePrefix('tls');

    beforeAll(async () => {
      redis = await start();
      const env = { REDIS_URL: redis.url, PARLEY_REDIS_CA_FILE: certs.caFile, PARLEY_REDIS_PREFIX: prefix, PARLEY_REDIS_TIMEOUT_MS: '1000' };
      nodes = await createTwoNodes(postgres, env);
      ({ a, b, wsB } = nodes);
    }, 30_000);
    afterAll(async () => {
      await nodes?.dispose();
      await redis?.dispose();
    });

    it('shares the L2 cache, invalidates across nodes and carries live events, every connection verified', async () => {
      const { key } = await a.product('TLS');
      const c = (await gql(a, key, `mutation { startConversation(input: { sessionId: "tls" }) { id } }`)).startConversation.id as string;

      // A loads the list (into L1 and Redis); B, which never read it, finds it in Redis: no SQL for it.
      expect((await gql(a, key, LIST)).conversations.edges[0].node.messageCount).toBe(0);
      const hits = l2Hits(b);
      const onB = await b.gql(LIST, { key });
      expect(dataOf(onB).conversations.edges[0].node.messageCount).toBe(0);
      expect(l2Hits(b)).toBeGreaterThan(hits);
      expect(onB.sql.filter((sql) => /"Conversation"/.test(sql))).toEqual([]);

      // B now holds the list in L1; A writes: B's next read shows the write, and the events reach B's subscriber.
      const s = subscribe(liveClient(wsB, { connectionParams: { productKey: key } }).client, CONVERSATION_EVENTS, { id: c });
      await eventually(() => b.app.deps.pubsub.stats().subscribed >= 1, 'subscribed on B');
      const [message, reply] = await sendQuestion(a, key, c, 'hello over TLS');
      expect((await gql(b, key, LIST)).conversations.edges[0].node.messageCount).toBe(2);
      await s.until((e) => e.conversationEvents.message?.id === message, 'the message on B');
      await s.until((e) => e.conversationEvents.message?.id === reply, 'the reply on B');

      for (const node of [a, b]) {
        expect(node.app.deps.pubsub.redis && verified(node.app.deps.pubsub.redis)).toBe(true);
        expect(node.app.deps.cache.redisGuard!.failuresTotal).toBe(0);
        expect(node.logged.filter((l) => l.level === 'warn' || l.level === 'error')).toEqual([]);
      }
      expect(ipServernames).toEqual([]);
    });

    it('refuses a certificate from a CA it was not given, says why, and writes nothing', async () => {
      for (const ca of [{}, { PARLEY_REDIS_CA_FILE: certs.otherCaFile }] as Record<string, string>[]) {
        const untrusting = uniquePrefix('untrusting');
        const c = await createTestApp(postgres, { REDIS_URL: redis.url, PARLEY_REDIS_PREFIX: untrusting, ...ca }, { shared: a.database });
        try {
          const { key } = await c.product('Untrusting');
          // Redis refused is Redis down: the node answers from L1 and the database.
          expect((await gql(c, key, LIST)).conversations.edges).toEqual([]);
          // Each of the node's Redis clients (cache, live events, rate limits) says why, once.
          const refusals = c.logged.filter((l) => l.fields?.error);
          expect(refusals.map((l) => l.msg).sort()).toEqual([
            'cache: redis error',
            'live events: redis unreachable, events are not crossing nodes',
            'rate limits: redis unreachable, counting per node',
          ]);
          for (const refusal of refusals)
            expect(refusal.fields!.error).toBe(
              "self-signed certificate in certificate chain (SELF_SIGNED_CERT_IN_CHAIN): Redis's TLS certificate was refused; " +
                'PARLEY_REDIS_CA_FILE (or NODE_EXTRA_CA_CERTS) must hold the CA that signed it, and it must name the host connected to',
            );
          expect(c.app.deps.pubsub.redis!.status).not.toBe('ready');
          expect(await keysUnder(redis.url, untrusting)).toEqual([]);
        } finally {
          await c.dispose();
        }
      }
    });

    /** Keys under `prefix`, asked over a connection that trusts the CA. */
    async function keysUnder(url: string, prefix: string): Promise<string[]> {
      const client = openRedis(url, { role: 'commands', ca: readFileSync(certs.caFile, 'utf8') });
      await client.connect();
      try {
        return (await Promise.all(connectionsOf(client).map((node) => node.keys(`${prefix}*`)))).flat();
      } finally {
        client.disconnect();
      }
    }
  });

  it('never falls back to plain text: rediss:// to a Redis without TLS sends it nothing', async () => {
    const plain = await startRedis();
    servers.push(plain);
    const direct = openRedis(plain.url, { role: 'commands' });
    try {
      await direct.connect();
      const commandsProcessed = async () => Number(/total_commands_processed:(\d+)/.exec(await direct.info('stats'))![1]);
      const before = await commandsProcessed();
      const port = new URL(plain.url).port;
      const ca = readFileSync(certs.caFile, 'utf8');
      const attempts = [`rediss://127.0.0.1:${port}`, `rediss+cluster://127.0.0.1:${port}`].flatMap((url) =>
        (['commands', 'subscriber'] as const).map((role) => openRedis(url, { role, ca })),
      );
      try {
        for (const attempt of attempts) attempt.on('error', () => undefined);
        // The server does not speak TLS: no handshake completes, every connect fails (at the latest at its 2 s timeout).
        const settled = await Promise.allSettled(attempts.map((attempt) => attempt.connect()));
        expect(settled.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected', 'rejected']);
        // The subscriber retries (first after 50 ms) as after any outage, over TLS again: its SUBSCRIBE stays queued.
        void (attempts[1] as Redis).subscribe('channel').catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 300));
      } finally {
        for (const attempt of attempts) attempt.disconnect();
      }
      // Only the INFO asking: no command from the attempts, and no SUBSCRIBE sent in plain text after they failed.
      expect((await commandsProcessed()) - before).toBe(1);
      expect(await direct.pubsub('NUMSUB', 'channel')).toEqual(['channel', 0]);
    } finally {
      direct.disconnect();
    }
  });

  it('names a node given by host name in SNI and checks the certificate against it; an IP address is not sent as a name', async () => {
    const seen: string[] = [];
    const server = createTlsServer(
      {
        key: readFileSync(certs.keyFile),
        cert: readFileSync(certs.certFile),
        SNICallback: (name, done) => {
          seen.push(name);
          done(null, undefined);
        },
      },
      (socket) => socket.destroy(),
    );
    // Where `localhost` resolves for the client too (127.0.0.1 or ::1).
    await new Promise<void>((resolve) => server.listen(0, 'localhost', resolve));
    const { port, address } = server.address() as AddressInfo;
    const ca = readFileSync(certs.caFile, 'utf8');
    const handshakes = [`rediss+cluster://localhost:${port}`, `rediss+cluster://${address.includes(':') ? `[${address}]` : address}:${port}`].map(
      async (url) => {
        // The cluster's subscriber: the connection made by Parley's own connector (the cluster's nodes use it too).
        const subscriber = openRedis(url, { role: 'subscriber', ca });
        subscriber.on('error', () => undefined);
        const secured = new Promise<boolean>((resolve) => subscriber.once('connect', () => resolve((subscriber.stream as TLSSocket).authorized)));
        void subscriber.connect().catch(() => undefined);
        try {
          return await secured;
        } finally {
          subscriber.disconnect();
        }
      },
    );
    try {
      expect(await Promise.all(handshakes)).toEqual([true, true]);
      // Once per handshake, the name only (a reconnect before the disconnect would send it again).
      expect([...new Set(seen)]).toEqual(['localhost']);
      expect(ipServernames).toEqual([]);
    } finally {
      server.close();
    }
  });

  it('trusts a CA given by NODE_EXTRA_CA_CERTS when PARLEY_REDIS_CA_FILE is unset (a process of its own: Node reads it at start)', async () => {
    const redis = await startRedis({ tls: certs });
    servers.push(redis);
    const script = [
      `import { openRedis } from ${JSON.stringify(fileURLToPath(new URL('../../src/infra/redis.ts', import.meta.url)))};`,
      `const redis = openRedis(process.argv[1], { role: 'commands' });`,
      `await redis.connect();`,
      `console.log(await redis.ping(), redis.stream.authorized);`,
      `redis.disconnect();`,
    ].join('\n');
    const { stdout } = await run(process.execPath, ['--import', 'tsx', '--input-type=module', '--eval', script, redis.url], {
      cwd: fileURLToPath(new URL('../..', import.meta.url)),
      env: { ...process.env, NODE_EXTRA_CA_CERTS: certs.caFile },
      timeout: 15_000,
    });
    expect(stdout.trim()).toBe('PONG true');
  });
});
