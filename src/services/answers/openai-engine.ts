import type { Config } from '../../config.js';
import { streamChatCompletion, type ChatMessage } from '../../infra/llm/chat-completions.js';
import type { Logger } from '../../infra/log.js';
import type { ProviderMetrics } from '../../infra/llm/metrics.js';
import { type CircuitBreaker, CircuitOpenError, ProviderError, withRetries } from '../../infra/llm/resilience.js';
import type { RankedHit } from '../knowledge.js';
import type { Turn } from './context.js';
import type { AnswerEngine, AnswerInput, EngineAnswer, ProviderTrouble } from './engine.js';
import { composeLocalAnswer, LOCAL_MODEL } from './local-engine.js';
import { routeModel } from './question.js';

type LlmConfig = Config['answers']['llm'];

/** Characters of one passage given to the model: enough for an FAQ entry, bounded for a manual. */
const PASSAGE_CHARS = 2_000;

/** The prompt: the product's top passages, numbered, the conversation's recent turns, and the question. */
export function buildPrompt(productName: string, question: string, passages: readonly RankedHit[], turns: readonly Turn[] = []): ChatMessage[] {
  const numbered = passages.length
    ? passages.map((p, i) => `[${i + 1}] ${p.entry.title}\n${p.entry.content.slice(0, PASSAGE_CHARS)}`).join('\n\n')
    : '(none matched this question)';
  const system =
    `You are the chat assistant of "${productName}", answering its customers. ` +
    'Answer from the passages of its knowledge base below, briefly, in the language of the question. ' +
    "If they do not answer the question, say plainly that you don't know; never invent policies, prices or dates.\n\n" +
    `Passages:\n${numbered}`;
  return [
    { role: 'system', content: system },
    ...turns.map((turn): ChatMessage => ({ role: turn.role === 'USER' ? 'user' : 'assistant', content: turn.content })),
    { role: 'user', content: question },
  ];
}

export interface OpenAiEngineOptions {
  llm: LlmConfig;
  breaker: CircuitBreaker;
  metrics: ProviderMetrics;
  log: Logger;
  /** For tests: the jitter of the backoff. @default Math.random */
  random?: () => number;
}

/**
 * Any OpenAI-compatible chat-completions API. The answer streams through
 * `onDelta` as the provider sends it. Failures are retried (429, 5xx, network,
 * timeout; never after part of the answer was relayed); while the provider
 * keeps failing, the circuit opens and the local engine answers from the same
 * passages, until a probe finds the provider back.
 */
export function openAiEngine({ llm, breaker, metrics, log, random }: OpenAiEngineOptions): AnswerEngine {
  const client = { baseUrl: llm.baseUrl, apiKey: llm.apiKey, timeoutMs: llm.timeoutMs };
  return {
    name: 'openai',
    cacheId: `openai:${llm.fastModel}:${llm.largeModel}`,
    usesTurns: true,
    async answer({ question, retrieval, turns, product, passages, onDelta, signal }: AnswerInput): Promise<EngineAnswer> {
      const model = routeModel(question, llm);
      const messages = buildPrompt(product.name, question, passages, turns);
      const trouble: ProviderTrouble = { engine: 'openai', model, errors: 0, retries: 0, fallback: null };
      try {
        const { content } = await withRetries(
          async () => {
            const result = await streamChatCompletion(client, { model, messages, temperature: 0.2 }, onDelta ?? (() => {}), signal);
            if (!result.content.trim()) throw new ProviderError('provider sent an empty answer', 'protocol');
            return result;
          },
          {
            maxRetries: llm.maxRetries,
            backoff: { baseMs: llm.retryBaseMs, maxMs: llm.retryMaxMs, ...(random ? { random } : {}) },
            breaker,
            signal,
            onError: (error) => {
              trouble.errors += 1;
              metrics.error(model, error.kind);
              log.warn('answer provider call failed', { model, kind: error.kind, status: error.options.status, error: error.message });
            },
            onRetry: ({ attempt, delayMs }) => {
              trouble.retries += 1;
              metrics.retry(model);
              log.info('answer provider call retried', { model, attempt, delayMs });
            },
          },
        );
        return {
          content: content.trim(),
          sourceIds: passages.map((p) => p.entry.id),
          engine: 'openai',
          model,
          fallback: false,
          provider: trouble.errors ? trouble : null,
        };
      } catch (error) {
        // Shutting down, or a bug: not the provider's failure, nothing to fall back from.
        if (!(error instanceof ProviderError || error instanceof CircuitOpenError)) throw error;
        if (error instanceof ProviderError && error.kind === 'aborted') throw error;
        const reason = error instanceof CircuitOpenError ? 'circuit_open' : error.kind;
        trouble.fallback = reason;
        metrics.fallback(model, reason);
        return { ...composeLocalAnswer(retrieval ?? question, passages), engine: 'local', model: LOCAL_MODEL, fallback: true, provider: trouble };
      }
    },
  };
}
