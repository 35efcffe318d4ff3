import {
  getOperationAST,
  Kind,
  visit,
  type DocumentNode,
  type FragmentDefinitionNode,
  type OperationDefinitionNode,
  type ValueNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { BadUserInputError } from '../errors.js';

/**
 * Rejects `first`/`last` outside 0..max before anything executes, naming the
 * field, instead of silently clamping: a client asking for 500 rows should learn
 * that it gets at most 100. Literals, variables and variables' default values
 * are all checked, in the operation that runs and the fragments it spreads.
 * @default max 100
 */
export function usePageSizeLimit({ max = 100 }: { max?: number } = {}): Plugin {
  const plugin: Plugin = {
    onExecute({ args }) {
      const document = args.document as DocumentNode;
      const operation = getOperationAST(document, args.operationName ?? undefined);
      // No single operation to run: graphql-js reports that itself.
      if (!operation) return;
      const variables = variableValues(operation, (args.variableValues ?? {}) as Record<string, unknown>);
      const fragments = new Map<string, FragmentDefinitionNode>();
      for (const definition of document.definitions) {
        if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
      }
      const pending: (OperationDefinitionNode | FragmentDefinitionNode)[] = [operation];
      const seen = new Set<string>();
      while (pending.length) {
        visit(pending.pop()!, {
          FragmentSpread(spread) {
            const name = spread.name.value;
            const fragment = fragments.get(name);
            if (fragment && !seen.has(name)) {
              seen.add(name);
              pending.push(fragment);
            }
          },
          Field(field) {
            for (const arg of field.arguments ?? []) {
              if (arg.name.value !== 'first' && arg.name.value !== 'last') continue;
              const value = valueOf(arg.value, variables);
              if (typeof value !== 'number') continue;
              if (!(value >= 0 && value <= max)) {
                const where = `${field.alias?.value ?? field.name.value}.${arg.name.value}`;
                const error = new BadUserInputError(`${where} must be between 0 and ${max}, got ${value}`, where);
                // Refused before execution: 400 under application/graphql-response+json (200 under application/json).
                error.extensions.http = { status: 400, spec: true };
                throw error;
              }
            }
          },
        });
      }
    },
  };
  // Subscriptions too: their events are executed outside onExecute.
  plugin.onSubscribe = ({ args }) => void plugin.onExecute!({ args } as Parameters<NonNullable<Plugin['onExecute']>>[0]);
  return plugin;
}

/** The value each variable will have: the one sent, else its declared default. */
function variableValues(operation: OperationDefinitionNode, sent: Record<string, unknown>): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    if (Object.prototype.hasOwnProperty.call(sent, name)) values[name] = sent[name];
    else if (definition.defaultValue) values[name] = valueOf(definition.defaultValue, {});
  }
  return values;
}

function valueOf(node: ValueNode, variables: Record<string, unknown>): unknown {
  if (node.kind === Kind.INT) return Number(node.value);
  if (node.kind === Kind.VARIABLE) return variables[node.name.value];
  return undefined;
}
