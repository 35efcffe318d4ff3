import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { App } from '../../src/app.js';
import { addKnowledgeBatch } from '../../src/services/knowledge.js';
import { createProduct } from '../../src/services/products.js';
import { inProcessGql } from '../in-process.js';

/**
 * The answer cache's evaluation: pairs of questions asked of one product, the
 * second in another conversation after the first, and whether the second was
 * served the first one's answer (`reply { cached }`). Paraphrases should be;
 * near-misses (another item, time, direction, a negation…) must not be: a
 * false match serves a wrong answer, worse than a miss.
 */

const KINDS_OF_PARAPHRASE = [
  'word-order',
  'filler',
  'case-punctuation',
  'tense',
  'plural',
  'rewording',
  'contraction',
  'terse',
  'synonym',
  'word-form',
] as const;
const KINDS_OF_NEAR_MISS = [
  'negation',
  'question-word',
  'another-item',
  'another-action',
  'another-time',
  'another-amount',
  'another-place',
  'direction',
  'comparison',
  'conjunction',
  'word-role',
  'other-product',
] as const;

const knowledgeEntry = z.object({ title: z.string(), content: z.string(), tags: z.array(z.string()).optional() });
const questionPair = z
  .object({
    kb: z.enum(['demo', 'shop']),
    a: z.string().min(1),
    b: z.string().min(1),
    expect: z.enum(['match', 'differ']),
    kind: z.enum([...KINDS_OF_PARAPHRASE, ...KINDS_OF_NEAR_MISS]),
    note: z.string().optional(),
  })
  .refine((p) => (p.expect === 'match') === (KINDS_OF_PARAPHRASE as readonly string[]).includes(p.kind), {
    message: 'paraphrase kinds expect a match, near-miss kinds expect none',
  })
  // Another product asked the very same words: only the product differs.
  .refine((p) => p.kind !== 'other-product' || p.a === p.b, { message: 'an other-product pair asks the same question twice' });

export type QuestionPair = z.infer<typeof questionPair>;
export type KnowledgeEntryInput = z.infer<typeof knowledgeEntry>;

export interface EvaluationSet {
  pairs: QuestionPair[];
  /** The `shop` knowledge base; `demo` is the product the app seeds (src/services/seed.ts). */
  shop: KnowledgeEntryInput[];
}

/** bench/answer-eval/pairs.json and knowledge.json, checked. */
export function loadEvaluationSet(): EvaluationSet {
  const read = (file: string): unknown => JSON.parse(readFileSync(new URL(file, import.meta.url), 'utf8'));
  return { pairs: z.array(questionPair).parse(read('./pairs.json')), shop: z.array(knowledgeEntry).parse(read('./knowledge.json')) };
}

export interface Rate {
  n: number;
  matched: number;
  /** matched / n */
  rate: number;
}

export interface Evaluation {
  pairs: number;
  /** Paraphrases served the first question's answer: the higher the better. */
  paraphraseHits: Rate;
  /** Near-misses served the first question's answer: must be 0. */
  falseMatches: Rate;
  byKind: (Rate & { kind: string; expect: 'match' | 'differ' })[];
  falseMatchPairs: QuestionPair[];
  missedParaphrases: QuestionPair[];
  ms: number;
}

/** PARLEY_MAX_ALIASES' default: conversations started per request. */
const MAX_ALIASES = 15;
const SEND = `mutation($c: ID!, $q: String!) { sendMessage(input: { conversationId: $c, content: $q }) { reply { cached } } }`;

const rate = (results: { matched: boolean }[]): Rate => {
  const matched = results.filter((r) => r.matched).length;
  return { n: results.length, matched, rate: results.length ? matched / results.length : 0 };
};

/**
 * Asks every pair through `app`'s GraphQL API: `a`, then `b` in a new conversation of the same
 * product (another product with the same knowledge for `other-product` pairs), every in-process
 * cache emptied before each pair so that no pair sees another's answers. The app must run the
 * local engine without Redis (answers then live in its process only) and have seeded the demo
 * product (PARLEY_DEMO=true on an empty database): it is the `demo` knowledge base.
 */
