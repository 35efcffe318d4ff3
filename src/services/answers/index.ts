import type { Registry } from 'prom-client';
import type { Config } from '../../config.js';
import { cachePolicy } from '../../infra/cache/index.js';
import type { Logger } from '../../infra/log.js';
import { createProviderMetrics } from '../../infra/llm/metrics.js';
import { CircuitBreaker, type CircuitState } from '../../infra/llm/resilience.js';
import { newSqlScope, runInSqlScope } from '../../infra/sql-stats.js';
import type { Message } from '../../generated/prisma/client.js';
import { uuidv7 } from '../ids.js';
import type { KnowledgeSearch, RankedHit, Ranking } from '../knowledge.js';
import { LRUCache } from 'lru-cache';
import { appendExchange, appendMessage, findMessage, type MessageClaim, type PendingAnnouncement } from '../messages.js';
import { tags, type Store } from '../store.js';
import type { Typing } from '../typing.js';
import { localEngine, type AnswerEngine, type EngineAnswer } from './engine.js';
import { openAiEngine } from './openai-engine.js';
import { SemanticIndex } from './semantic.js';
import { createEmbeddings } from '../../infra/llm/embeddings.js';
import { byCoverage, followUpRetrieval, isFollowUp, previousQuestion, recentTurns, type Turn } from './context.js';
import { lexicalKey, normalizeQuestion } from './question.js';
import { sha256 } from '../../infra/hash.js';
import { recordProviderTrouble } from './stats.js';

export { normalizeQuestion, routeModel } from './question.js';

/** Thrown out of an exchange's production when its statement wrote nothing: the answer is not cached. */
const NOTHING_WRITTEN = new Error('nothing written');

/** Passages ranked for every question: the local engine quotes up to two, the prompt carries them all. */
export const PASSAGES = 4;

/** An answer as the cache keeps it: what a later identical question is answered with. */
interface CachedAnswer {
  content: string;
  sourceIds: string[];
  engine: string;
  model: string;
  fallback: boolean;
}

/** What an answer is cached under: see createAnswers. */
interface AnswerKey {
  productId: string;
  question: string;
  /** A follow-up's context ('' for a standalone question). */
  context: string;
  /** The question's search terms, when it is keyed by them: what the answer depends on. */
  terms?: string[];
}

/** What `metrics.answer()` of the app's Prometheus metrics takes (see src/infra/metrics.ts). */
export interface AnswerMetricsSink {
  answer(sample: { model: string; latencyMs: number; cached: boolean; outcome?: string }): void;
  readonly registry?: Registry;
}

export interface AnswersOptions {
  config: Config['answers'];
  store: Store;
  search: KnowledgeSearch;
  typing: Typing;
  log: Logger;
  metrics?: AnswerMetricsSink | undefined;
  /** For tests: the jitter of retry backoffs. */
  random?: () => number;
}

/** A question already stored (its id leaves it out of its own context), or about to be. */
export interface Question {
  content: string;
  id?: string;
}

export interface ReplyOptions {
  /** Publish the reply as ReplyDelta events while it is produced (then MessageAdded). */
  stream: boolean;
  /** The id to store the reply under (announced before it exists when streaming). */
  replyId?: string;
  /** The question, stored and not announced yet: announced with the reply, or alone once the reply is slow (typingDelayMs). */
  pending?: PendingAnnouncement;
}

