import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/infra/db.js';
import { type Evaluation, evaluate, loadEvaluationSet } from './answer-eval/run.js';

/**
 * How well the answer cache tells "the same question" from a near-miss, per matching mode:
 *
 *   npx tsx bench/answer-eval.ts [--mode lexical|exact|all]
 *
 * Every pair of bench/answer-eval/pairs.json is asked end to end through the GraphQL API (see
 * answer-eval/run.ts) of an app on embedded PGlite in memory, local engine, no Redis. Prints the
 * hit rate on paraphrases, the false-match rate on near-misses, both by kind, then every false
 * match and missed paraphrase; writes the figures to bench/results/answer-eval.json.
 */

const MODES = ['lexical', 'exact'] as const;
type Mode = (typeof MODES)[number];

const at = process.argv.indexOf('--mode');
const wanted = at > 0 ? process.argv[at + 1] : 'all';
if (wanted !== 'all' && !MODES.includes(wanted as Mode)) {
  console.error(`--mode must be lexical, exact or all, not ${wanted}`);
  process.exit(2);
}
const modes: readonly Mode[] = wanted === 'all' ? MODES : [wanted as Mode];
const set = loadEvaluationSet();

async function evaluateMode(mode: Mode): Promise<Evaluation> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-answer-eval-'));
  // Only what the evaluation means: not DATABASE_URL or REDIS_URL from the environment.
  const config = loadConfig({
    NODE_ENV: 'test',
    PARLEY_DATA_DIR: dataDir,
    PARLEY_DEMO: 'true',
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_ANSWER_ENGINE: 'local',
    PARLEY_ANSWER_MATCHING: mode,
  });
  const db = await openDatabase({ dataDir: 'memory://' });
  const app = await buildApp(config, { db });
  try {
    return await evaluate(app, set.pairs, set.shop);
  } finally {
    await app.stop();
    await db.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const percent = (r: { matched: number; n: number; rate: number }) => `${r.matched}/${r.n} (${(100 * r.rate).toFixed(1)} %)`;
const results: Partial<Record<Mode, Evaluation>> = {};
for (const mode of modes) {
  const e = (results[mode] = await evaluateMode(mode));
  console.log(
    [
      `## ${mode}: ${e.pairs} pairs in ${(e.ms / 1000).toFixed(1)} s`,
      '',
      `paraphrase hit rate: ${percent(e.paraphraseHits)}`,
      `false-match rate:    ${percent(e.falseMatches)}`,
      '',
      '| kind | expect | matched |',
      '|---|---|---:|',
      ...e.byKind.map((k) => `| ${k.kind} | ${k.expect} | ${percent(k)} |`),
      '',
      `False matches (${e.falseMatchPairs.length}):`,
      ...e.falseMatchPairs.map((p) => `  [${p.kb}, ${p.kind}] ${JSON.stringify(p.a)} ~ ${JSON.stringify(p.b)}`),
      '',
      `Missed paraphrases (${e.missedParaphrases.length}):`,
      ...e.missedParaphrases.map((p) => `  [${p.kb}, ${p.kind}] ${JSON.stringify(p.a)} ~ ${JSON.stringify(p.b)}`),
      '',
    ].join('\n'),
  );
}

const out = new URL('./results/answer-eval.json', import.meta.url);
mkdirSync(new URL('.', out), { recursive: true });
writeFileSync(out, `${JSON.stringify({ date: new Date().toISOString(), node: process.version, modes: results }, null, 2)}\n`);
console.log(`written to bench/results/answer-eval.json`);
