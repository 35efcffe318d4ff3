import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { Cache, cachePolicy } from '../../src/infra/cache/index.js';
import { findRedisServer, startRedis, type Throwaway } from '../helpers/servers.js';
import { within } from '../helpers/time.js';

// The cache on its own: L1 bounds, tag invalidation, single-flight, stale-while-
// revalidate, and with real Redis: L2 across nodes, read-after-write across
// nodes, the cross-node load lock, and a Redis outage.

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const byProduct = cachePolicy<{ productId: string; q: string }>({
  name: 'byProduct',
  ttlMs: 60_000,
  scope: (a) => a.productId,
  key: (a) => a.q,
  tags: (a) => [`product:${a.productId}:knowledge`],
});

function loader<V>(make: (n: number) => V, delayMs = 0) {
  let calls = 0;
  const load = async () => {
    calls += 1;
    const n = calls;
    if (delayMs) await sleep(delayMs);
    return make(n);
  };
  return { load, calls: () => calls };
}

const open: { dispose(): Promise<void> }[] = [];
afterEach(async () => {
  await Promise.all(open.splice(0).map((c) => c.dispose()));
});

function l1Cache(options: Partial<ConstructorParameters<typeof Cache>[0]> = {}): Cache {
  const cache = new Cache({ prefix: `t${randomBytes(4).toString('hex')}:`, ...options });
  open.push(cache);
  return cache;
}

describe('cache, L1 only (embedded mode)', () => {
  it('loads once, then serves from L1', async () => {
    const cache = l1Cache();
    const { load, calls } = loader((n) => ({ answer: n }));
    const args = { productId: 'p1', q: 'refund' };
    expect(await cache.get(byProduct, args, load)).toEqual({ answer: 1 });
    expect(await cache.get(byProduct, args, load)).toEqual({ answer: 1 });
    expect(calls()).toBe(1);
    const [stat] = cache.snapshot();
    expect(stat).toMatchObject({ cache: 'byProduct', layer: 'L1', hits: 1, misses: 1, sets: 1, hitRate: 0.5 });
  });

  it('a bumped tag makes exactly its entries reload; others stay cached', async () => {
    const cache = l1Cache();
    const a = loader((n) => `a${n}`);
    const b = loader((n) => `b${n}`);
    const pa = { productId: 'pa', q: 'x' };
    const pb = { productId: 'pb', q: 'x' };
    await cache.get(byProduct, pa, a.load);
    await cache.get(byProduct, pb, b.load);
    await cache.invalidate(['product:pa:knowledge']);
    expect(await cache.get(byProduct, pa, a.load)).toBe('a2');
    expect(await cache.get(byProduct, pb, b.load)).toBe('b1');
    expect(cache.snapshot()[0]!.invalidations).toBe(1);
  });

  it('never mixes products: identical arguments in two scopes are two entries', async () => {
    const cache = l1Cache();
    expect(await cache.get(byProduct, { productId: 'A', q: 'same' }, async () => 'secret of A')).toBe('secret of A');
    expect(await cache.get(byProduct, { productId: 'B', q: 'same' }, async () => 'B own')).toBe('B own');
  });

  it('keeps L1 under its byte bound with large values, and skips a value larger than the bound', async () => {
    const max = 1024 * 1024;
    const cache = l1Cache({ l1MaxBytes: max, l1MaxEntries: 100_000 });
    const big = 'x'.repeat(50 * 1024);
    for (let i = 0; i < 100; i++) {
      await cache.get(byProduct, { productId: 'p', q: `k${i}` }, async () => big + i);
      expect(cache.l1Bytes).toBeLessThanOrEqual(max);
    }
    expect(cache.l1Entries).toBeLessThan(100);
    expect(cache.snapshot()[0]!.evictions).toBeGreaterThan(0);
    const before = cache.l1Bytes;
    const huge = 'y'.repeat(2 * max);
    expect(await cache.get(byProduct, { productId: 'p', q: 'huge' }, async () => huge)).toBe(huge);
    expect(cache.l1Bytes).toBeLessThanOrEqual(max);
    expect(cache.l1Bytes).toBeLessThanOrEqual(before + 1);
  });

  it('loads once for many concurrent misses of one key (single-flight)', async () => {
    const cache = l1Cache();
    const { load, calls } = loader((n) => n, 30);
    const results = await Promise.all(Array.from({ length: 50 }, () => cache.get(byProduct, { productId: 'p', q: 'hot' }, load)));
    expect(new Set(results)).toEqual(new Set([1]));
    expect(calls()).toBe(1);
    expect(cache.snapshot()[0]!.singleFlightJoins).toBe(49);
  });

  it('expires entries after their TTL (with jitter) and reloads', async () => {
    const cache = l1Cache({ jitter: 0.1 });
    const short = cachePolicy<{ productId: string; q: string }>({ ...byProduct, name: 'short', ttlMs: 20 });
    const { load, calls } = loader((n) => n);
    await cache.get(short, { productId: 'p', q: 'q' }, load);
    await sleep(60);
    expect(await cache.get(short, { productId: 'p', q: 'q' }, load)).toBe(2);
    expect(calls()).toBe(2);
  });

  it('stale-while-revalidate serves the stale value once and refreshes in the background', async () => {
    const cache = l1Cache({ jitter: 0 });
    const swr = cachePolicy<{ productId: string; q: string }>({ ...byProduct, name: 'swr', ttlMs: 20, staleWhileRevalidateMs: 10_000 });
    const { load, calls } = loader((n) => n, 20);
    const args = { productId: 'p', q: 'q' };
    await cache.get(swr, args, load);
    await sleep(40);
    expect(await cache.get(swr, args, load)).toBe(1); // stale, at once
    expect(await cache.get(swr, args, load)).toBe(1); // still refreshing: no second load
    await within(
      (async () => {
        while ((await cache.get(swr, args, load)) !== 2) await sleep(5);
      })(),
      2_000,
      'background refresh',
    );
    expect(calls()).toBe(2);
    expect(cache.snapshot().find((s) => s.cache === 'swr')!.staleServed).toBeGreaterThanOrEqual(2);
  });
});

