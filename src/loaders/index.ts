import DataLoader from 'dataloader';
import type { Cache, CachePolicy } from '../infra/cache/index.js';
import type { PrismaClient } from '../infra/db.js';
import type { Feedback, KnowledgeEntry, Message } from '../generated/prisma/client.js';
import type { AnswerStats } from '../services/answers/stats.js';
import { answerStatsPolicy, productAnswerStats, productStats, statsPolicy, type ProductStats } from '../services/products.js';

/**
 * Per-request DataLoaders, one per key shape, for what Prisma's query merging
 * cannot join (aggregates, raw SQL). Built fresh for every request and every
 * subscription event so nothing outlives the data it was read from.
 */
export interface Loaders {
  productStats: DataLoader<string, ProductStats>;
  productAnswerStats: DataLoader<string, AnswerStats>;
  /**
   * Live events carry ids: a row by id and Prisma selection (the `query` of a
   * prismaField), null when gone. A subscription event's loaders are shared by
   * the node's subscribers of that event, so a selection many of them ask is read once.
   */
  message: (query: object, id: string) => Promise<Message | null>;
  feedback: (query: object, id: string) => Promise<Feedback | null>;
  /**
   * Knowledge entries by id with a Prisma selection (the sources of replies), in
   * the order asked, missing ones left out: one statement per selection for
   * every reply of a request or event. `productId` is always read.
   */
  knowledgeEntries: (query: object, ids: readonly string[]) => Promise<KnowledgeEntry[]>;
}

export function createLoaders(prisma: PrismaClient, cache: Cache): Loaders {
  return {
    productStats: cacheFirst(cache, statsPolicy, (ids) => productStats(prisma, ids)),
    productAnswerStats: cacheFirst(cache, answerStatsPolicy, (ids) => productAnswerStats(prisma, ids)),
    message: oncePerSelection((query, id) => prisma.message.findUnique({ ...query, where: { id } }) as Promise<Message | null>),
    feedback: oncePerSelection((query, id) => prisma.feedback.findUnique({ ...query, where: { id } }) as Promise<Feedback | null>),
    knowledgeEntries: batchedPerSelection(async (query, ids) => {
      const select = (query as { select?: Record<string, unknown> }).select;
      const rows = (await prisma.knowledgeEntry.findMany({
        ...query,
        ...(select ? { select: { ...select, id: true, productId: true } } : {}),
        where: { id: { in: [...ids] } },
      })) as KnowledgeEntry[];
      const byId = new Map(rows.map((row) => [row.id, row]));
      return ids.map((id) => byId.get(id) ?? null);
    }),
  };
}

/** Per product: the cache first; the misses of one tick are loaded together in one aggregate statement. */
function cacheFirst<V>(cache: Cache, policy: CachePolicy<string>, loadMany: (ids: readonly string[]) => Promise<V[]>): DataLoader<string, V> {
  const uncached = new DataLoader(loadMany, { maxBatchSize: 100 });
  return new DataLoader((ids) => Promise.all(ids.map((productId) => cache.get(policy, productId, () => uncached.load(productId)))), {
    maxBatchSize: 100,
  });
}

function oncePerSelection<T>(load: (query: object, id: string) => Promise<T>): (query: object, id: string) => Promise<T> {
  const loaded = new Map<string, Promise<T>>();
  return (query, id) => {
    const key = `${id} ${JSON.stringify(query)}`;
    let row = loaded.get(key);
    if (!row) loaded.set(key, (row = load(query, id)));
    return row;
  };
}

/** A DataLoader per selection: ids asked with the same selection in one tick are one query. */
function batchedPerSelection<T>(
  load: (query: object, ids: readonly string[]) => Promise<(T | null)[]>,
): (query: object, ids: readonly string[]) => Promise<T[]> {
  const loaders = new Map<string, DataLoader<string, T | null>>();
  return async (query, ids) => {
    if (!ids.length) return [];
    const key = JSON.stringify(query);
    let loader = loaders.get(key);
    if (!loader) loaders.set(key, (loader = new DataLoader((batch: readonly string[]) => load(query, batch), { maxBatchSize: 500 })));
    return (await loader.loadMany(ids)).filter((row): row is T => row !== null && !(row instanceof Error));
  };
}
