import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { createProduct } from '../src/services/products.js';
import { addKnowledgeBatch } from '../src/services/knowledge.js';
import { openDatabase } from '../src/infra/db.js';
import { VOCABULARY } from './dataset.js';
import { searchQuestions } from './scenarios.js';
import { inProcessGql } from './in-process.js';

/**
 * Answer latency of the local engine, cache miss against cache hit:
 *
 *   npx tsx bench/answers.ts [--questions 100]
 *
 * One product with 60 knowledge entries made of the bench vocabulary; each
 * question is asked once (a miss: ranked and composed) and then again in
 * another conversation, in other words (case, punctuation, "please", "can
 * you": a hit). Requests go through the whole GraphQL stack in process
 * (yoga.fetch), one at a time. Reports the reply's own `latencyMs` (time to
 * produce the answer) and the whole sendMessage mutation (which also stores
 * the question and the reply). Uses DATABASE_URL / REDIS_URL when set, else
 * embedded PGlite in memory; PARLEY_SEARCH_BATCH_MS as configured (default 0: no window).
 */

const argument = (name: string, fallback: number) => {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const questionsWanted = argument('questions', 100);

const dataDir = mkdtempSync(join(tmpdir(), 'parley-answers-bench-'));
const config = loadConfig({
  ...process.env,
  NODE_ENV: 'test',
  PARLEY_DATA_DIR: dataDir,
  PARLEY_DEMO: 'false',
  PARLEY_LOG_LEVEL: 'silent',
  PARLEY_ANSWER_ENGINE: 'local',
});
// PGlite in memory unless DATABASE_URL is set.
const memory = config.database.url ? undefined : await openDatabase({ dataDir: 'memory://' });
const app = await buildApp(config, memory ? { db: memory } : {});
try {
  const { product, key } = await createProduct(app.deps.db.prisma, { name: `Answer bench ${Date.now()}` });
  const words = VOCABULARY as readonly string[];
  const entries = Array.from({ length: 60 }, (_, i) => ({
    title: `${words[i % words.length]} and ${words[(i * 7 + 3) % words.length]}`,
    content: Array.from(
      { length: 6 },
      (_, s) =>
        `The ${words[(i + s) % words.length]} ${words[(i * 3 + s) % words.length]} policy covers ${words[(i * 5 + s) % words.length]} within ${s + 2} days.`,
    ).join(' '),
  }));
  await addKnowledgeBatch({ prisma: app.deps.db.prisma, cache: app.deps.cache, events: app.deps.events }, product.id, { entries });

  const send = inProcessGql(app, 'parley.bench');
  const gql = (query: string, variables: Record<string, unknown>) => send(key, query, variables);
  const SEND = `mutation($c: ID!, $q: String!) { sendMessage(input: { conversationId: $c, content: $q }) { reply { latencyMs cached } } }`;
  const START = `mutation { startConversation(input: { sessionId: "bench" }) { id } }`;

  const questions = [...new Set(searchQuestions(questionsWanted * 2))].slice(0, questionsWanted);
  const ask = async (question: string) => {
    const c = (await gql(START, {})).startConversation.id;
    const started = performance.now();
    const { reply } = (await gql(SEND, { c, q: question })).sendMessage;
    return { total: performance.now() - started, latencyMs: reply.latencyMs as number, cached: reply.cached as boolean };
  };

  // Warm-up: JIT, connections, statement caches (its questions are not measured again).
  for (const q of ['warm-up one?', 'warm-up two?', 'warm-up one?']) await ask(q);

  const misses = [];
  for (const q of questions) misses.push(await ask(q));
  const hits = [];
  for (const q of questions) hits.push(await ask(`Hi, can you please tell me: ${q.toUpperCase().replace(/\?$/, '')} ??`));

  const summary = (runs: { total: number; latencyMs: number; cached: boolean }[]) => {
    const pct = (values: number[], p: number) => {
      const sorted = [...values].sort((a, b) => a - b);
      return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
    };
    const stat = (values: number[]) => ({
      mean: values.reduce((a, b) => a + b, 0) / values.length,
      p50: pct(values, 50),
      p95: pct(values, 95),
    });
    return {
      n: runs.length,
      cached: runs.filter((r) => r.cached).length,
      latencyMs: stat(runs.map((r) => r.latencyMs)),
      total: stat(runs.map((r) => r.total)),
    };
  };
  const miss = summary(misses);
  const hit = summary(hits);
  const f = (v: number) => v.toFixed(v < 10 ? 2 : 1);
  const row = (name: string, s: ReturnType<typeof summary>) =>
    `| ${name} | ${s.n} (${s.cached} cached) | ${f(s.latencyMs.mean)} / ${f(s.latencyMs.p50)} / ${f(s.latencyMs.p95)} | ${f(s.total.mean)} / ${f(s.total.p50)} / ${f(s.total.p95)} |`;
  console.log(
    [
      `Answer latency, local engine — ${app.deps.db.description}${config.redis.url ? ', Redis' : ''}, search window ${config.answers.searchBatchMs} ms, ${entries.length} knowledge entries, Node ${process.version}`,
      '',
      '| | replies | reply `latencyMs` mean / p50 / p95 | whole `sendMessage` ms mean / p50 / p95 |',
      '|---|---:|---:|---:|',
      row('cache miss (ranked + composed)', miss),
      row('cache hit (same question, other words)', hit),
    ].join('\n'),
  );
  if (miss.cached !== 0 || hit.cached !== hit.n) process.exitCode = 1;
} finally {
  await app.stop();
  await memory?.close();
  rmSync(dataDir, { recursive: true, force: true });
}
