import { LRUCache } from 'lru-cache';
import { cosine } from '../../infra/llm/embeddings.js';

/**
 * The answered questions of each product with their embeddings, on this node:
 * where a new question looks for one it means the same as. Bounded per product
 * (the most recently answered are kept) and in products. Each node learns the
 * questions it answers (or serves) itself; what a match finds is checked
 * against the answer cache, so an entry whose answer is gone (a knowledge write
 * dropped it, its TTL passed) is never served.
 */
export class SemanticIndex<K> {
  private readonly products: LRUCache<string, LRUCache<string, { vector: Float32Array; key: K }>>;

  constructor(
    private readonly perProduct = 1_000,
    products = 1_000,
  ) {
    this.products = new LRUCache({ max: products });
  }

  add(productId: string, id: string, vector: Float32Array, key: K): void {
    let questions = this.products.get(productId);
    if (!questions) this.products.set(productId, (questions = new LRUCache({ max: this.perProduct })));
    questions.set(id, { vector, key });
  }

  /** The product's answered question nearest to `vector`, if its similarity is at least `threshold`. */
  nearest(productId: string, vector: Float32Array, threshold: number): { id: string; key: K; similarity: number } | undefined {
    let best: { id: string; key: K; similarity: number } | undefined;
    for (const [id, entry] of this.products.get(productId)?.entries() ?? []) {
      const similarity = cosine(vector, entry.vector);
      if (similarity >= threshold && similarity > (best?.similarity ?? -1)) best = { id, key: entry.key, similarity };
    }
    return best;
  }
}