const redisUrl = inject('redisUrl');

async function redisCache(url: string, prefix: string, options: Partial<ConstructorParameters<typeof Cache>[0]> = {}) {
  const client = new Redis(url, {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    lazyConnect: true,
    retryStrategy: (t) => Math.min(t * 20, 200),
  });
  const subscriber = new Redis(url, { lazyConnect: true, retryStrategy: (t) => Math.min(t * 20, 200) });
  for (const c of [client, subscriber]) c.on('error', () => undefined);
  await Promise.allSettled([client.connect(), subscriber.connect()]);
  const cache = new Cache({ prefix, redis: { client, subscriber }, ...options });
  await cache.start();
  open.push(cache);
  return cache;
}

describe.skipIf(!redisUrl)('cache with Redis (two nodes)', () => {
  let prefix: string;
  beforeAll(() => {
    prefix = `t${randomBytes(4).toString('hex')}:`;
  });

  it('a value loaded on node A is an L2 hit on node B', async () => {
    const a = await redisCache(redisUrl, prefix);
    const b = await redisCache(redisUrl, prefix);
    const args = { productId: 'p-l2', q: 'x' };
    await a.get(byProduct, args, async () => ({ at: new Date(0), n: 1n, list: [1, 2] }));
    const onB = loader(() => 'loaded on B');
    expect(await b.get(byProduct, args, onB.load)).toEqual({ at: new Date(0), n: 1n, list: [1, 2] });
    expect(onB.calls()).toBe(0);
    expect(b.snapshot().find((s) => s.layer === 'L2')).toMatchObject({ hits: 1 });
  });

  it('a write on A is seen by a read on B right after (read-after-write across nodes)', async () => {
    const a = await redisCache(redisUrl, prefix);
    const b = await redisCache(redisUrl, prefix);
    const args = { productId: 'p-raw', q: 'x' };
    let version = 1;
    const load = async () => `v${version}`;
    expect(await a.get(byProduct, args, load)).toBe('v1');
    expect(await b.get(byProduct, args, load)).toBe('v1');
    for (let i = 0; i < 20; i++) {
      version += 1;
      await a.invalidate(['product:p-raw:knowledge']);
      expect(await b.get(byProduct, args, load)).toBe(`v${version}`);
      expect(await a.get(byProduct, args, load)).toBe(`v${version}`);
    }
  });

  it('with a trust window, pub/sub invalidations still reach the other node', async () => {
    const a = await redisCache(redisUrl, prefix, { generationTrustMs: 60_000 });
    const b = await redisCache(redisUrl, prefix, { generationTrustMs: 60_000 });
    const args = { productId: 'p-pubsub', q: 'x' };
    let version = 1;
    const load = async () => `v${version}`;
    await b.get(byProduct, args, load);
    version = 2;
    await a.invalidate(['product:p-pubsub:knowledge']);
    await within(
      (async () => {
        while ((await b.get(byProduct, args, load)) !== 'v2') await sleep(2);
      })(),
      2_000,
      'invalidation message on node B',
    );
  });

  it('loads once across nodes: the other node waits for the lock holder and reads L2', async () => {
    const a = await redisCache(redisUrl, prefix, { lockWaitMs: 2_000 });
    const b = await redisCache(redisUrl, prefix, { lockWaitMs: 2_000 });
    const { load, calls } = loader((n) => `loaded ${n}`, 150);
    const args = { productId: 'p-lock', q: 'x' };
    const [ra, rb] = await Promise.all([a.get(byProduct, args, load), b.get(byProduct, args, load)]);
    expect(ra).toBe('loaded 1');
    expect(rb).toBe('loaded 1');
    expect(calls()).toBe(1);
  });
});

