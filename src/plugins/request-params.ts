import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/** Deepest nesting of `variables` or `extensions` accepted (a real input is a handful of levels). */
export const MAX_PARAMS_DEPTH = 64;

/**
 * Client mistakes in a request's parameters, answered as what they are — 400
 * with `extensions.code: BAD_REQUEST`, as Yoga answers a POST body that is not
 * JSON — instead of an internal error from deeper in:
 *
 * - GET `variables` or `extensions` that are not JSON (Yoga's GET parser lets
 *   the SyntaxError through);
 * - `variables` or `extensions` nested deeper than MAX_PARAMS_DEPTH (every
 *   JSON.stringify of them — request dedup, the response cache key — would
 *   overflow the stack).
 */
export function useRequestParamsCheck(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) return;
      setRequestParser(async (request) => {
        let parsed;
        try {
          parsed = await requestParser(request);
        } catch (error) {
          if (error instanceof GraphQLError) throw error;
          throw badRequest(request.method === 'GET' ? 'GET parameters variables and extensions must be JSON' : 'the request could not be read');
        }
        // A parser may answer itself (the body limit's 413).
        if ('status' in parsed && 'headers' in parsed) return parsed;
        for (const params of Array.isArray(parsed) ? parsed : [parsed]) {
          const problem = paramsProblem(params);
          if (problem) throw badRequest(problem);
        }
        return parsed;
      });
    },
  };
}

/** Why `variables`/`extensions` cannot be taken (too deep), or undefined. Used by the graphql-ws path as well. */
export function paramsProblem(params: { variables?: unknown; extensions?: unknown } | null | undefined): string | undefined {
  if (!params) return undefined;
  for (const name of ['variables', 'extensions'] as const) {
    if (nestedDeeperThan(params[name], MAX_PARAMS_DEPTH)) return `${name} are nested deeper than ${MAX_PARAMS_DEPTH} levels`;
  }
  return undefined;
}

/** Iterative, so the check itself cannot overflow the stack it protects. */
export function nestedDeeperThan(value: unknown, max: number): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const stack: Array<[unknown, number]> = [[value, 1]];
  while (stack.length) {
    const [current, depth] = stack.pop()!;
    if (depth > max) return true;
    for (const child of Object.values(current as object)) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}

function badRequest(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_REQUEST', http: { status: 400 } } });
}
