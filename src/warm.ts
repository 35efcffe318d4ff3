import { execute, parse } from 'graphql';
import { createContext, type AppDeps } from './context.js';
import { schema } from './schema/index.js';
import { findProductByKeyHash, mostActiveProducts } from './services/products.js';

/**
 * The selection warmed for each product: the knowledge first page as GraphiQL's
 * example and the chat widget read it, so the first real request is a hit.
 */
const WARM_DOCUMENT = parse(/* GraphQL */ `
  query Warm {
    viewer {
      id
      name
      stats { conversationCount messageCount feedbackUp feedbackDown }
      knowledge(first: 20) { edges { cursor node { id title content tags updatedAt } } pageInfo { hasNextPage endCursor } }
    }
  }
`);

export interface WarmReport {
  products: number;
  ms: number;
}

/**
 * Loads the key lookup, stats and knowledge first page of the most recently
 * active products into the cache (L1 of this node, and L2 for the others).
 */
export async function warmCache(deps: AppDeps, limit: number): Promise<WarmReport> {
  const started = performance.now();
  if (limit <= 0) return { products: 0, ms: 0 };
  const store = { prisma: deps.db.prisma, cache: deps.cache, events: deps.events };
  const products = await mostActiveProducts(deps.db.prisma, limit);
  for (const product of products) {
    await findProductByKeyHash(store, product.keyHash);
    const result = await execute({
      schema,
      document: WARM_DOCUMENT,
      contextValue: createContext(deps, { product, isAdmin: false, key: { kind: 'SECRET', hash: product.keyHash }, conversationId: null }),
    });
    if (result.errors?.length) deps.log.warn('cache warming failed for a product', { productId: product.id, error: result.errors[0]?.message });
  }
  return { products: products.length, ms: Math.round(performance.now() - started) };
}