export interface Answers {
  readonly engine: AnswerEngine;
  /** The provider circuit of this node (always closed for the local engine). */
  readonly circuit: CircuitState;
  /** The engine answers at once (the local one): sendMessage takes `exchange`. */
  readonly answersFirst: boolean;
  /**
   * The answer first, then the question and its reply stored in one statement
   * and announced in one round trip (for an engine that answers at once: no
   * typing, nothing to show before both are stored; an answer that fails
   * stores nothing). Undefined when its statement wrote nothing: the
   * idempotency key was taken (the caller replays the first request), or the
   * conversation is not the product's (NOT_FOUND).
   */
  exchange(
    product: { id: string; name: string },
    conversationId: string,
    question: string,
    claim?: MessageClaim,
  ): Promise<{ message: Message; reply: Message } | undefined>;
  /** Produces, stores and announces the ASSISTANT reply to `question`. */
  reply(product: { id: string; name: string }, conversationId: string, question: Question, options?: ReplyOptions): Promise<Message>;
  /**
   * The reply of an idempotent sendMessage, stored under `replyId` once: the
   * stored one when an earlier request (or a copy running at the same moment,
   * on any node) stored it, else produced here. Copies that both produce it
   * race to insert the same id; the loser's insert fails on the primary key
   * and it returns the winner's row, so there is never a second reply.
   * `retry`: an earlier request with the key may have stored it — looked up
   * first (a first request does not pay for that statement).
   */
  replyOnce(
    product: { id: string; name: string },
    conversationId: string,
    question: Question,
    replyId: string,
    retry: boolean,
    pending?: PendingAnnouncement,
  ): Promise<Message>;
  /**
   * The same in the background: resolves the reply's id at once; its pieces
   * arrive as ReplyDelta events, then MessageAdded. Failures are logged.
   */
  replyInBackground(product: { id: string; name: string }, conversationId: string, question: Question, replyId?: string): string;
  /** Waits for background replies (`graceMs` at most), then aborts what still runs. */
  dispose(graceMs?: number): Promise<void>;
}

/**
 * Assistant replies: the answer cache in front of the engine, the typing
 * indicator while an answer is produced, streaming, storage and statistics.
 *
 * The cache key is the product, the engine configuration, what the question
 * asks (its lexical key: see question.ts) and, for a follow-up, the context it
 * depends on (see context.ts): "and how long does it take?" is never served
 * another conversation's answer by its words alone. An answer depends on its
 * question's search terms: a knowledge write drops it only when it adds,
 * changes or deletes an entry holding one of them. A hit is stored as a new reply with `cached: true`
 * without ranking anything; identical questions in flight at once share one
 * generation (single-flight in process, the cache's lock across nodes).
 */
