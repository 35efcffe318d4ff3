import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findRedisServer, startRedisSentinel, type SentinelGroup } from '../../scripts/servers.js';
import { createTwoNodes, dataOf, sendQuestion, type TestApp, type TwoNodes } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { CONVERSATION_EVENTS, disposeClients, eventually, expectEventsAfterFailover, liveClient, subscribe, uniquePrefix } from '../helpers/live.js';

/**
 * Two Parley nodes on one PostgreSQL and a Redis watched by Sentinel
 * (REDIS_URL=redis+sentinel://…): events cross nodes through the master the
 * sentinels name, and when that master dies requests keep succeeding while the
 * sentinels promote the replica, after which the nodes use the new master.
 */

const postgres = databaseVariants()[1]!;
const haveRedis = findRedisServer() !== null;
if (process.env.CI === 'true' && !haveRedis) throw new Error('CI=true but redis-server is not installed: the Sentinel tests cannot run');

describe.skipIf(!postgres.available || !haveRedis)('Redis through Sentinel, and a failover', () => {
  let group: SentinelGroup;
  let a: TestApp;
  let b: TestApp;
  let nodes: TwoNodes | undefined;
  let wsB: string;
  let key: string;

  const gql = async (node: TestApp, query: string, variables: Record<string, unknown> = {}) => dataOf(await node.gql(query, { key, variables }));
  const start = async (node: TestApp) =>
    (await gql(node, `mutation { startConversation(input: { sessionId: "sentinel" }) { id } }`)).startConversation.id as string;
  /** The stored question's id. */
  const send = async (node: TestApp, c: string, content: string) => (await sendQuestion(node, key, c, content))[0];
  const client = () => liveClient(wsB, { connectionParams: { productKey: key } }).client;
  const subscribedOnB = () => b.app.deps.pubsub.stats().subscribed;

  beforeAll(async () => {
    group = await startRedisSentinel();
    const env = { REDIS_URL: group.url, PARLEY_REDIS_PREFIX: uniquePrefix('sentinel') };
    nodes = await createTwoNodes(postgres, env);
    ({ a, b, wsB } = nodes);
    ({ key } = await a.product('Sentinel'));
  }, 60_000);
  afterAll(async () => {
    await disposeClients();
    await nodes?.dispose();
    await group?.dispose();
  });

  it('reaches the master the sentinels name: an event sent on node A reaches a subscriber on node B', async () => {
    expect([a.app.deps.pubsub.kind, b.app.deps.pubsub.kind]).toEqual(['redis', 'redis']);
    const c = await start(a);
    const streams = subscribedOnB();
    const s = subscribe(client(), CONVERSATION_EVENTS, { id: c });
    await eventually(() => subscribedOnB() > streams, 'subscribed on B');
    const id = await send(a, c, 'before the failover');
    await s.until((e) => e.conversationEvents.message?.id === id, 'the message on B');
  });

  it('a killed master: every request still succeeds, the replica is promoted, and events cross nodes through the new master', async () => {
    const c = await start(a);
    const sent: string[] = [];
    const streams = subscribedOnB();
    const before = subscribe(client(), CONVERSATION_EVENTS, { id: c });
    await eventually(() => subscribedOnB() > streams, 'subscribed on B');

    const old = await group.killMaster();
    // While the sentinels notice (500 ms) and promote the replica, writes and reads go on: Redis is never in the request path's way.
    const promoted = eventually(async () => (await group.master()) !== old, 'the sentinels promote the replica', 20_000);
    let failedOver = false;
    void promoted.then(() => (failedOver = true));
    while (!failedOver) {
      sent.push(await send(a, c, `during the failover ${sent.length}`));
      await gql(b, `{ conversations(first: 5) { edges { node { id messageCount } } } }`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await promoted;
    expect(sent.length).toBeGreaterThan(0);

    // A subscription opened after the failover gets events through the new master.
    const after = subscribe(client(), CONVERSATION_EVENTS, { id: c });
    await eventually(() => subscribedOnB() > streams + 1, 'subscribed on B through the new master', 20_000);
    await expectEventsAfterFailover({
      send: (content) => send(a, c, content),
      after,
      before,
      sentDuring: sent,
      what: 'an event from A reaches B through the new master',
      timeoutMs: 30_000,
    });
  }, 90_000);
});
