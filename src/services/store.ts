import type { Cache } from '../infra/cache/index.js';
import type { PrismaClient } from '../infra/db.js';
import type { Prisma } from '../generated/prisma/client.js';
import type { LiveEvents } from './types.js';

/**
 * What a service needs to write: the database, the cache it must keep true, and
 * the live events it announces once the write has committed.
 */
export interface Store {
  prisma: PrismaClient;
  cache: Cache;
  events: LiveEvents;
}

/**
 * Cache tags, one per slice of data a write can change. A write bumps exactly
 * the tags it affects; a cached read lists the tags it depends on.
 */
export const tags = {
  /** The product row itself (name, key prefix). */
  product: (productId: string) => `product:${productId}`,
  /** The product row found by this key hash (auth on every request). */
  productKey: (keyHash: string) => `productKey:${keyHash}`,
  knowledge: (productId: string) => `product:${productId}:knowledge`,
  /**
   * The product's knowledge entries holding this search term (a `to_tsvector('english', …)` lexeme):
   * bumped when an entry that holds it is added, changed or deleted. An answer depends on its question's terms.
   */
  knowledgeTerm: (productId: string, lexeme: string) => `product:${productId}:knowledge:term:${lexeme}`,
  /** The product's conversation list, counters and messages. */
  conversations: (productId: string) => `product:${productId}:conversations`,
  feedback: (productId: string) => `product:${productId}:feedback`,
  /** Named under its product, as every tag a write bumps with others: their counters share a Redis Cluster slot (one MULTI). */
  conversation: (productId: string, conversationId: string) => `product:${productId}:conversation:${conversationId}`,
};

/** The order of a conversation's messages (oldest first; the id breaks ties): pages, cursors and the replay of live events. */
export const messageOrder: Prisma.MessageOrderByWithRelationInput[] = [{ createdAt: 'asc' }, { id: 'asc' }];
