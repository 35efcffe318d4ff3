import DataLoader from 'dataloader';
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

/**
 * What a knowledge write invalidates: the product's knowledge (search results, responses) and the
 * search terms of the entries it added, changed or deleted, before and after: an answer depends on its
 * question's terms (see answers/index.ts), so only answers whose question shares a term with what
 * changed are asked again — those that cite a changed entry among them (a cited entry matched one).
 */
async function invalidateKnowledge({ cache }: Store, productId: string, terms: Iterable<string>): Promise<void> {
  await cache.invalidate([cacheTags.knowledge(productId), ...[...new Set(terms)].map((term) => cacheTags.knowledgeTerm(productId, term))]);
}

/** The search terms (lexemes of the generated tsvector) of these entries. */
async function termsOf(prisma: PrismaClient, productId: string, ids: readonly string[]): Promise<string[]> {
  if (!ids.length) return [];
  const rows = await prisma.$queryRawUnsafe<{ term: string }[]>(
    `SELECT DISTINCT unnest(tsvector_to_array("searchVector")) AS term FROM "KnowledgeEntry" WHERE "productId" = $1::uuid AND id = ANY($2::uuid[])`,
    productId,
    ids,
  );
  return rows.map((row) => row.term);
}

export async function addKnowledge(store: Store, productId: string, input: unknown, query: Query = {}) {
  const data = parseInput(entryInput, input);
  // Its id, whatever the selection asked for: its terms are read by it.
  const select = query.select ? { select: { ...query.select, id: true } } : {};
  const entry = await store.prisma.knowledgeEntry.create({ ...query, ...select, data: { ...data, productId } });
  await invalidateKnowledge(store, productId, await termsOf(store.prisma, productId, [entry.id]));
  return entry;
}

/** All or nothing: the whole batch is validated first, then written in one statement. */
export async function addKnowledgeBatch(store: Store, productId: string, input: unknown): Promise<KnowledgeEntry[]> {
  const { entries } = parseInput(batchInput, input);
  const created = await store.prisma.knowledgeEntry.createManyAndReturn({ data: entries.map((e) => ({ ...e, productId })) });
  await invalidateKnowledge(
    store,
    productId,
    await termsOf(
      store.prisma,
      productId,
      created.map((entry) => entry.id),
    ),
  );
  return created;
}

export async function updateKnowledge(store: Store, productId: string, id: string, input: unknown) {
  const patch = parseInput(updateInput, input);
  const data = Object.fromEntries(Object.entries(patch).filter(([, v]) => v != null));
  if (Object.keys(data).length === 0) throw new BadUserInputError('input must change at least one of title, content, tags', 'input');
  // The terms it had (answers that could cite it) and the terms it has now (answers it may now answer).
  const before = await termsOf(store.prisma, productId, [id]);
  const [entry] = await store.prisma.knowledgeEntry.updateManyAndReturn({
    where: { id, productId },
    data: { ...data, updatedAt: new Date() },
  });
  if (!entry) throw new NotFoundError('KnowledgeEntry');
  await invalidateKnowledge(store, productId, [...before, ...(await termsOf(store.prisma, productId, [id]))]);
  return entry;
}

export async function deleteKnowledge(store: Store, productId: string, id: string): Promise<void> {
  const terms = await termsOf(store.prisma, productId, [id]);
  const { count } = await store.prisma.knowledgeEntry.deleteMany({ where: { id, productId } });
  if (count === 0) throw new NotFoundError('KnowledgeEntry');
  await invalidateKnowledge(store, productId, terms);
}

export interface KnowledgeHit {
  entry: KnowledgeEntry;
  score: number;
}

/** A hit with how much of the question it covers: `matched` of the question's `asked` search terms. */
export interface RankedHit extends KnowledgeHit {
  matched: number;
  asked: number;
}

