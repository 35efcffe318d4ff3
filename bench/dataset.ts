import { encodeGlobalID } from '@pothos/plugin-relay';
import type { PrismaClient } from '../src/infra/db.js';
import { issueProductKey, newConversationTokenSecret } from '../src/services/products.js';

/**
 * The bench dataset, written with set-based SQL (INSERT … SELECT over
 * generate_series) so 200k messages take seconds, not the minutes that
 * row-by-row Prisma calls would. It keeps Parley's invariants: messageCount,
 * lastMessageAt and lastMessageId match the newest message; message createdAt
 * strictly increases inside a conversation; feedback only on ASSISTANT
 * messages, one per message. Knowledge gets its tsvector from the generated
 * column. Product keys are issued by Parley's own issueProductKey().
 */

export type SizeName = 'tiny' | 'small' | 'default';

export interface DatasetSize {
  products: number;
  conversations: number;
  /** Average; conversations have 2..18 messages (a fixed cycle averaging 10). */
  messagesPerConversation: 10;
  knowledgePerProduct: number;
  /** Share of assistant replies that carry a rating. */
  feedbackShare: number;
}

export const SIZES: Record<SizeName, DatasetSize> = {
  tiny: { products: 3, conversations: 60, messagesPerConversation: 10, knowledgePerProduct: 20, feedbackShare: 0.3 },
  small: { products: 10, conversations: 2_000, messagesPerConversation: 10, knowledgePerProduct: 40, feedbackShare: 0.3 },
  default: { products: 50, conversations: 20_000, messagesPerConversation: 10, knowledgePerProduct: 60, feedbackShare: 0.3 },
};

export interface BenchProduct {
  id: string;
  key: string;
}

export interface ReadProduct extends BenchProduct {
  /** Every conversation's uuid, in the order of Parley's `conversations` (lastMessageAt desc, id desc). */
  conversations: string[];
}

export interface Dataset {
  /** Read scenarios use these; nothing writes to them, so every server reads the same rows. */
  readProducts: ReadProduct[];
  /** sendMessage and the mixed scenario use these, with their conversations' global ids. */
  writeProducts: (BenchProduct & { conversationIds: string[] })[];
  counts: { products: number; knowledge: number; conversations: number; messages: number; feedback: number };
  generatedInMs: number;
  /** The database's clock when the dataset was complete: every message after it was written by the bench. */
  generatedAt: Date;
}

/** Words of a shop's support chat: knowledge, messages and search questions are made of them. */
export const VOCABULARY = (
  'order shipping delivery refund return exchange payment invoice card password account login email ' +
  'address parcel tracking courier warehouse stock size colour discount coupon voucher price subscription ' +
  'cancel upgrade plan billing receipt warranty repair damaged broken missing late express standard ' +
  'international customs duty tax store pickup gift wrap newsletter privacy data delete profile settings ' +
  'security phone support chat hours weekend holiday manager complaint feedback review rating product ' +
  'quality material cotton leather shoes jacket shirt trousers bag watch battery charger cable screen ' +
  'laptop tablet headphones speaker install update app website checkout basket wishlist reward points ' +
  'loyalty member student business bulk wholesale contract'
).split(' ');

