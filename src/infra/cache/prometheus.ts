import type { CacheStat } from './cache.js';

const counters: [keyof CacheStat, string, string][] = [
  ['hits', 'parley_cache_hits_total', 'Reads answered by this cache layer.'],
  ['misses', 'parley_cache_misses_total', 'Reads this cache layer could not answer.'],
  ['sets', 'parley_cache_sets_total', 'Values stored in this cache layer.'],
  ['evictions', 'parley_cache_evictions_total', 'Entries dropped to stay within the L1 bounds.'],
  ['skipped', 'parley_cache_skipped_total', 'Values not stored because they were asked for only once so far (response cache admission).'],
  ['invalidations', 'parley_cache_invalidations_total', 'Bumps of the tags the cache depends on.'],
  ['singleFlightJoins', 'parley_cache_single_flight_joins_total', 'Reads that waited for a load already running.'],
  ['dedupJoins', 'parley_cache_dedup_joins_total', 'Requests that shared an identical request in flight.'],
  ['staleServed', 'parley_cache_stale_served_total', 'Stale values served while a refresh ran.'],
];

const label = (value: string) => value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');

/** The cache counters in Prometheus' text exposition format (for GET /metrics). */
export function cacheMetricsText(stats: readonly CacheStat[]): string {
  const lines: string[] = [];
  for (const [field, name, help] of counters) {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} counter`);
    for (const s of stats) lines.push(`${name}{cache="${label(s.cache)}",layer="${s.layer}"} ${Number(s[field])}`);
  }
  lines.push('# HELP parley_cache_hit_ratio Hits over lookups since start.', '# TYPE parley_cache_hit_ratio gauge');
  for (const s of stats) lines.push(`parley_cache_hit_ratio{cache="${label(s.cache)}",layer="${s.layer}"} ${s.hitRate}`);
  lines.push('# HELP parley_cache_l2_latency_ms Mean Redis round trip of the cache.', '# TYPE parley_cache_l2_latency_ms gauge');
  for (const s of stats)
    if (s.layer === 'L2' && s.avgLatencyMs !== null) lines.push(`parley_cache_l2_latency_ms{cache="${label(s.cache)}"} ${s.avgLatencyMs}`);
  return `${lines.join('\n')}\n`;
}
