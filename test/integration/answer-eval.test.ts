import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Evaluation, evaluate, loadEvaluationSet } from '../../bench/answer-eval/run.js';
import { normalizeQuestion } from '../../src/services/answers/question.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';

/**
 * The answer cache's evaluation set (bench/answer-eval), asked through the API in lexical mode:
 * no near-miss is served another question's answer, and lexical matching catches more
 * paraphrases than exact matching would. `npm run bench:answer-eval` prints the figures of both
 * modes; exact mode's are taken here from its key (a question's normalised words), without
 * asking every pair a second time.
 */

const pglite = databaseVariants().find((variant) => variant.name === 'pglite')!;
const set = loadEvaluationSet();
/** Exact matching's verdict on a pair of one product: a question's key is its normalised words. */
const sameWords = (pair: { a: string; b: string }) => normalizeQuestion(pair.a) === normalizeQuestion(pair.b);

describe('answer cache evaluation, lexical matching [pglite]', () => {
  let t: TestApp;
  let lexical: Evaluation;

  beforeAll(async () => {
    t = await createTestApp(pglite, { PARLEY_ANSWER_ENGINE: 'local', PARLEY_ANSWER_MATCHING: 'lexical', PARLEY_DEMO: 'true' });
    lexical = await evaluate(t.app, set.pairs, set.shop);
  }, 120_000);
  afterAll(() => t?.dispose());

  it('holds at least 200 pairs, paraphrases and near-misses', () => {
    expect(set.pairs.length).toBeGreaterThanOrEqual(200);
    expect(lexical.pairs).toBe(set.pairs.length);
    expect(lexical.paraphraseHits.n).toBeGreaterThanOrEqual(100);
    expect(lexical.falseMatches.n).toBeGreaterThanOrEqual(100);
  });

  it('serves no near-miss the answer of the question it resembles', () => {
    expect(lexical.falseMatchPairs.map((p) => `[${p.kind}] ${p.a} ~ ${p.b}`)).toEqual([]);
  });

  it('catches every paraphrase exact matching catches, and more', () => {
    const paraphrases = set.pairs.filter((p) => p.expect === 'match');
    const exactHits = paraphrases.filter(sameWords);
    const missed = new Set(lexical.missedParaphrases.map((p) => `${p.a}|${p.b}`));
    expect(exactHits.filter((p) => missed.has(`${p.a}|${p.b}`))).toEqual([]);
    expect(lexical.paraphraseHits.matched).toBeGreaterThan(exactHits.length);
  });
});
