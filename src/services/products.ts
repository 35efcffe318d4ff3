import { randomBytes, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { NotFoundError } from '../errors.js';
import { cachePolicy } from '../infra/cache/index.js';
import type { PrismaClient } from '../infra/db.js';
import { answerStats, answerStatsSql, type AnswerGroupRow, type AnswerStats, type ProviderRow } from './answers/stats.js';
import { tags, type Store } from './store.js';
import type { Prisma, Product } from '../generated/prisma/client.js';
import { allowedOriginsInput } from './origins.js';
import { limits, parseInput, text } from './validation.js';
import { sha256 } from '../infra/hash.js';

/** A product's two kinds of key. The kind is the column a key's hash is stored in, never its prefix. */
export type KeyKind = 'SECRET' | 'PUBLISHABLE';

/** Prefixes of keys issued now: no one can mistake one kind for the other, or either for a key issued before. */
export const KEY_PREFIXES: Readonly<Record<KeyKind, string>> = { SECRET: 'sk_live_', PUBLISHABLE: 'pk_pub_' };
/** Keys issued before publishable keys existed: still secret keys (the migration kept their hashes where they were). */
export const LEGACY_KEY_PREFIX = 'pk_live_';
const KNOWN_PREFIXES = [KEY_PREFIXES.SECRET, KEY_PREFIXES.PUBLISHABLE, LEGACY_KEY_PREFIX];
/** What keyPrefix shows: the prefix and 4 random characters, to tell keys apart. */
const RANDOM_SHOWN = 4;

export interface IssuedKey {
  key: string;
  keyPrefix: string;
  keyHash: string;
}

/** 192 random bits; only the prefix (for display) and the sha256 are stored. */
export function issueProductKey(kind: KeyKind = 'SECRET'): IssuedKey {
  const prefix = KEY_PREFIXES[kind];
  const key = prefix + randomBytes(24).toString('base64url');
  return { key, keyPrefix: key.slice(0, prefix.length + RANDOM_SHOWN), keyHash: sha256(key) };
}

/** The HMAC key of a product's conversation tokens (256 bits, hex). */
export function newConversationTokenSecret(): string {
  return randomBytes(32).toString('hex');
}

/** A cheap gate before any lookup: the shape of some key Parley issued. Says nothing of its kind. */
export function looksLikeProductKey(value: string): boolean {
  return value.length <= 128 && KNOWN_PREFIXES.some((prefix) => value.startsWith(prefix));
}

/** Constant-time comparison of two secrets of any length. */
export function secretsEqual(a: string, b: string): boolean {
  // Equal-length digests: timingSafeEqual needs them, and the lengths of the secrets stay hidden.
  return timingSafeEqual(sha256(a, 'bytes'), sha256(b, 'bytes'));
}

/** The kind of the key with this hash, read from the column the product row holds it in. */
export function keyKindOf(product: Product, keyHash: string): KeyKind | null {
  if (product.keyHash === keyHash) return 'SECRET';
  if (product.publishableKeyHash === keyHash) return 'PUBLISHABLE';
  return null;
}

const byKeyHash = (keyHash: string) => ({ OR: [{ keyHash }, { publishableKeyHash: keyHash }] });

/** Looked up by hash: the key itself never reaches the database. */
export function findProductByKey(prisma: PrismaClient, key: string): Promise<Product | null> {
  return prisma.product.findFirst({ where: byKeyHash(sha256(key)) });
}

/**
 * Runs on every request. Only found products are cached (a flood of random keys
 * must not push real entries out); rotating a key bumps its tag. One statement
 * finds either kind (each column has its unique index); the caller tells the
 * kind from the row (keyKindOf).
 */
const productByKeyPolicy = cachePolicy<string>({
  name: 'productByKey',
  ttlMs: 5 * 60_000,
  scope: () => '_',
  tags: (keyHash) => [tags.productKey(keyHash)],
  cacheIf: (product) => product !== null,
});

export function findProductByKeyCached(store: Store, key: string): Promise<Product | null> {
  return findProductByKeyHash(store, sha256(key));
}

export function findProductByKeyHash({ prisma, cache }: Store, keyHash: string): Promise<Product | null> {
  return cache.get(productByKeyPolicy, keyHash, () => prisma.product.findFirst({ where: byKeyHash(keyHash) }));
}

/** The products with the most recent conversation activity (then the newest), for cache warming. */
export function mostActiveProducts(prisma: PrismaClient, limit: number): Promise<Product[]> {
  return prisma.$queryRawUnsafe<Product[]>(
    `SELECT p.id::text AS id, p.name, p."keyPrefix", p."keyHash", p."publishableKeyPrefix", p."publishableKeyHash",
            p."conversationTokenSecret", p."publishableSearch", p."allowedOrigins", p."secretKeyInBrowser", p.metadata, p."createdAt"
       FROM "Product" p
       LEFT JOIN LATERAL (SELECT max("lastMessageAt") AS last FROM "Conversation" c WHERE c."productId" = p.id) a ON true
      ORDER BY a.last DESC NULLS LAST, p."createdAt" DESC
      LIMIT $1`,
    limit,
  );
}

const createProductInput = z.object({ name: text(limits.productName) });

/** A new product with both keys (each shown once) and the secret of its conversation tokens. */
export async function createProduct(prisma: PrismaClient, input: unknown): Promise<{ product: Product; key: string; publishableKey: string }> {
  const { name } = parseInput(createProductInput, input);
  const secret = issueProductKey('SECRET');
  const publishable = issueProductKey('PUBLISHABLE');
  const product = await prisma.product.create({
    data: {
      name,
      keyPrefix: secret.keyPrefix,
      keyHash: secret.keyHash,
      publishableKeyPrefix: publishable.keyPrefix,
      publishableKeyHash: publishable.keyHash,
      conversationTokenSecret: newConversationTokenSecret(),
    },
  });
  return { product, key: secret.key, publishableKey: publishable.key };
}

/**
 * Replaces one kind of key; the other keeps working. A new publishable key
 * (also the first one of a product made before they existed) comes with a new
 * conversation-token secret: every token handed out before stops with the key.
 * The old key's cached lookup is dropped on every node, which also ends what
 * it opened (plugins/key-revocation.ts).
 */
export async function rotateProductKey(
  { prisma, cache }: Store,
  productId: string,
  kind: KeyKind = 'SECRET',
): Promise<{ product: Product; key: string }> {
  const { key, keyPrefix, keyHash } = issueProductKey(kind);
  // One statement that also hands back the old hash, whose cached lookup must go.
  const set =
    kind === 'SECRET' ? `"keyPrefix" = $2, "keyHash" = $3` : `"publishableKeyPrefix" = $2, "publishableKeyHash" = $3, "conversationTokenSecret" = $4`;
  const column = kind === 'SECRET' ? '"keyHash"' : '"publishableKeyHash"';
  const [row] = await prisma.$queryRawUnsafe<{ oldHash: string | null }[]>(
    `UPDATE "Product" p SET ${set}
       FROM (SELECT id, ${column} AS hash FROM "Product" WHERE id = $1::uuid FOR UPDATE) old
      WHERE p.id = old.id
      RETURNING old.hash AS "oldHash"`,
    productId,
    keyPrefix,
    keyHash,
    ...(kind === 'SECRET' ? [] : [newConversationTokenSecret()]),
  );
  if (!row) throw new NotFoundError('Product');
  await cache.invalidate([...(row.oldHash ? [tags.productKey(row.oldHash)] : []), tags.product(productId)]);
  const product = await prisma.product.findUniqueOrThrow({ where: { id: productId } });
  return { product, key };
}

/** Whether searchKnowledge is open to the product's publishable key, until the admin changes it. */
const publishableSearchPolicy = cachePolicy<string>({
  name: 'publishableSearch',
  ttlMs: 5 * 60_000,
  scope: (productId) => productId,
  tags: (productId) => [tags.product(productId)],
});

export function publishableSearchAllowed({ prisma, cache }: Store, productId: string): Promise<boolean> {
  return cache.get(
    publishableSearchPolicy,
    productId,
    async () => (await prisma.product.findUnique({ where: { id: productId }, select: { publishableSearch: true } }))?.publishableSearch === true,
  );
}

const updateProductInput = z.object({
  name: text(limits.productName).optional(),
  publishableSearch: z.boolean().optional(),
  allowedOrigins: allowedOriginsInput.optional(),
  secretKeyInBrowser: z.boolean().optional(),
});

/** Admin: a product's name and settings (the browser rules among them, see origins.ts). */
export async function updateProduct({ prisma, cache }: Store, productId: string, input: unknown): Promise<Product> {
  const data = parseInput(updateProductInput, input);
  const product = await prisma.product.update({ where: { id: productId }, data }).catch((error: { code?: string }) => {
    if (error.code === 'P2025') throw new NotFoundError('Product');
    throw error;
  });
  await cache.invalidate([tags.product(productId)]);
  return product;
}

/** Tags of a cached Prisma read, from the relations its selection reaches into. */
export function selectionTags(productId: string, query: object): string[] {
  const text = JSON.stringify(query);
  const out = [tags.product(productId)];
  if (text.includes('"knowledge"')) out.push(tags.knowledge(productId));
  if (/"(conversations|messages|lastMessage|conversation)"/.test(text)) out.push(tags.conversations(productId));
  if (text.includes('"feedback"')) out.push(tags.feedback(productId));
  return out;
}

/**
 * `viewer` with whatever the query selects beneath it (e.g. the first page of
 * knowledge), cached per selection until a write touches what it reads.
 */
const viewerPolicy = cachePolicy<{ productId: string; query: object }>({
  name: 'viewer',
  ttlMs: 60_000,
  scope: (a) => a.productId,
  key: (a) => a.query,
  tags: (a) => selectionTags(a.productId, a.query),
});

export function readViewer({ prisma, cache }: Store, productId: string, query: object) {
  return cache.get(viewerPolicy, { productId, query }, () =>
    prisma.product.findUniqueOrThrow({ ...(query as Prisma.ProductDefaultArgs), relationLoadStrategy: 'join', where: { id: productId } }),
  );
}

/** Dashboard counters of a product; its answer statistics are read apart, only when asked (productAnswerStats). */
export interface ProductStats {
  productId: string;
  conversationCount: number;
  messageCount: number;
  feedbackUp: number;
  feedbackDown: number;
}

/** Statistics of a product (counters, answers: a new reply is a new message) until a conversation, message or rating of it changes. */
const productStatsPolicy = (name: string) =>
  cachePolicy<string>({
    name,
    ttlMs: 60_000,
    scope: (productId) => productId,
    tags: (productId) => [tags.conversations(productId), tags.feedback(productId)],
  });

export const statsPolicy = productStatsPolicy('productStats');
export const answerStatsPolicy = productStatsPolicy('productAnswerStats');

/** Counters of many products in one aggregate statement (batched by a loader). */
export async function productStats(prisma: PrismaClient, productIds: readonly string[]): Promise<ProductStats[]> {
  const rows = await prisma.$queryRawUnsafe<{ id: string; conversations: bigint; messages: bigint; up: bigint; down: bigint }[]>(
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
  const byId = new Map(rows.map((r) => [r.id, r]));
  return productIds.map((productId) => {
    const r = byId.get(productId);
    return {
      productId,
      conversationCount: Number(r?.conversations ?? 0),
      messageCount: Number(r?.messages ?? 0),
      feedbackUp: Number(r?.up ?? 0),
      feedbackDown: Number(r?.down ?? 0),
    };
  });
}

/**
 * Answer statistics of many products in one statement. Apart from the counters
 * because it reads every assistant reply of the product: under a mixed load
 * (pg_stat_statements, bench --size small) the combined statement cost 4.3 ms
 * a call, rerun after every write, for dashboards that did not ask for answers.
 */
export async function productAnswerStats(prisma: PrismaClient, productIds: readonly string[]): Promise<AnswerStats[]> {
  const rows = await prisma.$queryRawUnsafe<{ id: string; answers: unknown; provider: unknown }[]>(
    `SELECT p.id::text AS id, a.answers, s.provider
       FROM unnest($1::uuid[]) AS p(id)
       LEFT JOIN LATERAL (${answerStatsSql.answers}) a ON true
       LEFT JOIN LATERAL (${answerStatsSql.provider}) s ON true`,
    productIds,
  );
  const json = <T>(value: unknown): T[] => (typeof value === 'string' ? JSON.parse(value) : (value ?? [])) as T[];
  const byId = new Map(rows.map((r) => [r.id, answerStats(json<AnswerGroupRow>(r.answers), json<ProviderRow>(r.provider))]));
  return productIds.map((id) => byId.get(id) ?? answerStats([], []));
}