export async function generateDataset(prisma: PrismaClient, size: DatasetSize): Promise<Dataset> {
  const started = performance.now();
  const keys = Array.from({ length: size.products }, () => issueProductKey());
  const perProduct = Math.max(1, Math.round(size.conversations / size.products));

  await prisma.$transaction(
    async (tx) => {
      // Same connection for the whole transaction: random() is reproducible from here on.
      await tx.$executeRawUnsafe(`SELECT setseed(0.42)`);
      await tx.product.createMany({
        data: keys.map((k, i) => ({
          name: `Bench product ${String(i + 1).padStart(2, '0')}`,
          keyPrefix: k.keyPrefix,
          keyHash: k.keyHash,
          conversationTokenSecret: newConversationTokenSecret(),
          metadata: { bench: true },
        })),
      });
      await tx.$executeRawUnsafe(
        `CREATE TEMP TABLE bench_words ON COMMIT DROP AS
           SELECT array_agg(w ORDER BY n) AS w FROM unnest($1::text[]) WITH ORDINALITY AS t(w, n)`,
        VOCABULARY,
      );
      // 500 sentences per role, reused by the messages (cheaper than 200k random texts).
      await tx.$executeRawUnsafe(
        `CREATE TEMP TABLE bench_sentences ON COMMIT DROP AS
           SELECT i,
                  'Hi, ' || (SELECT string_agg(w[1 + floor(random() * cardinality(w))::int], ' ')
                               FROM bench_words, generate_series(1, 6 + i % 10) WHERE i >= 0) || '?' AS question,
                  'Sure: ' || (SELECT string_agg(w[1 + floor(random() * cardinality(w))::int], ' ')
                                 FROM bench_words, generate_series(1, 14 + i % 20) WHERE i >= 0) || '.' AS answer
             FROM generate_series(0, 499) AS i`,
      );
      await tx.$executeRawUnsafe(
        `INSERT INTO "KnowledgeEntry" (id, "productId", title, content, tags, "createdAt", "updatedAt")
         SELECT gen_random_uuid(), p.id,
                initcap((SELECT string_agg(w[1 + floor(random() * cardinality(w))::int], ' ')
                           FROM bench_words, generate_series(1, 2 + g % 3) WHERE g > 0)),
                (SELECT string_agg(w[1 + floor(random() * cardinality(w))::int], ' ')
                   FROM bench_words, generate_series(1, 40 + g % 60) WHERE g > 0) || '.',
                ARRAY[(SELECT w[1 + g % cardinality(w)] FROM bench_words)],
                t, t
           FROM "Product" p, generate_series(1, $1::int) AS g,
                LATERAL (SELECT now() - interval '1 day' - g * interval '17 minutes' AS t) AS at`,
        size.knowledgePerProduct,
      );
      // messageCount cycles 2..18 (mean 10); the conversation starts up to 60 days ago.
      await tx.$executeRawUnsafe(
        `INSERT INTO "Conversation" (id, "productId", "sessionId", title, "messageCount", "lastMessageAt", "createdAt")
         SELECT gen_random_uuid(), p.id, 'session-' || (g % 97), 'Conversation ' || g, 2 + (g * 7) % 17, t, t
           FROM "Product" p, generate_series(1, $1::int) AS g,
                LATERAL (SELECT now() - interval '1 day' - random() * interval '60 days' AS t) AS at`,
        perProduct,
      );
      await tx.$executeRawUnsafe(
        `INSERT INTO "Message" (id, "conversationId", role, content, "createdAt", model, "latencyMs", cached)
         SELECT gen_random_uuid(), c.id,
                CASE WHEN k % 2 = 0 THEN 'USER' ELSE 'ASSISTANT' END::"MessageRole",
                CASE WHEN k % 2 = 0 THEN s.question ELSE s.answer END,
                c."createdAt" + k * interval '41 seconds',
                CASE WHEN k % 2 = 1 THEN 'bench' END,
                CASE WHEN k % 2 = 1 THEN 300 + (k * 37) % 900 END,
                CASE WHEN k % 2 = 1 THEN false END
           FROM "Conversation" c, generate_series(0, c."messageCount" - 1) AS k,
                bench_sentences s
          WHERE s.i = ((k + hashtext(c.id::text)::bigint) % 500 + 500) % 500`,
      );
      await tx.$executeRawUnsafe(
        `UPDATE "Conversation" c SET "lastMessageId" = m.id, "lastMessageAt" = m."createdAt"
           FROM (SELECT DISTINCT ON ("conversationId") "conversationId", id, "createdAt"
                   FROM "Message" ORDER BY "conversationId", "createdAt" DESC) AS m
          WHERE m."conversationId" = c.id`,
      );
      await tx.$executeRawUnsafe(
        `INSERT INTO "Feedback" (id, "messageId", "conversationId", "productId", rating, comment, "createdAt")
         SELECT gen_random_uuid(), m.id, m."conversationId", c."productId",
                CASE WHEN random() < 0.7 THEN 'UP' ELSE 'DOWN' END::"Rating",
                CASE WHEN random() < 0.2 THEN 'Bench comment' END,
                m."createdAt" + interval '5 seconds'
           FROM "Message" m JOIN "Conversation" c ON c.id = m."conversationId"
          WHERE m.role = 'ASSISTANT' AND random() < $1::float8`,
        size.feedbackShare,
      );
    },
    { maxWait: 60_000, timeout: 600_000 },
  );
  // Fresh statistics, as a long-running database would have: plans must not be chosen on empty tables.
  await prisma.$executeRawUnsafe(`ANALYZE`);

  const products = await prisma.product.findMany({ select: { id: true, keyHash: true }, orderBy: { name: 'asc' } });
  const keyByHash = new Map(keys.map((k) => [k.keyHash, k.key]));
  const all = products.map((p) => ({ id: p.id, key: keyByHash.get(p.keyHash)! }));
  // A fifth of the products (at least one) take the writes; the rest are only read.
  const writeCount = Math.max(1, Math.round(all.length / 5));
  const readProducts = await Promise.all(
    all.slice(0, Math.max(1, all.length - writeCount)).map(async (p) => {
      const rows = await prisma.conversation.findMany({
        where: { productId: p.id },
        select: { id: true },
        orderBy: [{ lastMessageAt: 'desc' }, { id: 'desc' }],
      });
      return { ...p, conversations: rows.map((r) => r.id) };
    }),
  );
  const writeProducts = await Promise.all(
    all.slice(all.length - writeCount).map(async (p) => {
      const rows = await prisma.conversation.findMany({ where: { productId: p.id }, select: { id: true } });
      return { ...p, conversationIds: rows.map((r) => encodeGlobalID('Conversation', r.id)) };
    }),
  );
  const [clock] = await prisma.$queryRawUnsafe<{ now: Date }[]>(`SELECT now() AS now`);
  return {
    readProducts,
    writeProducts,
    counts: await countRows(prisma),
    generatedInMs: performance.now() - started,
    generatedAt: clock!.now,
  };
}

