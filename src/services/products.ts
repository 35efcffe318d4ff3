import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { NotFoundError } from '../errors.js';
import type { PrismaClient } from '../infra/db.js';
import type { Product } from '../generated/prisma/client.js';
import { limits, parseInput, text } from './validation.js';

export const KEY_PREFIX = 'pk_live_';
const KEY_PREFIX_SHOWN = KEY_PREFIX.length + 4;

export interface IssuedKey {
  key: string;
  keyPrefix: string;
  keyHash: string;
}

export function sha256(value: string): string {
  return createHash('sha256').update(value).digest('hex');
}

/** 192 random bits; only the prefix (for display) and the sha256 are stored. */
export function issueProductKey(): IssuedKey {
  const key = KEY_PREFIX + randomBytes(24).toString('base64url');
  return { key, keyPrefix: key.slice(0, KEY_PREFIX_SHOWN), keyHash: sha256(key) };
}

export function looksLikeProductKey(value: string): boolean {
  return value.startsWith(KEY_PREFIX) && value.length <= 128;
}

/** Constant-time comparison of two secrets of any length. */
export function secretsEqual(a: string, b: string): boolean {
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/** Looked up by hash: the key itself never reaches the database. */
export function findProductByKey(prisma: PrismaClient, key: string): Promise<Product | null> {
  return prisma.product.findUnique({ where: { keyHash: sha256(key) } });
}

const createProductInput = z.object({ name: text(limits.productName) });

export async function createProduct(prisma: PrismaClient, input: unknown): Promise<{ product: Product; key: string }> {
  const { name } = parseInput(createProductInput, input);
  const { key, keyPrefix, keyHash } = issueProductKey();
  const product = await prisma.product.create({ data: { name, keyPrefix, keyHash } });
  return { product, key };
}

export async function rotateProductKey(prisma: PrismaClient, productId: string): Promise<{ product: Product; key: string }> {
  const { key, keyPrefix, keyHash } = issueProductKey();
  const [product] = await prisma.product.updateManyAndReturn({ where: { id: productId }, data: { keyPrefix, keyHash } });
  if (!product) throw new NotFoundError('Product');
  return { product, key };
}

export interface ProductStats {
  conversationCount: number;
  messageCount: number;
  feedbackUp: number;
  feedbackDown: number;
}

const emptyStats: ProductStats = { conversationCount: 0, messageCount: 0, feedbackUp: 0, feedbackDown: 0 };

/** Stats of many products in one aggregate statement (batched by a loader). */
export async function productStats(prisma: PrismaClient, productIds: readonly string[]): Promise<ProductStats[]> {
  const rows = await prisma.$queryRawUnsafe<
    { id: string; conversations: bigint; messages: bigint; up: bigint; down: bigint }[]
  >(
    `SELECT p.id::text AS id, c.conversations, c.messages, f.up, f.down
       FROM unnest($1::uuid[]) AS p(id)
       LEFT JOIN LATERAL (
         SELECT count(*) AS conversations, coalesce(sum("messageCount"), 0)::bigint AS messages
           FROM "Conversation" WHERE "productId" = p.id) c ON true
       LEFT JOIN LATERAL (
         SELECT count(*) FILTER (WHERE rating = 'UP') AS up, count(*) FILTER (WHERE rating = 'DOWN') AS down
           FROM "Feedback" WHERE "productId" = p.id) f ON true`,
    productIds,
  );
  const byId = new Map(
    rows.map((r) => [
      r.id,
      {
        conversationCount: Number(r.conversations),
        messageCount: Number(r.messages),
        feedbackUp: Number(r.up),
        feedbackDown: Number(r.down),
      },
    ]),
  );
  return productIds.map((id) => byId.get(id) ?? emptyStats);
}
