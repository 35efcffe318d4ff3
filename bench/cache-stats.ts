/**
 * Parley's cache hit rate during a run, from its admin `cacheStats` query
 * (one row per cache and layer, with hits and misses) read before and after.
 */

export interface CacheCounts {
  lookups: number;
  hits: number;
  hitRate: number;
}

interface RawCacheStat {
  layer?: string;
  hits: number;
  misses: number;
}

/**
 * Parley's cache counters through the admin `cacheStats` query, summed over
 * its caches: a lookup is an L1 hit or miss, and it is served from cache on an
 * L1 hit or an L2 hit. null while the query does not exist or does not
 * validate: the report then says n/a rather than guess.
 */
export async function readCacheCounters(url: string, adminToken: string): Promise<{ lookups: number; hits: number } | null> {
  try {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-admin-token': adminToken },
      body: JSON.stringify({ query: '{ cacheStats { layer hits misses } }' }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await response.json()) as { data?: { cacheStats?: RawCacheStat[] }; errors?: unknown };
    const stats = body.data?.cacheStats;
    if (body.errors || !Array.isArray(stats)) return null;
    const l1 = stats.filter((s) => s.layer !== 'L2');
    const l2 = stats.filter((s) => s.layer === 'L2');
    const sum = (list: RawCacheStat[], field: 'hits' | 'misses') => list.reduce((n, s) => n + s[field], 0);
    return { lookups: sum(l1, 'hits') + sum(l1, 'misses'), hits: sum(l1, 'hits') + sum(l2, 'hits') };
  } catch {
    return null;
  }
}

export function cacheDelta(before: { lookups: number; hits: number }, after: { lookups: number; hits: number }): CacheCounts {
  const lookups = after.lookups - before.lookups;
  const hits = after.hits - before.hits;
  return { lookups, hits, hitRate: lookups > 0 ? hits / lookups : 0 };
}
