import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTwoNodes, dataOf, sendQuestion, type TestApp, type TwoNodes } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { CONVERSATION_EVENTS, disposeClients, eventually, expectEventsAfterFailover, liveClient, subscribe, uniquePrefix } from '../helpers/live.js';
import { findRedisCli, startRedisCluster, type ThrowawayCluster } from '../helpers/redis-cluster.js';
import { findRedisServer } from '../helpers/servers.js';

/**
 * Two Parley nodes on a Redis Cluster of three masters with a replica each.
 * A master is killed while both nodes take writes and reads: no request
 * fails (Redis is never in a request's way), the cluster promotes its replica,
 * and live events cross nodes again — also on the subscription that lived
 * through it, which loses nothing.
 */

const postgres = databaseVariants()[1]!;
const haveCluster = findRedisServer() !== null && findRedisCli() !== null;
if (process.env.CI === 'true' && !haveCluster)
  throw new Error('CI=true but redis-server/redis-cli are not installed: the Redis Cluster tests cannot run');

describe.skipIf(!postgres.available || !haveCluster)('Redis Cluster: a master killed under load', () => {
  let cluster: ThrowawayCluster;
  let a: TestApp;
  let b: TestApp;
  let nodes: TwoNodes | undefined;
  let wsB: string;
  let key: string;

  const gql = async (node: TestApp, query: string, variables: Record<string, unknown> = {}) => dataOf(await node.gql(query, { key, variables }));
  /** The stored question's id. */
  const send = async (node: TestApp, c: string, content: string) => (await sendQuestion(node, key, c, content))[0];
  const client = () => liveClient(wsB, { connectionParams: { productKey: key } }).client;
  const subscribedOnB = () => b.app.deps.pubsub.stats().subscribed;

  beforeAll(async () => {
    cluster = await startRedisCluster({ replicas: 1 });
    const env = { REDIS_URL: cluster.url, PARLEY_REDIS_PREFIX: uniquePrefix('cluster-failover') };
    nodes = await createTwoNodes(postgres, env);
    ({ a, b, wsB } = nodes);
    ({ key } = await a.product('Cluster failover'));
  }, 60_000);
  afterAll(async () => {
    await disposeClients();
    await nodes?.dispose();
    await cluster?.dispose();
  });

  it('every request succeeds while the replica takes over, and events cross nodes again', async () => {
    const c = (await gql(a, `mutation { startConversation(input: { sessionId: "failover" }) { id } }`)).startConversation.id as string;
    const before = subscribe(client(), CONVERSATION_EVENTS, { id: c });
    await eventually(() => subscribedOnB() >= 1, 'subscribed on B');
    const first = await send(a, c, 'before the failover');
    await before.until((e) => e.conversationEvents.message?.id === first, 'the message on B');

    // The first node of the URL: a master with a third of the slots, and where every subscriber connected first.
    const killed = cluster.ports[0]!;
    expect(await cluster.masters()).toContain(killed);
    await cluster.kill(killed);
    const failedOver = eventually(
      async () => {
        const masters = await cluster.masters();
        return masters.length === 3 && !masters.includes(killed) && (await cluster.healthy());
      },
      'the cluster promotes the replica',
      20_000,
    );
    let done = false;
    void failedOver.then(
      () => (done = true),
      () => (done = true),
    );
    // Writes on A and reads on B from four clients at once, for as long as the failover takes: each must
    // succeed (dataOf fails on any error).
    const sent: string[] = [];
    let reads = 0;
    await Promise.all(
      [0, 1, 2, 3].map(async (worker) => {
        while (!done) {
          sent.push(await send(a, c, `during the failover ${worker}.${sent.length}`));
          await gql(b, `{ conversations(first: 5) { edges { node { id messageCount } } } }`);
          reads += 1;
        }
      }),
    );
    await failedOver;
    expect(sent.length).toBeGreaterThan(0);
    expect(reads).toBe(sent.length);
    // B's subscriber was on the killed node: it moved to another one and subscribed its channels again.
    await eventually(() => b.app.deps.pubsub.stats().resubscribed > 0, "B's channels subscribed again on another node", 10_000);

    // A subscription opened after the failover gets events from the other node.
    const streams = subscribedOnB();
    const after = subscribe(client(), CONVERSATION_EVENTS, { id: c });
    await eventually(() => subscribedOnB() > streams, 'subscribed on B after the failover', 10_000);
    await expectEventsAfterFailover({
      send: (content) => send(a, c, content),
      after,
      before,
      sentDuring: sent,
      what: 'an event from A reaches B after the failover',
      timeoutMs: 15_000,
    });
  }, 60_000);
});
