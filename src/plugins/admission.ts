import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { OverloadedError } from '../errors.js';

export interface AdmissionOptions {
  /** Queries and mutations executing at once on this node; one more is refused. 0 = no bound. */
  maxConcurrent: number;
  /** Seconds a refused client is told to wait (`retryAfter`, `Retry-After`). @default 1 */
  retryAfterS?: number;
  /** Counts refusals (metrics). */
  onReject?: () => void;
}

/**
 * Load shedding: at most `maxConcurrent` queries and mutations execute at once
 * on this node; one more is refused at once, before any resolver runs, with
 * OVERLOADED, `retryAfter` and HTTP 503 + Retry-After — so nothing it would
 * write is half done.
 *
 * Why a bound on operations in flight: past what a node serves, the database
 * pool becomes the queue, and a statement that waits there longer than
 * DATABASE_POOL_TIMEOUT_MS fails in the middle of its operation — a
 * sendMessage whose question was stored and delivered and whose reply was not
 * (issue 13 point 11). Bounding the operations in flight bounds that queue, so
 * what is admitted finishes in time and the excess is refused while nothing
 * has been done. Neither Yoga nor envelop has such a plugin; process-load
 * shedders (overload-protection, @fastify/under-pressure) refuse by event-loop
 * lag at the HTTP layer, with no GraphQL error body, cache hits included.
 *
 * Counted where execution starts (the execute function), so an operation that
 * another plugin stops earlier never holds a slot. Response-cache hits never
 * execute and are never refused; identical queries joined by request dedup
 * share one slot; subscriptions (long-lived) are not counted.
 */
export function useAdmission({ maxConcurrent, retryAfterS = 1, onReject }: AdmissionOptions): Plugin {
  let running = 0;
  const refusal = (): ExecutionResult => {
    const error = new OverloadedError(retryAfterS);
    return {
      errors: [
        new GraphQLError(error.message, {
          extensions: { code: error.code, ...error.extensions, http: { status: 503, headers: { 'retry-after': String(retryAfterS) } } },
        }),
      ],
    };
  };
  return {
    onExecute({ executeFn, setExecuteFn }) {
      if (maxConcurrent <= 0) return;
      setExecuteFn((args) => {
        if (running >= maxConcurrent) {
          onReject?.();
          return refusal() as ReturnType<typeof executeFn>;
        }
        running += 1;
        const release = () => void (running -= 1);
        try {
          const result = executeFn(args);
          // A result that is already there (every field answered at once) is not turned into a promise.
          if (!(result && typeof (result as PromiseLike<unknown>).then === 'function')) {
            release();
            return result;
          }
          return Promise.resolve(result).finally(release) as ReturnType<typeof executeFn>;
        } catch (error) {
          release();
          throw error;
        }
      });
    },
  };
}