export async function evaluate(app: App, pairs: readonly QuestionPair[], shop: readonly KnowledgeEntryInput[]): Promise<Evaluation> {
  const started = performance.now();
  const { prisma } = app.deps.db;
  const store = { prisma, cache: app.deps.cache, events: app.deps.events };
  const demo = app.demo;
  if (!demo?.key) throw new Error('evaluate: the app has no demo product whose key it knows (PARLEY_DEMO=true on an empty database)');
  const demoKnowledge = await prisma.knowledgeEntry.findMany({
    where: { productId: demo.productId },
    select: { title: true, content: true, tags: true },
  });
  const productWith = async (name: string, entries: readonly KnowledgeEntryInput[]) => {
    const { product, key } = await createProduct(prisma, { name });
    await addKnowledgeBatch(store, product.id, { entries });
    return key;
  };
  const keys = {
    demo: [demo.key, await productWith('Demo shop, again', demoKnowledge)],
    shop: [await productWith('Shop', shop), await productWith('Shop, again', shop)],
  } as const;

  const gql = inProcessGql(app, 'parley.eval');
  // Each question is asked in a conversation of its own, started beforehand: a conversation holds
  // no answer, and starting them MAX_ALIASES at a time halves the requests of a run.
  const conversationsOf = async (key: string, count: number) => {
    const ids: string[] = [];
    for (let i = 0; i < count; i += MAX_ALIASES) {
      const aliases = Array.from(
        { length: Math.min(MAX_ALIASES, count - i) },
        (_, j) => `c${j}: startConversation(input: { sessionId: "answer-eval" }) { id }`,
      );
      ids.push(...Object.values<{ id: string }>(await gql(key, `mutation { ${aliases.join(' ')} }`)).map((c) => c.id));
    }
    return ids;
  };
  const asked = pairs.map((pair) => {
    const [first, second] = keys[pair.kb];
    return { pair, a: first, b: pair.kind === 'other-product' ? second : first };
  });
  const conversations = new Map<string, string[]>();
  for (const key of [...keys.demo, ...keys.shop]) {
    const count = asked.filter(({ a }) => a === key).length + asked.filter(({ b }) => b === key).length;
    conversations.set(key, await conversationsOf(key, count));
  }
  const ask = async (key: string, question: string): Promise<boolean> =>
    (await gql(key, SEND, { c: conversations.get(key)!.pop(), q: question })).sendMessage.reply.cached;

  const results: (QuestionPair & { matched: boolean })[] = [];
  for (const { pair, a, b } of asked) {
    app.localCaches.clear();
    if (await ask(a, pair.a)) throw new Error(`evaluate: "${pair.a}" was answered from a cache that should be empty (Redis configured?)`);
    results.push({ ...pair, matched: await ask(b, pair.b) });
  }

  const kinds = [...KINDS_OF_PARAPHRASE, ...KINDS_OF_NEAR_MISS].filter((kind) => results.some((r) => r.kind === kind));
  const strip = ({ matched: _, ...pair }: QuestionPair & { matched: boolean }): QuestionPair => pair;
  return {
    pairs: results.length,
    paraphraseHits: rate(results.filter((r) => r.expect === 'match')),
    falseMatches: rate(results.filter((r) => r.expect === 'differ')),
    byKind: kinds.map((kind) => {
      const ofKind = results.filter((r) => r.kind === kind);
      return { kind, expect: ofKind[0]!.expect, ...rate(ofKind) };
    }),
    falseMatchPairs: results.filter((r) => r.expect === 'differ' && r.matched).map(strip),
    missedParaphrases: results.filter((r) => r.expect === 'match' && !r.matched).map(strip),
    ms: Math.round(performance.now() - started),
  };
}
