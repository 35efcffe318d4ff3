import DataLoader from 'dataloader';
import { cachePolicy, type Cache } from '../cache/index.js';
import type { Logger } from '../log.js';
import { withSpan } from '../tracing.js';
import { type CircuitBreaker, httpFailure, ProviderError, withRetries } from './resilience.js';

/**
 * Embeddings of questions through an OpenAI-compatible `/embeddings` endpoint
 * (OpenAI, vLLM, llama.cpp, Ollama's /v1, text-embeddings-inference…).
 * Questions asked within `batchMs` of each other go in one call (one process-wide
 * DataLoader: every request's questions, not only one request's), and each
 * embedding is cached by its text (L1 and L2, a week: an embedding never
 * changes for one model). Failures are retried and counted by their own
 * breaker; a question whose embedding cannot be had gets none, and the caller
 * matches it lexically.
 */

export interface EmbeddingsOptions {
  model: string;
  baseUrl: string;
  apiKey: string | undefined;
  /** Questions arriving within this window share one call. @default 10 */
  batchMs: number;
  /** A call that sends nothing back for this long is given up (and retried). */
  timeoutMs: number;
  maxRetries: number;
  backoff: { baseMs: number; maxMs: number };
  breaker: CircuitBreaker;
  cache: Cache;
  log: Logger;
}

export interface Embeddings {
  /** The unit-length embedding of `text`, or undefined when the provider cannot give one now. */
  embed(productId: string, text: string): Promise<Float32Array | undefined>;
  /** Calls made to the provider so far (a batch is one). */
  readonly calls: number;
}

const MAX_BATCH = 64;

export function createEmbeddings(options: EmbeddingsOptions): Embeddings {
  const { model, log } = options;
  let calls = 0;
  const policy = cachePolicy<{ productId: string; text: string }>({
    name: 'embeddings',
    ttlMs: 7 * 86_400_000,
    scope: (a) => a.productId,
    key: (a) => [model, a.text],
    tags: () => [],
  });
  const loader = new DataLoader<string, number[]>(
    async (texts) => {
      calls += 1;
      try {
        return await withRetries(() => requestEmbeddings(options, texts), {
          maxRetries: options.maxRetries,
          backoff: options.backoff,
          breaker: options.breaker,
          onError: (error) => log.warn('embeddings call failed', { model, kind: error.kind, status: error.options.status, error: error.message }),
        });
      } catch (error) {
        return texts.map(() => error as Error);
      }
    },
    {
      cache: false,
      maxBatchSize: MAX_BATCH,
      batchScheduleFn: options.batchMs > 0 ? (run) => void setTimeout(run, options.batchMs).unref() : undefined,
    },
  );
  return {
    async embed(productId, text) {
      try {
        const vector = await options.cache.get(policy, { productId, text }, () => loader.load(text));
        return unit(vector);
      } catch {
        return undefined;
      }
    },
    get calls() {
      return calls;
    },
  };
}

/** One `/embeddings` call for several texts; the vectors in the order of the texts. */
function requestEmbeddings(options: EmbeddingsOptions, texts: readonly string[]): Promise<number[][]> {
  return withSpan('embeddings', { 'gen_ai.operation.name': 'embeddings', 'gen_ai.request.model': options.model }, async () => {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), options.timeoutMs);
    try {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (options.apiKey) headers.authorization = `Bearer ${options.apiKey}`;
      const response = await fetch(`${options.baseUrl}/embeddings`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ model: options.model, input: texts }),
        signal: controller.signal,
      });
      if (!response.ok) throw await httpFailure(response);
      const json = (await response.json().catch(() => null)) as { data?: { index?: number; embedding?: unknown }[] } | null;
      const vectors: number[][] = [];
      for (const [position, item] of (json?.data ?? []).entries()) {
        const embedding = item.embedding;
        if (!Array.isArray(embedding) || !embedding.every((x) => typeof x === 'number'))
          throw new ProviderError('provider answered without an embedding', 'protocol');
        vectors[item.index ?? position] = embedding;
      }
      if (vectors.length !== texts.length || vectors.some((v) => !v)) throw new ProviderError('provider answered without an embedding', 'protocol');
      return vectors;
    } catch (error) {
      if (error instanceof ProviderError) throw error;
      if (controller.signal.aborted) throw new ProviderError(`provider sent nothing for ${options.timeoutMs} ms`, 'timeout');
      throw new ProviderError(`provider unreachable: ${(error as Error)?.message ?? String(error)}`, 'network');
    } finally {
      clearTimeout(timer);
    }
  });
}

function unit(vector: readonly number[]): Float32Array {
  const out = Float32Array.from(vector);
  let norm = 0;
  for (const x of out) norm += x * x;
  norm = Math.sqrt(norm) || 1;
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / norm;
  return out;
}

/** Cosine similarity of two unit vectors (0 when their lengths differ: another model's). */
export function cosine(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  let dot = 0;
  for (let i = 0; i < a.length; i++) dot += a[i]! * b[i]!;
  return dot;
}
