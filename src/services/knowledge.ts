import { z } from 'zod';
import { BadUserInputError, NotFoundError } from '../errors.js';
import { cachePolicy } from '../infra/cache/index.js';
import type { PrismaClient } from '../infra/db.js';
import { tags as cacheTags, type Store } from './store.js';
import type { KnowledgeEntry, Prisma } from '../generated/prisma/client.js';
import { limits, MAX_BATCH, MAX_PAGE_SIZE, parseInput, plainText, text } from './validation.js';

const tags = z
  .array(text(limits.tag))
  .max(limits.tags, `must have at most ${limits.tags} tags`)
  .transform((list) => [...new Set(list)]);

const entryInput = z.object({
  title: text(limits.knowledgeTitle),
  content: text(limits.knowledgeContent),
  tags: tags.nullish().transform((t) => t ?? []),
});

const updateInput = z.object({
  title: text(limits.knowledgeTitle).nullish(),
  content: text(limits.knowledgeContent).nullish(),
  tags: tags.nullish(),
});

const batchInput = z.object({
  entries: z.array(entryInput).min(1, 'must not be empty').max(MAX_BATCH, `must have at most ${MAX_BATCH} entries`),
});

type Query = { select?: Prisma.KnowledgeEntrySelect; include?: Prisma.KnowledgeEntryInclude };

export async function addKnowledge({ prisma, cache }: Store, productId: string, input: unknown, query: Query = {}) {
  const data = parseInput(entryInput, input);
  const entry = await prisma.knowledgeEntry.create({ ...query, data: { ...data, productId } });
  await cache.invalidate([cacheTags.knowledge(productId)]);
  return entry;
}

/** All or nothing: the whole batch is validated first, then written in one statement. */
export async function addKnowledgeBatch({ prisma, cache }: Store, productId: string, input: unknown): Promise<KnowledgeEntry[]> {
  const { entries } = parseInput(batchInput, input);
  const created = await prisma.knowledgeEntry.createManyAndReturn({ data: entries.map((e) => ({ ...e, productId })) });
  await cache.invalidate([cacheTags.knowledge(productId)]);
  return created;
}

export async function updateKnowledge({ prisma, cache }: Store, productId: string, id: string, input: unknown) {
  const patch = parseInput(updateInput, input);
  const data = Object.fromEntries(Object.entries(patch).filter(([, v]) => v != null));
  if (Object.keys(data).length === 0) throw new BadUserInputError('input must change at least one of title, content, tags', 'input');
  const [entry] = await prisma.knowledgeEntry.updateManyAndReturn({
    where: { id, productId },
    data: { ...data, updatedAt: new Date() },
  });
  if (!entry) throw new NotFoundError('KnowledgeEntry');
  await cache.invalidate([cacheTags.knowledge(productId)]);
  return entry;
}

export async function deleteKnowledge({ prisma, cache }: Store, productId: string, id: string): Promise<void> {
  const { count } = await prisma.knowledgeEntry.deleteMany({ where: { id, productId } });
  if (count === 0) throw new NotFoundError('KnowledgeEntry');
  await cache.invalidate([cacheTags.knowledge(productId)]);
}

export interface KnowledgeHit {
  entry: KnowledgeEntry;
  score: number;
}

const searchInput = z.object({
  query: plainText(limits.searchQuery),
  first: z.number().int().min(1, 'must be at least 1').max(MAX_PAGE_SIZE, `must be at most ${MAX_PAGE_SIZE}`),
});

/** Search results until the product's knowledge changes; text search ignores case and spacing. */
const searchPolicy = cachePolicy<{ productId: string; query: string; first: number }>({
  name: 'searchKnowledge',
  ttlMs: 5 * 60_000,
  scope: (a) => a.productId,
  key: (a) => [a.query.trim().toLowerCase().replace(/\s+/g, ' '), a.first],
  tags: (a) => [cacheTags.knowledge(a.productId)],
});

export async function searchKnowledge({ prisma, cache }: Store, productId: string, args: unknown): Promise<KnowledgeHit[]> {
  const { query, first } = parseInput(searchInput, args, 'searchKnowledge');
  return cache.get(searchPolicy, { productId, query, first }, () => rankKnowledge(prisma, productId, query, first));
}

/**
 * Full-text search over the generated tsvector (GIN index). Any word may match
 * (OR of the question's lexemes), ranked by ts_rank, so a chat question such as
 * "how do I get a refund?" finds the refund entry without needing every word.
 */
export async function rankKnowledge(prisma: PrismaClient, productId: string, query: string, first: number): Promise<KnowledgeHit[]> {
  const rows = await prisma.$queryRawUnsafe<(KnowledgeEntry & { score: number })[]>(
    `WITH q AS (
       SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS query
         FROM unnest(tsvector_to_array(to_tsvector('english', $2))) AS lexeme
     )
     SELECT k.id::text AS id, k."productId"::text AS "productId", k.title, k.content, k.tags,
            k."createdAt", k."updatedAt", ts_rank(k."searchVector", q.query)::float8 AS score
       FROM "KnowledgeEntry" k, q
      WHERE k."productId" = $1::uuid AND q.query IS NOT NULL AND k."searchVector" @@ q.query
      ORDER BY score DESC, k."updatedAt" DESC
      LIMIT $3`,
    productId,
    query,
    first,
  );
  return rows.map(({ score, ...entry }) => ({ entry, score }));
}
