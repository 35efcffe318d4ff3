import { expect, it } from 'vitest';
import { Cache, cachePolicy, cacheMetricsText } from '../../src/infra/cache/index.js';

it('renders the cache counters in Prometheus text format', async () => {
  const cache = new Cache({ prefix: 'm:' });
  const policy = cachePolicy<string>({ name: 'viewer', ttlMs: 1_000, scope: (p) => p, tags: (p) => [`product:${p}:knowledge`] });
  await cache.get(policy, 'p1', async () => 1);
  await cache.get(policy, 'p1', async () => 1);
  await cache.invalidate(['product:p1:knowledge']);
  const text = cacheMetricsText(cache.snapshot());
  expect(text).toContain('# TYPE parley_cache_hits_total counter');
  expect(text).toContain('parley_cache_hits_total{cache="viewer",layer="L1"} 1');
  expect(text).toContain('parley_cache_misses_total{cache="viewer",layer="L1"} 1');
  expect(text).toContain('parley_cache_invalidations_total{cache="viewer",layer="L1"} 1');
  expect(text).toContain('parley_cache_hit_ratio{cache="viewer",layer="L1"} 0.5');
  // Every sample line is `name{labels} number`.
  for (const line of text
    .trim()
    .split('\n')
    .filter((l) => !l.startsWith('#'))) {
    expect(line).toMatch(/^[a-z_]+\{[^}]*\} -?[0-9.e+-]+$/);
  }
  await cache.dispose();
});
