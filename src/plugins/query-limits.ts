import { EnvelopArmor } from '@escape.tech/graphql-armor';
import { costLimitRule } from '@escape.tech/graphql-armor-cost-limit';
import { getOperationAST, Kind, validate, visit, type DocumentNode, type GraphQLError, type GraphQLSchema } from 'graphql';
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
  const cost = {
    maxCost: limits.maxCost,
    objectCost: 1,
    scalarCost: 1,
    // Linear: the cost reads as "values in the response", not an exponential score.
    depthCostFactor: 1,
    onReject: [reject('cost')],
  };
  const armor = new EnvelopArmor({
    maxDepth: { n: limits.maxDepth, onReject: [reject('depth')] },
    costLimit: cost,
    maxAliases: { n: limits.maxAliases, onReject: [reject('aliases')] },
    maxTokens: { n: limits.maxTokens, onReject: [reject('tokens')] },
    maxDirectives: { n: limits.maxDirectives, onReject: [reject('directives')] },
    blockFieldSuggestion: { enabled: limits.hideSuggestions },
  });
  return [...(armor.protect().plugins as Plugin[]), useCostOfVariables((schema, document) => validate(schema, document, [costLimitRule(cost)]))];
}

/**
 * Armor's cost rule sees the document only: `first: $n` counts 1, so
 * `conversations(first: $n) { messages(first: $n) { … } }` with n = 100 passed
 * and answered 23 MB. Before an operation whose page sizes come from variables
 * executes, the rule runs again on the document with those variables' values
 * written in (a refusal throws, as in validation). Subscriptions too.
 */
function useCostOfVariables(check: (schema: GraphQLSchema, document: DocumentNode) => void): Plugin {
  // Documents none of whose page sizes is a variable: nothing to check again (known once per document).
  const literalSizes = new WeakSet<DocumentNode>();
  const plugin: Plugin = {
    onExecute({ args }) {
      if (literalSizes.has(args.document)) return;
      const operation = getOperationAST(args.document, args.operationName ?? undefined);
      if (!operation?.variableDefinitions?.length || !sizesFromVariables(args.document)) {
        literalSizes.add(args.document);
        return;
      }
      const sent = (args.variableValues ?? {}) as Record<string, unknown>;
      const values = new Map<string, unknown>();
      for (const definition of operation.variableDefinitions) {
        const name = definition.variable.name.value;
        const fallback = definition.defaultValue?.kind === Kind.INT ? Number(definition.defaultValue.value) : undefined;
        values.set(name, Object.hasOwn(sent, name) ? sent[name] : fallback);
      }
      let written = false;
      const document = visit(args.document, {
        Argument(node) {
          if (node.name.value !== 'first' && node.name.value !== 'last') return;
          if (node.value.kind !== Kind.VARIABLE) return;
          const value = values.get(node.value.name.value);
          if (typeof value !== 'number' || !Number.isInteger(value)) return;
          written = true;
          return { ...node, value: { kind: Kind.INT, value: String(value) } };
        },
      });
      if (written) check(args.schema as GraphQLSchema, document);
    },
  };
  plugin.onSubscribe = ({ args }) => void plugin.onExecute!({ args } as Parameters<NonNullable<Plugin['onExecute']>>[0]);
  return plugin;
}

/** Whether a `first`/`last` argument of the document takes a variable. */
function sizesFromVariables(document: DocumentNode): boolean {
  let found = false;
  visit(document, {
    Argument(node) {
      if ((node.name.value === 'first' || node.name.value === 'last') && node.value.kind === Kind.VARIABLE) found = true;
    },
  });
  return found;
}
