/**
 * Parley's cache counters during a run, from its admin `cacheStats` query
 * (one row per cache and layer) read before and after:
 *
 * - resolver caches: every row but `operations` and `response`; a lookup is
 *   an L1 hit or miss, served from cache on an L1 hit or an L2 hit;
 * - the response cache (rows `cache: "response"`, when Parley has one): the
 *   same rate over its own rows;
 * - request dedup: `dedupJoins` of the `operations` row, requests that shared
 *   an identical request already in flight instead of executing.
 */

export interface CacheCounts {
  lookups: number;
  hits: number;
  hitRate: number;
  /** null when Parley has no response cache rows. */
  response: { lookups: number; hits: number; hitRate: number } | null;
  /** Requests that joined an identical in-flight execution; null when Parley reports no such row. */
  dedupJoins: number | null;
}

interface RawCacheStat {
  cache: string;
  layer?: string;
  hits: number;
  misses: number;
  dedupJoins?: number;
}

export interface CacheCounters {
  lookups: number;
  hits: number;
  response: { lookups: number; hits: number } | null;
  dedupJoins: number | null;
}

const sum = (list: RawCacheStat[], field: 'hits' | 'misses') => list.reduce((n, s) => n + s[field], 0);

function rate(rows: RawCacheStat[]): { lookups: number; hits: number } {
  const l1 = rows.filter((s) => s.layer !== 'L2');
  const l2 = rows.filter((s) => s.layer === 'L2');
  return { lookups: sum(l1, 'hits') + sum(l1, 'misses'), hits: sum(l1, 'hits') + sum(l2, 'hits') };
}

/** null while the query does not exist or does not validate: the report then says n/a rather than guess. */
export async function readCacheCounters(url: string, adminToken: string): Promise<CacheCounters | null> {
  try {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-admin-token': adminToken },
      body: JSON.stringify({ query: '{ cacheStats { cache layer hits misses dedupJoins } }' }),
      signal: AbortSignal.timeout(10_000),
    });
    const body = (await response.json()) as { data?: { cacheStats?: RawCacheStat[] }; errors?: unknown };
    const stats = body.data?.cacheStats;
    if (body.errors || !Array.isArray(stats)) return null;
    const resolver = stats.filter((s) => s.cache !== 'operations' && s.cache !== 'response');
    const responseRows = stats.filter((s) => s.cache === 'response');
    const operations = stats.filter((s) => s.cache === 'operations');
    return {
      ...rate(resolver),
      response: responseRows.length ? rate(responseRows) : null,
      dedupJoins: operations.length ? operations.reduce((n, s) => n + (s.dedupJoins ?? 0), 0) : null,
    };
  } catch {
    return null;
  }
}

export function cacheDelta(before: CacheCounters, after: CacheCounters): CacheCounts {
  const lookups = after.lookups - before.lookups;
  const hits = after.hits - before.hits;
  let response: CacheCounts['response'] = null;
  if (before.response && after.response) {
    const l = after.response.lookups - before.response.lookups;
    const h = after.response.hits - before.response.hits;
    response = { lookups: l, hits: h, hitRate: l > 0 ? h / l : 0 };
  }
  return {
    lookups,
    hits,
    hitRate: lookups > 0 ? hits / lookups : 0,
    response,
    dedupJoins: before.dedupJoins !== null && after.dedupJoins !== null ? after.dedupJoins - before.dedupJoins : null,
  };
}
