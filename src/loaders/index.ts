import DataLoader from 'dataloader';
import type { Cache } from '../infra/cache/index.js';
import type { PrismaClient } from '../infra/db.js';
import type { Feedback, Message } from '../generated/prisma/client.js';
import { productStats, statsPolicy, type ProductStats } from '../services/products.js';

/**
 * Per-request DataLoaders, one per key shape, for what Prisma's query merging
 * cannot join (aggregates, raw SQL). Built fresh for every request and every
 * subscription event so nothing outlives the data it was read from.
 */
export interface Loaders {
  productStats: DataLoader<string, ProductStats>;
  /**
   * Live events carry ids: a row by id and Prisma selection (the `query` of a
   * prismaField), null when gone. A subscription event's loaders are shared by
   * the node's subscribers of that event, so a selection many of them ask is read once.
   */
  message: (query: object, id: string) => Promise<Message | null>;
  feedback: (query: object, id: string) => Promise<Feedback | null>;
}

export function createLoaders(prisma: PrismaClient, cache: Cache): Loaders {
  // Cache first; the misses of one tick are loaded together in one aggregate statement.
  const uncachedStats = new DataLoader((ids: readonly string[]) => productStats(prisma, ids), { maxBatchSize: 100 });
  return {
    productStats: new DataLoader(
      (ids) => Promise.all(ids.map((productId) => cache.get(statsPolicy, productId, () => uncachedStats.load(productId)))),
      { maxBatchSize: 100 },
    ),
    message: oncePerSelection((query, id) => prisma.message.findUnique({ ...query, where: { id } }) as Promise<Message | null>),
    feedback: oncePerSelection((query, id) => prisma.feedback.findUnique({ ...query, where: { id } }) as Promise<Feedback | null>),
  };
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
