import type { PrismaClient } from '../../infra/db.js';
import type { ProviderTrouble } from './engine.js';

/**
 * Per-product answer statistics, in the database so they span nodes and
 * restarts. Answers count themselves: every reply row carries engine, model,
 * cached and latencyMs. Provider trouble (failed calls, retries, fallbacks to
 * the local engine) has no row of its own, so it is added up in ProviderStat,
 * written only when something went wrong.
 */
export async function recordProviderTrouble(prisma: PrismaClient, productId: string, trouble: ProviderTrouble): Promise<void> {
  await prisma.$executeRawUnsafe(
    `INSERT INTO "ProviderStat" ("productId", engine, model, errors, retries, fallbacks, "updatedAt")
     VALUES ($1::uuid, $2, $3, $4, $5, $6, now())
     ON CONFLICT ("productId", engine, model) DO UPDATE
        SET errors = "ProviderStat".errors + EXCLUDED.errors,
            retries = "ProviderStat".retries + EXCLUDED.retries,
            fallbacks = "ProviderStat".fallbacks + EXCLUDED.fallbacks,
            "updatedAt" = now()`,
    productId,
    trouble.engine,
    trouble.model,
    trouble.errors,
    trouble.retries,
    trouble.fallback ? 1 : 0,
  );
}

/** One engine/model's answers and provider trouble. */
export interface AnswerModelStats {
  engine: string;
  model: string;
  count: number;
  cached: number;
  /** Mean time to produce a generated (not cached) answer; null when there is none. */
  meanLatencyMs: number | null;
  /** Mean time to answer from the cache; null when there is none. */
  meanCachedLatencyMs: number | null;
  providerErrors: number;
  providerRetries: number;
  fallbacks: number;
}

export interface AnswerStats {
  count: number;
  cached: number;
  cacheHitRate: number;
  meanLatencyMs: number | null;
  meanCachedLatencyMs: number | null;
  providerErrors: number;
  providerRetries: number;
  fallbacks: number;
  byModel: AnswerModelStats[];
}

/** Rows of the stats statement: answers grouped by engine, model and cached, and ProviderStat rows. */
export interface AnswerGroupRow {
  engine: string;
  model: string;
  cached: boolean;
  count: number;
  latencyMs: number;
}
export interface ProviderRow {
  engine: string;
  model: string;
  errors: number;
  retries: number;
  fallbacks: number;
}

/**
 * The SQL (LATERAL subqueries for `p.id`, a product id) that the product stats
 * statement joins, so answers cost no statement of their own.
 */
export const answerStatsSql = {
  answers: `SELECT coalesce(json_agg(g ORDER BY g.engine, g.model, g.cached), '[]'::json) AS answers FROM (
              SELECT m.engine, coalesce(m.model, '') AS model, coalesce(m.cached, false) AS cached,
                     count(*)::int AS count, coalesce(sum(m."latencyMs"), 0)::float8 AS "latencyMs"
                FROM "Conversation" c JOIN "Message" m ON m."conversationId" = c.id
               WHERE c."productId" = p.id AND m.role = 'ASSISTANT' AND m.engine IS NOT NULL
               GROUP BY 1, 2, 3) g`,
  provider: `SELECT coalesce(json_agg(s ORDER BY s.engine, s.model), '[]'::json) AS provider FROM (
               SELECT engine, model, errors, retries, fallbacks FROM "ProviderStat" WHERE "productId" = p.id) s`,
};

export function answerStats(groups: AnswerGroupRow[], provider: ProviderRow[]): AnswerStats {
  const byKey = new Map<string, AnswerModelStats & { latencyTotal: number; cachedLatencyTotal: number }>();
  const entry = (engine: string, model: string) => {
    const key = `${engine}\u0000${model}`;
    let e = byKey.get(key);
    if (!e) {
      e = {
        engine,
        model,
        count: 0,
        cached: 0,
        meanLatencyMs: null,
        meanCachedLatencyMs: null,
        providerErrors: 0,
        providerRetries: 0,
        fallbacks: 0,
        latencyTotal: 0,
        cachedLatencyTotal: 0,
      };
      byKey.set(key, e);
    }
    return e;
  };
  for (const g of groups) {
    const e = entry(g.engine, g.model);
    e.count += g.count;
    if (g.cached) {
      e.cached += g.count;
      e.cachedLatencyTotal += g.latencyMs;
    } else e.latencyTotal += g.latencyMs;
  }
  for (const p of provider) {
    const e = entry(p.engine, p.model);
    e.providerErrors += p.errors;
    e.providerRetries += p.retries;
    e.fallbacks += p.fallbacks;
  }
  const mean = (total: number, n: number) => (n ? total / n : null);
  const byModel = [...byKey.values()].map(({ latencyTotal, cachedLatencyTotal, ...e }) => ({
    ...e,
    meanLatencyMs: mean(latencyTotal, e.count - e.cached),
    meanCachedLatencyMs: mean(cachedLatencyTotal, e.cached),
  }));
  const sum = (f: (e: (typeof byModel)[number]) => number) => byModel.reduce((n, e) => n + f(e), 0);
  const count = sum((e) => e.count);
  const cached = sum((e) => e.cached);
  const generatedLatency = groups.filter((g) => !g.cached).reduce((n, g) => n + g.latencyMs, 0);
  const cachedLatency = groups.filter((g) => g.cached).reduce((n, g) => n + g.latencyMs, 0);
  return {
    count,
    cached,
    cacheHitRate: count ? cached / count : 0,
    meanLatencyMs: mean(generatedLatency, count - cached),
    meanCachedLatencyMs: mean(cachedLatency, cached),
    providerErrors: sum((e) => e.providerErrors),
    providerRetries: sum((e) => e.providerRetries),
    fallbacks: sum((e) => e.fallbacks),
    byModel,
  };
}
