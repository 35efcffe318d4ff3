import { builder } from '../builder.js';
import type { CacheStat as Stat } from '../infra/cache/index.js';
import { FULL_ACCESS } from '../services/auth.js';

const CacheLayer = builder.enumType('CacheLayer', {
  values: { L1: { description: 'In this process' }, L2: { description: 'Redis, shared by every node' } } as const,
});

const CacheStat = builder.objectRef<Stat>('CacheStat').implement({
  authScopes: FULL_ACCESS,
  description: 'Counters of one cache and layer on the node that answered, since it started.',
  fields: (t) => ({
    cache: t.exposeString('cache'),
    layer: t.field({ type: CacheLayer, resolve: (s) => s.layer }),
    hits: t.exposeInt('hits'),
    misses: t.exposeInt('misses'),
    sets: t.exposeInt('sets'),
    evictions: t.exposeInt('evictions', { description: 'Entries dropped to stay within the entry and byte bounds.' }),
    skipped: t.exposeInt('skipped', {
      description: 'Responses not stored because they were asked for only once so far (PARLEY_RESPONSE_CACHE_ADMIT_AFTER).',
    }),
    invalidations: t.exposeInt('invalidations', { description: 'Bumps of the tags this cache depends on.' }),
    singleFlightJoins: t.exposeInt('singleFlightJoins', { description: 'Reads that waited for a load already running.' }),
    dedupJoins: t.exposeInt('dedupJoins', { description: 'Requests that shared an identical request in flight.' }),
    staleServed: t.exposeInt('staleServed'),
    hitRate: t.exposeFloat('hitRate'),
    avgLatencyMs: t.exposeFloat('avgLatencyMs', { nullable: true, description: 'Mean Redis round trip (L2 only).' }),
  }),
});

builder.queryField('cacheStats', (t) =>
  t.withAuth({ admin: true }).field({
    type: [CacheStat],
    description: 'Admin: cache analytics of the node that answered.',
    resolve: (_root, _args, ctx) => ctx.deps.cache.snapshot(),
  }),
);