/** A question's hits, best first, and its search terms: the lexemes `to_tsvector('english', …)` makes of it. */
export interface Ranking extends Array<RankedHit> {
  lexemes: string[];
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

export async function searchKnowledge({ cache }: Store, search: KnowledgeSearch, productId: string, args: unknown): Promise<KnowledgeHit[]> {
  const { query, first } = parseInput(searchInput, args, 'searchKnowledge');
  return cache.get(searchPolicy, { productId, query, first }, async () =>
    (await search.rank(productId, query, first)).map(({ entry, score }) => ({ entry, score })),
  );
}

/**
 * Ranks the product's knowledge for concurrent questions together: the searches
 * of one product that are batched together are one SQL statement (see
 * rankKnowledgeBatch), whoever asks — searchKnowledge or an answer. A batch is
 * what arrives within `windowMs`, or with no window (0) what arrives while
 * the previous batch runs: a question asked when nothing is being ranked goes
 * at once, and under load the batches grow with it, as group commit does.
 */
export interface KnowledgeSearch {
  rank(productId: string, query: string, first: number): Promise<Ranking>;
  /** Ranking statements run so far. */
  readonly statements: number;
}

export function createKnowledgeSearch(prisma: PrismaClient, windowMs: number): KnowledgeSearch {
  let statements = 0;
  // With no window: one batch runs at a time; the next waits for it (DataLoader keeps adding to it meanwhile).
  let running = 0;
  const waiting: (() => void)[] = [];
  const scheduleBatch =
    windowMs > 0
      ? (run: () => void) => void setTimeout(run, windowMs).unref()
      : (run: () => void) => {
          if (running === 0) setImmediate(run);
          else waiting.push(run);
        };
  const batchDone = () => {
    running -= 1;
    const next = waiting.shift();
    if (next) setImmediate(next);
  };
  // One loader for the process, so a batch holds the searches of every request that starts within
  // the window (batchScheduleFn), not only one request's. Nothing is cached here (cache: false):
  // searchKnowledge and answers cache what they make of a ranking under their own policies.
  const loader = new DataLoader<RankRequest & { productId: string }, Ranking, RankRequest & { productId: string }>(
    async (requests) => {
      running += 1;
      try {
        return await rankBatch(requests);
      } finally {
        batchDone();
      }
    },
    { cache: false, maxBatchSize: 50, batchScheduleFn: scheduleBatch },
  );
  async function rankBatch(requests: readonly (RankRequest & { productId: string })[]): Promise<(Ranking | Error)[]> {
    // One statement per product (a batch never mixes products), one ranking per distinct question.
    const byProduct = new Map<string, Map<string, RankRequest>>();
    for (const { productId, query, first } of requests) {
      const questions = byProduct.get(productId) ?? byProduct.set(productId, new Map()).get(productId)!;
      questions.set(JSON.stringify([query, first]), { query, first });
    }
    const ranked = new Map<string, Map<string, Ranking | Error>>();
    await Promise.all(
      [...byProduct].map(async ([productId, questions]) => {
        const keys = [...questions.keys()];
        statements += 1;
        const answers: (Ranking | Error)[] = await rankKnowledgeBatch(prisma, productId, [...questions.values()]).catch((error: Error) =>
          keys.map(() => error),
        );
        ranked.set(productId, new Map(keys.map((key, i) => [key, answers[i]!])));
      }),
    );
    return requests.map(({ productId, query, first }) => ranked.get(productId)!.get(JSON.stringify([query, first]))!);
  }
  return {
    rank: (productId, query, first) => loader.load({ productId, query, first }),
    get statements() {
      return statements;
    },
  };
}

export interface RankRequest {
  query: string;
  first: number;
}

/** One question's full-text ranking (see rankKnowledgeBatch). */
export async function rankKnowledge(prisma: PrismaClient, productId: string, query: string, first: number): Promise<Ranking> {
  return (await rankKnowledgeBatch(prisma, productId, [{ query, first }]))[0]!;
}

/**
 * Full-text search over the generated tsvector (GIN index) for several
 * questions of one product in one statement: the questions are unnested and
 * each is ranked in a LATERAL subquery with its own limit. Any word may match
 * (OR of the question's lexemes), ranked by ts_rank, so a chat question such as
 * "how do I get a refund?" finds the refund entry without needing every word;
 * `matched`/`asked` tell how many of the question's lexemes an entry holds.
 * Each question's lexemes come back too, hits or not (the answer cache keys
 * questions by them: see answers/question.ts).
 */
export async function rankKnowledgeBatch(prisma: PrismaClient, productId: string, requests: RankRequest[]): Promise<Ranking[]> {
  const rows = await prisma.$queryRawUnsafe<
    (Omit<KnowledgeEntry, 'id'> & { id: string | null; ord: number; score: number; matched: number; asked: number; lexemes: string[] | null })[]
  >(
    `WITH q AS (
       SELECT i.ord, i.lim, l.query, l.lexemes
         FROM unnest($2::text[], $3::int[]) WITH ORDINALITY AS i(text, lim, ord)
         CROSS JOIN LATERAL (
           SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS query, array_agg(lexeme) AS lexemes
             FROM unnest(tsvector_to_array(to_tsvector('english', i.text))) AS lexeme) l
     )
     SELECT q.ord::int AS ord, q.lexemes, h.id::text AS id, h."productId"::text AS "productId", h.title, h.content, h.tags,
            h."createdAt", h."updatedAt", h.score,
            (SELECT count(*) FROM unnest(q.lexemes) AS w(lexeme)
              WHERE h."searchVector" @@ to_tsquery('simple', quote_literal(w.lexeme)))::int AS matched,
            cardinality(q.lexemes)::int AS asked
       FROM q
       LEFT JOIN LATERAL (
         SELECT k.*, ts_rank(k."searchVector", q.query)::float8 AS score
           FROM "KnowledgeEntry" k
          WHERE k."productId" = $1::uuid AND q.query IS NOT NULL AND k."searchVector" @@ q.query
          ORDER BY score DESC, k."updatedAt" DESC
          LIMIT q.lim) h ON true
      ORDER BY q.ord, h.score DESC NULLS LAST, h."updatedAt" DESC`,
    productId,
    requests.map((r) => r.query),
    requests.map((r) => r.first),
  );
  const out = requests.map((): Ranking => Object.assign([], { lexemes: [] }));
  for (const { ord, score, matched, asked, lexemes, id, ...entry } of rows) {
    const ranking = out[Number(ord) - 1]!;
    ranking.lexemes = lexemes ?? [];
    // A question without hits: one row of its lexemes.
    if (id !== null) ranking.push({ entry: { id, ...entry }, score, matched: Number(matched), asked: Number(asked) });
  }
  return out;
}
