import DataLoader from 'dataloader';
import type { PrismaClient } from '../infra/db.js';
import { productStats, type ProductStats } from '../services/products.js';

/**
 * Per-request DataLoaders, one per key shape, for what Prisma's query merging
 * cannot join (aggregates, raw SQL). Built fresh for every request and every
 * subscription event so nothing outlives the data it was read from.
 */
export interface Loaders {
  productStats: DataLoader<string, ProductStats>;
}

export function createLoaders(prisma: PrismaClient): Loaders {
  return {
    productStats: new DataLoader((ids) => productStats(prisma, ids), { maxBatchSize: 100 }),
  };
}
