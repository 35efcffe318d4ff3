import { EnvelopArmor } from '@escape.tech/graphql-armor';
import type { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

export interface QueryLimits {
  /** Deepest field nesting (introspection's `__schema` excluded). @default 10 — the nested read is 8 */
  maxDepth: number;
  /**
   * Most values a response can hold: every field costs 1, and a field with a
   * literal `first`/`last` multiplies what is under it. @default 100000 — the
   * nested read (20 conversations × 20 messages) costs 3,360; the largest
   * two-level page (100 conversations × 100 messages, a few fields) ~60,000;
   * three nested pages of 100 are refused
   */
  maxCost: number;
  /** Aliases per operation. @default 15 */
  maxAliases: number;
  /** Lexical tokens per document, checked while parsing. @default 1000 */
  maxTokens: number;
  /** Directives per operation. @default 50 */
  maxDirectives: number;
  /** Hide "Did you mean …?" (schema hints) in validation errors, with introspection off. @default false */
  hideSuggestions: boolean;
}

/**
 * Refuses operations that are too deep, too costly, or use too many aliases,
 * tokens or directives, before anything executes (GraphQL Armor's rules,
 * checked once per document: Yoga caches parse and validation results).
 * Errors carry `extensions.code: QUERY_TOO_COMPLEX`; `onReject` counts them.
 */
export function useQueryLimits(limits: QueryLimits, onReject?: (limit: string) => void): Plugin[] {
  const reject = (limit: string) => (_context: unknown, error: GraphQLError) => {
    // Armor's errors are plain GraphQLErrors; the code is what clients switch on. A refusal is a
    // request error: 400 under application/graphql-response+json, 200 under application/json (as
    // Yoga's validation errors: `spec` keeps application/json clients on 200, as the spec allows).
    Object.assign(error.extensions, { code: 'QUERY_TOO_COMPLEX', limit, http: { status: 400, spec: true } });
    onReject?.(limit);
  };
  const armor = new EnvelopArmor({
    maxDepth: { n: limits.maxDepth, onReject: [reject('depth')] },
    costLimit: {
      maxCost: limits.maxCost,
      objectCost: 1,
      scalarCost: 1,
      // Linear: the cost reads as "values in the response", not an exponential score.
      depthCostFactor: 1,
      onReject: [reject('cost')],
    },
    maxAliases: { n: limits.maxAliases, onReject: [reject('aliases')] },
    maxTokens: { n: limits.maxTokens, onReject: [reject('tokens')] },
    maxDirectives: { n: limits.maxDirectives, onReject: [reject('directives')] },
    blockFieldSuggestion: { enabled: limits.hideSuggestions },
  });
  return armor.protect().plugins as Plugin[];
}
