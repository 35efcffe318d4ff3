import { PothosValidationError } from '@pothos/core';
import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Logger } from '../infra/log.js';
import { HTTP_STATUS, ParleyError } from '../errors.js';

/**
 * Expected errors keep their message and get `extensions.code`; anything else
 * is logged and masked as INTERNAL_SERVER_ERROR so internals never leak.
 */
export function createMaskError(log: Logger) {
  return (error: unknown, message: string): Error => {
    const graphqlError = error instanceof GraphQLError ? error : undefined;
    const original = graphqlError?.originalError ?? error;
    const location = { nodes: graphqlError?.nodes, path: graphqlError?.path };
    if (original instanceof ParleyError) {
      const code = original.code;
      return new GraphQLError(original.message, {
        ...location,
        extensions: { code, ...original.extensions, ...(HTTP_STATUS[code] ? { http: { status: HTTP_STATUS[code] } } : {}) },
      });
    }
    if (original instanceof PothosValidationError) {
      return new GraphQLError(original.message, { ...location, extensions: { code: 'BAD_USER_INPUT' } });
    }
    // Parse/validation/coercion errors raised by graphql-js itself carry no original error.
    if (graphqlError && !graphqlError.originalError) {
      if (!graphqlError.extensions.code) {
        return new GraphQLError(graphqlError.message, { ...location, extensions: { ...graphqlError.extensions, code: 'BAD_USER_INPUT' } });
      }
      return graphqlError;
    }
    // Variable coercion ("$n got invalid value …"): graphql-js raises it before
    // execution (so without a path) and keeps the scalar's or enum's own
    // GraphQLError as originalError. The client sent it: not an internal error.
    if (graphqlError && !graphqlError.path && original instanceof GraphQLError) {
      return new GraphQLError(graphqlError.message, {
        ...location,
        extensions: { ...graphqlError.extensions, code: graphqlError.extensions.code ?? 'BAD_USER_INPUT' },
      });
    }
    log.error('unexpected error', { error: original instanceof Error ? original : String(original), path: graphqlError?.path });
    return new GraphQLError(message, { ...location, extensions: { code: 'INTERNAL_SERVER_ERROR' } });
  };
}

/**
 * A request that failed as a whole because the database is unavailable (no
 * `data`, or `data: null`, and every error DATABASE_UNAVAILABLE) is HTTP 503
 * with `Retry-After`, so load balancers and clients retry it; a partial result
 * (some fields answered) stays 200 with its errors.
 */
export function useUnavailableStatus({ retryAfterS = 1 }: { retryAfterS?: number } = {}): Plugin {
  return {
    onExecutionResult({ result, setResult }) {
      if (Array.isArray(result) || !result || typeof result !== 'object' || Symbol.asyncIterator in result) return;
      const single = result as ExecutionResult;
      if (single.data != null || !single.errors?.length) return;
      if (!single.errors.every((error) => error.extensions?.code === 'DATABASE_UNAVAILABLE')) return;
      setResult({
        ...single,
        extensions: { ...single.extensions, http: { status: 503, headers: { 'retry-after': String(retryAfterS) } } },
      });
    },
  };
}
