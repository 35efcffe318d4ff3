import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { countRedisCommands } from '../../bench/redis-commands.js';
import { LeasedLimiter, type Limiter } from '../../src/infra/rate-limiter.js';
import { uniquePrefix } from '../helpers/live.js';

/**
 * The leased per-key limit: nodes spend slices of one budget leased from
 * Redis, so together they never allow more than the limit, and refuse at most
 * (nodes − 1) slices early; Redis unreachable, the insurance counts.
 */

const redisUrl = inject('redisUrl');

describe.skipIf(!redisUrl)('LeasedLimiter', () => {
  const clients: Redis[] = [];
  const connect = async () => {
    const client = new Redis(redisUrl, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    await client.connect();
    clients.push(client);
    return client;
  };
  const never: Limiter = { consume: async () => 0 };
  const node = (client: Redis, prefix: string, points: number, fraction: number, insurance = never) =>
    new LeasedLimiter(client, { name: 'product', points, durationSeconds: 60, fraction, key: (k) => `${prefix}${k}`, insurance });
  let a: Redis;
  let b: Redis;

  beforeAll(async () => {
    a = await connect();
    b = await connect();
  });
  afterAll(() => {
    for (const c of clients) c.disconnect();
  });

  it('shares one budget across two nodes, within one lease', async () => {
    const prefix = uniquePrefix('lease');
    const [one, two] = [node(a, prefix, 1_000, 1 / 10), node(b, prefix, 1_000, 1 / 10)];
    let allowed = 0;
    let refused = 0;
    // Uneven traffic: three requests on one node for each on the other.
    for (let i = 0; i < 1_400; i++) {
      const answer = await (i % 4 === 3 ? two : one).consume('p1');
      if (answer === null) allowed += 1;
      else {
        refused += 1;
        expect(answer).toBeGreaterThan(0);
        expect(answer).toBeLessThanOrEqual(60_000);
      }
    }
    expect(allowed).toBeLessThanOrEqual(1_000);
    expect(allowed).toBeGreaterThanOrEqual(1_000 - 100);
    expect(refused).toBe(1_400 - allowed);
    // Another key has its own budget.
    expect(await one.consume('p2')).toBeNull();
  });

  it('asks Redis once per lease, not once per request', async () => {
    const prefix = uniquePrefix('lease');
    const limiter = node(a, prefix, 60_000, 1 / 500);
    const counter = countRedisCommands();
    try {
      const answers = await Promise.all(Array.from({ length: 300 }, () => limiter.consume('p')));
      expect(answers.every((x) => x === null)).toBe(true);
    } finally {
      counter.dispose();
    }
    // 300 requests, leases of 120 points; concurrent requests share one call.
    expect(counter.take().commands).toBeLessThanOrEqual(3);
  });

  it('keeps refusing a spent key locally until its window ends', async () => {
    const prefix = uniquePrefix('lease');
    const limiter = node(a, prefix, 2, 1 / 500);
    expect([await limiter.consume('k'), await limiter.consume('k')]).toEqual([null, null]);
    const refused = await limiter.consume('k');
    expect(refused).toBeGreaterThan(59_000);
    expect(await a.get(`${prefix}k`)).toBe('3');
    await limiter.consume('k');
    // Refused without asking Redis again.
    expect(await a.get(`${prefix}k`)).toBe('3');
  });

  it('counts with its insurance while Redis is unreachable', async () => {
    const down = new Redis('redis://127.0.0.1:1', {
      lazyConnect: true,
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    clients.push(down);
    let counted = 0;
    const insurance: Limiter = { consume: async () => (++counted > 2 ? 1_000 : null) };
    const limiter = node(down, uniquePrefix('lease'), 100, 1 / 10, insurance);
    expect([await limiter.consume('k'), await limiter.consume('k'), await limiter.consume('k')]).toEqual([null, null, 1_000]);
    expect(counted).toBe(3);
  });
});
