import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { countRedisCommands, type RedisCommandCounter, type RedisTally } from '../../bench/redis-commands.js';
import { DOCUMENTS } from '../../bench/scenarios.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';
import { uniquePrefix } from '../helpers/live.js';

/**
 * What a request costs in Redis, counted through ioredis' diagnostics channel
 * (a MULTI is one round trip). A cached read pays its generation checks and
 * nothing else — no rate-limit call, no wrong-credentials lookup; a message
 * and its reply announce themselves in the MULTIs that bump the cache.
 */

const redisUrl = inject('redisUrl');
const pglite = databaseVariants().find((v) => v.name === 'pglite')!;

describe.skipIf(!redisUrl)('Redis commands per request (one node)', () => {
  let t: TestApp;
  let key: string;
  let conversationId: string;
  let counter: RedisCommandCounter;
  let sent = 0;
  // A request from a client address, as node:http gives it to Yoga: the per-address checks run.
  const request = async (query: string, variables?: Record<string, unknown>) => {
    const response = await t.app.yoga.fetch(
      'http://parley.test/graphql',
      { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify({ query, variables }) },
      { req: { socket: { remoteAddress: '203.0.113.5' }, headers: {} } },
    );
    const body = (await response.json()) as { errors?: unknown[] };
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  };
  const send = (content = `Question ${sent++}: where is my parcel?`) => request(DOCUMENTS.sendMessage, { input: { conversationId, content } });
  /**
   * Redis traffic of `run`, including what it leaves running for a moment (a lock release). A clean
   * address is trusted for 1 s, then checked again (one MULTI of GET + PTTL): on a busy machine that
   * renewal can fall in any measured request, so it is taken out here, and counted apart.
   */
  const cost = async (run: () => Promise<void>): Promise<RedisTally & { credentialChecks: number }> => {
    counter.reset();
    await run();
    await new Promise((resolve) => setTimeout(resolve, 50));
    const tally = counter.take();
    const credentialChecks = Math.min(tally.byCommand.get ?? 0, tally.byCommand.pttl ?? 0);
    if (!credentialChecks) return { ...tally, credentialChecks };
    const byCommand = { ...tally.byCommand };
    for (const name of ['get', 'pttl', 'multi', 'exec']) {
      byCommand[name] = (byCommand[name] ?? 0) - credentialChecks;
      if (!byCommand[name]) delete byCommand[name];
    }
    return { commands: tally.commands - 4 * credentialChecks, roundTrips: tally.roundTrips - credentialChecks, byCommand, credentialChecks };
  };

  beforeAll(async () => {
    t = await createTestApp(pglite, { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: uniquePrefix('cost') });
    const product = await t.product('Costs');
    key = product.key;
    const conversation = await t.prisma.conversation.create({ data: { productId: product.id, sessionId: 's' } });
    conversationId = gid('Conversation', conversation.id);
    counter = countRedisCommands();
    // Leases taken, the address seen clean, scripts and caches warm.
    for (let i = 0; i < 3; i++) await send();
    for (let i = 0; i < 3; i++) await request(DOCUMENTS.viewerName);
  });
  afterAll(async () => {
    counter?.dispose();
    await t?.dispose();
  });

  it('a cached read: its generation checks only, no rate-limit or wrong-credentials call', async () => {
    const tally = await cost(() => request(DOCUMENTS.viewerName));
    // The key's and the response's generations in one MGET: the response cache reads the entry of the
    // product the key named last time while the key is checked.
    expect(tally.byCommand).toEqual({ mget: 1 });
    expect(tally.roundTrips).toBe(1);
    expect(tally.credentialChecks).toBeLessThanOrEqual(1);
  });

  it('sendMessage, new question: 3 round trips; the question and its reply announced in one bump MULTI', async () => {
    const tally = await cost(() => send());
    // Key and answer generations (2), then one MULTI bumping the conversation's tags with both
    // MessageAdded events. The local engine's answers stay in L1 (no lookup-or-lock, no L2 store),
    // and an answer produced within the typing delay shows no typing (no typing scripts).
    expect(tally.roundTrips).toBe(3);
    expect(tally.byCommand).toEqual({ mget: 2, multi: 1, incr: 2, publish: 3, exec: 1 });
  });

  it('sendMessage, answer cached: 3 round trips', async () => {
    await send('How long does shipping take?');
    const tally = await cost(() => send('How long does shipping take?'));
    expect(tally.roundTrips).toBe(3);
    expect(tally.byCommand).toEqual({ mget: 2, multi: 1, incr: 2, publish: 3, exec: 1 });
  });
});