describe.skipIf(!findRedisServer())('cache during a Redis outage', () => {
  let redis: Throwaway;
  beforeAll(async () => {
    redis = await startRedis();
  });
  afterAll(() => redis?.dispose());

  it('keeps answering from L1 + loader with Redis down, bounded, and returns to L2 when it is back', async () => {
    const prefix = `o${randomBytes(4).toString('hex')}:`;
    const a = await redisCache(redis.url, prefix, { redisTimeoutMs: 50 });
    const args = (q: string) => ({ productId: 'p-out', q });
    let version = 1;
    const load = async () => `v${version}`;
    expect(await a.get(byProduct, args('warm'), load)).toBe('v1');

    await redis.stop!();
    let failures = 0;
    for (let i = 0; i < 50; i++) {
      try {
        // Every read settles quickly even though Redis is gone: no hang, no error.
        await within(a.get(byProduct, args(`k${i % 5}`), load), 1_000, 'read with redis down');
      } catch {
        failures += 1;
      }
    }
    expect(failures).toBe(0);
    expect(await a.get(byProduct, args('warm'), load)).toBe('v1');
    // A write during the outage still invalidates this node's own entries.
    version = 2;
    await a.invalidate(['product:p-out:knowledge']);
    expect(await a.get(byProduct, args('warm'), load)).toBe('v2');

    await redis.start!();
    // Back: what A loads is written to L2 again, and node B reads it from there.
    // (Recovery may bump the epoch once, since A wrote while Redis was away.)
    const b = await redisCache(redis.url, prefix);
    await within(
      (async () => {
        for (let i = 0; ; i++) {
          await a.get(byProduct, args(`shared-${i}`), load);
          const onB = loader(() => 'B loaded');
          if ((await b.get(byProduct, args(`shared-${i}`), onB.load)) === 'v2' && onB.calls() === 0) return;
          await sleep(50);
        }
      })(),
      10_000,
      'L2 hits across nodes after Redis came back',
    );
    expect(a.snapshot().find((s) => s.layer === 'L2')!.sets).toBeGreaterThan(0);
  });
});