export function createAnswers({ config, store, search, typing, log, metrics, random }: AnswersOptions): Answers {
  const breaker = new CircuitBreaker({
    failures: config.llm.breakerFailures,
    cooldownMs: config.llm.breakerCooldownMs,
    onChange: (state) => {
      if (state === 'open') providerMetrics.circuitOpened();
      log[state === 'open' ? 'warn' : 'info'](`answer provider circuit ${state}`, {
        ...(state === 'open' ? { cooldownMs: config.llm.breakerCooldownMs, answeringWith: 'local engine' } : {}),
      });
    },
  });
  const providerMetrics = createProviderMetrics(metrics?.registry, () => breaker.state);
  // Semantic matching (PARLEY_EMBEDDINGS_MODEL): its own breaker, so a failing embeddings endpoint
  // never opens the answer provider's circuit (and the other way round).
  const semantic = config.embeddings && {
    threshold: config.embeddings.threshold,
    index: new SemanticIndex<{ key: AnswerKey; knowledge: string }>(),
    embeddings: createEmbeddings({
      ...config.embeddings,
      timeoutMs: config.llm.timeoutMs,
      maxRetries: config.llm.maxRetries,
      backoff: { baseMs: config.llm.retryBaseMs, maxMs: config.llm.retryMaxMs },
      breaker: new CircuitBreaker({
        failures: config.llm.breakerFailures,
        cooldownMs: config.llm.breakerCooldownMs,
        onChange: (state) =>
          log[state === 'open' ? 'warn' : 'info'](`embeddings circuit ${state}`, state === 'open' ? { matching: 'lexical only' } : undefined),
      }),
      cache: store.cache,
      log,
    }),
  };
  const engine = config.engine === 'openai' ? openAiEngine({ llm: config.llm, breaker, metrics: providerMetrics, log, random }) : localEngine();
  const aborter = new AbortController();
  const background = new Set<Promise<unknown>>();

  const policy = cachePolicy<AnswerKey>({
    name: 'answers',
    ttlMs: config.ttlMs,
    scope: (a) => a.productId,
    key: (a) => [engine.cacheId, a.question, a.context],
    // A lexically keyed answer depends on its question's search terms: a knowledge write that adds, changes
    // or deletes an entry holding one of them drops it, and only those (what ranking the question finds
    // can change only then). Answers keyed otherwise depend on all of the product's knowledge.
    tags: (a) => (a.terms?.length ? a.terms.map((term) => tags.knowledgeTerm(a.productId, term)) : [tags.knowledge(a.productId)]),
    // An answer written while the provider failed is not worth keeping for a day.
    cacheIf: (answer: CachedAnswer) => !answer.fallback,
    // The local engine's answer is one indexed statement, cheaper than the two Redis round trips
    // (lookup-or-lock, store) that sharing it across nodes costs (see docs/answers.md). A model's
    // answer takes seconds and money: shared in L2, and produced once across nodes.
    shared: config.engine === 'openai',
    // Another node producing the same answer is worth waiting for: a model takes seconds.
    lockWaitMs: config.engine === 'openai' ? config.llm.timeoutMs * (config.llm.maxRetries + 1) : 2_000,
  });

  // Each standalone question's lexical key (see lexicalKey) by its normalised words: known, it is looked
  // up without ranking anything; new, the ranking that must run for its key also serves its production.
  const lexicalKeys = new LRUCache<string, { question: string; terms: string[] }>({ max: 10_000 });

  /**
   * What the answer to `question` depends on: in its conversation, the turns before it (read when the
   * engine's prompt carries them, or the question is a follow-up); what retrieval searches for; and its
   * cache key. A standalone question is keyed by its lexical key, as if asked alone; a follow-up by its
   * normalised words and the context it follows.
   */
  async function contextOf(productId: string, conversationId: string, question: Question) {
    const normalized = normalizeQuestion(question.content);
    const followUp = isFollowUp(question.content);
    const turns: Turn[] = followUp || engine.usesTurns ? await recentTurns(store, productId, conversationId, config.contextTokens, question.id) : [];
    const dependent = followUp && turns.length > 0;
    // Filler ("hi", "thanks") is not searched for: it would rank entries that mention it and split keys.
    const retrieval = dependent ? followUpRetrieval(question.content, turns) : normalized;
    let ranking: Promise<Ranking> | undefined;
    const ranked = () => (ranking ??= search.rank(productId, retrieval, PASSAGES));
    return {
      turns,
      retrieval,
      /** What semantic matching embeds: the question without filler, for a standalone question only. */
      embedded: dependent ? undefined : normalized,
      /** The product's best passages for the question in its context. */
      rank: async (): Promise<readonly RankedHit[]> => (dependent ? byCoverage(await ranked()) : ranked()),
      async key(): Promise<Omit<AnswerKey, 'productId'>> {
        if (dependent) {
          // The local engine's answer follows from what it searched; a model's from every turn in its prompt.
          const context = engine.usesTurns
            ? sha256(JSON.stringify(turns.map((turn) => [turn.role, turn.content])), 'base64url')
            : normalizeQuestion(previousQuestion(turns) ?? '');
          return { question: `=${normalized}`, context };
        }
        if (config.matching === 'exact') return { question: `=${normalized}`, context: '' };
        let known = lexicalKeys.get(normalized);
        if (known === undefined) {
          const { lexemes } = await ranked();
          known = { question: lexicalKey(normalized, lexemes), terms: [...new Set(lexemes)] };
          lexicalKeys.set(normalized, known);
        }
        return { ...known, context: '' };
      },
    };
  }

  type Context = Awaited<ReturnType<typeof contextOf>>;

  /** The generation of the product's knowledge (bumped by every knowledge write), on every node alike. */
  const knowledgeGeneration = async (productId: string) => (await store.cache.generations.current([tags.knowledge(productId)]))[1]!;

  /**
   * The answer to `question` from the cache — under its own key or, with semantic matching, under the
   * key of an answered question it means the same as — or produced (ranked, then answered) and cached.
   */
  async function answerOf(product: { id: string; name: string }, context: Context, produce: () => Promise<EngineAnswer>) {
    const key: AnswerKey = { productId: product.id, ...(await context.key()) };
    let vector: Float32Array | undefined;
    // The knowledge this answer is given under, read before it is looked up or produced (a write while it
    // is produced must not be taken for one it saw).
    const knowledge = semantic && context.embedded !== undefined && key.terms ? await knowledgeGeneration(product.id) : undefined;
    // Its own answer first (no embedding needed); then the nearest answered question's, if still cached.
    if (semantic && knowledge !== undefined && !(await store.cache.peek(policy, key))) {
      vector = await semantic.embeddings.embed(product.id, context.embedded!);
      const near = vector && semantic.index.nearest(product.id, vector, semantic.threshold);
      // Lent only while the product's knowledge is as it was when that answer was given: a new entry
      // may match this question's words without matching the other's (which its tags would not see).
      const lendable = near && near.id !== key.question && near.key.knowledge === knowledge;
      const reused = lendable ? await store.cache.peek<AnswerKey, CachedAnswer>(policy, near.key.key) : undefined;
      if (reused) return { answer: reused, generated: undefined };
    }
    let generated: EngineAnswer | undefined;
    const answer = await store.cache.get<AnswerKey, CachedAnswer>(policy, key, async () => {
      generated = await produce();
      const { content, sourceIds, engine: by, model, fallback } = generated;
      return { content, sourceIds, engine: by, model, fallback };
    });
    if (vector && semantic && knowledge !== undefined && !answer.fallback) semantic.index.add(product.id, key.question, vector, { key, knowledge });
    return { answer, generated: generated as EngineAnswer | undefined };
  }

  /** The ASSISTANT message of an answer, `started` when the question came. */
  const replyMessage = (id: string, answer: CachedAnswer, generated: EngineAnswer | undefined, started: number) => ({
    id,
    role: 'ASSISTANT' as const,
    content: answer.content,
    engine: answer.engine,
    model: answer.model,
    latencyMs: Math.round(performance.now() - started),
    cached: !generated,
    sourceIds: answer.sourceIds,
  });

  const recordAnswer = (reply: ReturnType<typeof replyMessage>, fallback: boolean) =>
    metrics?.answer({ model: reply.model, latencyMs: reply.latencyMs, cached: reply.cached, outcome: fallback ? 'fallback' : 'ok' });

  async function exchange(product: { id: string; name: string }, conversationId: string, question: string, claim?: MessageClaim) {
    const started = performance.now();
    const replyId = claim?.replyId ?? uuidv7();
    const context = await contextOf(product.id, conversationId, { content: question });
    const produce = async () =>
      engine.answer({
        question,
        retrieval: context.retrieval,
        turns: context.turns,
        product,
        passages: await context.rank(),
        signal: aborter.signal,
      });
    const write = async (answer: CachedAnswer, generated: EngineAnswer | undefined) => {
      const reply = replyMessage(replyId, answer, generated, started);
      const stored = await appendExchange(store, product.id, conversationId, { role: 'USER', content: question }, reply, claim);
      if (stored) recordAnswer(reply, answer.fallback);
      return stored;
    };
    let led = false;
    let stored: Awaited<ReturnType<typeof write>>;
    try {
      const { answer, generated } = await answerOf(product, context, async () => {
        led = true;
        const produced = await produce();
        // Cached only once stored: a question sent into a conversation that is not there (another
        // product's) leaves nothing behind, and costs what it costs for an id that exists nowhere.
        stored = await write(produced, produced);
        if (!stored) throw NOTHING_WRITTEN;
        return produced;
      });
      return stored ?? (await write(answer, generated));
    } catch (error) {
      if (error !== NOTHING_WRITTEN) throw error;
      if (led) return undefined;
      // This request joined another's production, whose statement wrote nothing: its own answer, uncached.
      const produced = await produce();
      return write(produced, produced);
    }
  }

  async function reply(product: { id: string; name: string }, conversationId: string, question: Question, options: ReplyOptions = { stream: false }) {
    const started = performance.now();
    const replyId = options.replyId ?? uuidv7();
    // Deltas are published in order, and all of them before MessageAdded.
    let published: Promise<unknown> = Promise.resolve();
    let relayed = 0;
    const publish = (delta: string, done: boolean) => {
      published = published.then(() => store.events.replyDelta(conversationId, replyId, delta, done));
    };

    // Not streamed, the assistant is shown typing only while an answer takes longer than
    // typingDelayMs: most answers (cache hits) come sooner, and typing for a few milliseconds is
    // flicker to a reader and two Redis round trips to the node. Streamed, it is announced at
    // once: a widget follows a reply's pieces from the typing that precedes them. Only the request
    // that produces the answer types (one that joins another's production, here or on another
    // node, does not). A pending question is announced first: the question, then the typing.
    const quiet = options.stream ? 0 : config.typingDelayMs;
    let typingNow: Promise<{ stop(): Promise<void> }> | undefined;
    let typingTimer: NodeJS.Timeout | undefined;
    const startTyping = () => {
      typingNow = (async () => {
        await options.pending?.flush();
        return typing.assistantTyping(conversationId);
      })();
    };
    const pending = options.pending;
    const flushTimer = pending && setTimeout(() => void pending.flush().catch(() => undefined), quiet);
    try {
      const context = await contextOf(product.id, conversationId, question);
      const { answer, generated } = await answerOf(product, context, async () => {
        // Typing is announced while the knowledge is ranked, not before: the answer does not wait on Redis.
        if (quiet === 0) startTyping();
        else typingTimer = setTimeout(startTyping, quiet);
        let passages: readonly RankedHit[];
        try {
          passages = await context.rank();
        } finally {
          // Announced before the first piece of a streamed reply.
          if (quiet === 0) await typingNow;
        }
        return engine.answer({
          question: question.content,
          retrieval: context.retrieval,
          turns: context.turns,
          product,
          passages,
          onDelta: options.stream
            ? (delta) => {
                relayed += 1;
                publish(delta, false);
              }
            : undefined,
          signal: aborter.signal,
        });
      });
      const message = replyMessage(replyId, answer, generated, started);
      // Text that was not relayed piece by piece arrives as one piece. After a provider that
      // failed half-way, the stored (fallback) reply that MessageAdded carries replaces the draft.
      if (options.stream) publish(relayed ? '' : answer.content, true);
      await published;
      if (generated?.provider) {
        await recordProviderTrouble(store.prisma, product.id, generated.provider).catch((error: Error) =>
          log.warn('answer: provider stats not recorded', { error: error.message }),
        );
      }
      const row = await appendMessage(store, product.id, conversationId, message, pending);
      recordAnswer(message, answer.fallback);
      return row;
    } finally {
      clearTimeout(typingTimer);
      clearTimeout(flushTimer);
      await pending?.flush();
      await (await typingNow)?.stop();
    }
  }

  return {
    engine,
    answersFirst: config.engine === 'local',
    exchange,
    get circuit() {
      return breaker.state;
    },
    reply,
    async replyOnce(product, conversationId, question, replyId, retry, pending) {
      const stored = retry ? await findMessage(store.prisma, product.id, replyId) : null;
      if (stored) return stored;
      try {
        return await reply(product, conversationId, question, { stream: false, replyId, ...(pending ? { pending } : {}) });
      } catch (error) {
        const winner = await findMessage(store.prisma, product.id, replyId).catch(() => null);
        if (winner) return winner;
        throw error;
      }
    },
    replyInBackground(product, conversationId, question, replyId = uuidv7()) {
      // Its own SQL scope: the request that started it has been answered already.
      const task = runInSqlScope(newSqlScope(), () => reply(product, conversationId, question, { stream: true, replyId })).catch(
        async (error: Error) => {
          log.error('answer: streamed reply failed', { conversationId, replyId, error });
          // Subscribers waiting for the pieces learn that none will come.
          await store.events.replyDelta(conversationId, replyId, '', true);
        },
      );
      background.add(task);
      void task.finally(() => background.delete(task));
      return replyId;
    },
    async dispose(graceMs = 5_000) {
      if (background.size) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([Promise.allSettled([...background]), new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
        clearTimeout(timer);
      }
      aborter.abort();
      await Promise.allSettled([...background]);
    },
  };
}