/**
 * Puts the dataset back as generated, so every server starts from the same
 * rows: deletes the messages the bench sent (the generated ones are all a
 * day old) and recomputes the counters of the conversations they were in.
 */
export async function undoBenchWrites(prisma: PrismaClient, generatedAt: Date): Promise<number> {
  return prisma.$transaction(
    async (tx) => {
      const touched = await tx.$queryRawUnsafe<{ id: string }[]>(
        `DELETE FROM "Message" WHERE "createdAt" > $1 RETURNING "conversationId"::text AS id`,
        generatedAt,
      );
      if (!touched.length) return 0;
      await tx.$executeRawUnsafe(
        `UPDATE "Conversation" c SET "messageCount" = m.n, "lastMessageId" = m.id, "lastMessageAt" = m."createdAt"
         FROM (SELECT DISTINCT ON ("conversationId") "conversationId", id, "createdAt",
                      count(*) OVER (PARTITION BY "conversationId") AS n
                 FROM "Message" WHERE "conversationId" = ANY($1::uuid[])
                ORDER BY "conversationId", "createdAt" DESC) AS m
        WHERE m."conversationId" = c.id`,
        [...new Set(touched.map((t) => t.id))],
      );
      return touched.length;
    },
    { maxWait: 60_000, timeout: 600_000 },
  );
}

async function countRows(prisma: PrismaClient): Promise<Dataset['counts']> {
  const [products, knowledge, conversations, messages, feedback] = await Promise.all([
    prisma.product.count(),
    prisma.knowledgeEntry.count(),
    prisma.conversation.count(),
    prisma.message.count(),
    prisma.feedback.count(),
  ]);
  return { products, knowledge, conversations, messages, feedback };
}
