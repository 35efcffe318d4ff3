import { getOperationAST, Kind, visit, type DocumentNode, type FragmentDefinitionNode, type OperationDefinitionNode, type ValueNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { BadUserInputError } from '../errors.js';

/**
 * Rejects `first`/`last` outside 0..max, and list arguments of more than max
 * items (`nodes(ids:)`), before anything executes, naming the field, instead of
 * silently clamping: a client asking for 500 rows should learn
 * that it gets at most 100. Literals, variables and variables' default values
 * are all checked, in the operation that runs and the fragments it spreads.
 * @default max 100
 */
export function usePageSizeLimit({ max = 100 }: { max?: number } = {}): Plugin {
  // The arguments to check, found once per document (a walk of the document per request showed in profiles).
  const found = new WeakMap<DocumentNode, Map<string, SizedArguments | null>>();
  const argumentsOf = (document: DocumentNode, operationName: string | undefined) => {
    let byOperation = found.get(document);
    if (!byOperation) found.set(document, (byOperation = new Map()));
    let sized = byOperation.get(operationName ?? '');
    if (sized === undefined) byOperation.set(operationName ?? '', (sized = sizedArguments(document, operationName)));
    return sized;
  };
  const plugin: Plugin = {
    onExecute({ args }) {
      const sized = argumentsOf(args.document as DocumentNode, args.operationName ?? undefined);
      // No single operation to run: graphql-js reports that itself.
      if (!sized) return;
      const variables = variableValues(sized.operation, (args.variableValues ?? {}) as Record<string, unknown>);
      for (const { where, value, size } of sized) {
        // A list argument (`nodes(ids:)`) holds at most `max` items too: 10,000 ids stalled a node for seconds.
        const items = listLength(value, variables);
        if (items !== undefined && items > max) throw refusal(`${where} takes at most ${max} items, got ${items}`, where);
        if (!size) continue;
        const n = literalNumber(value, variables);
        if (typeof n !== 'number') continue;
        if (!(n >= 0 && n <= max)) throw refusal(`${where} must be between 0 and ${max}, got ${n}`, where);
      }
    },
  };
  // Subscriptions too: their events are executed outside onExecute.
  plugin.onSubscribe = ({ args }) => void plugin.onExecute!({ args } as Parameters<NonNullable<Plugin['onExecute']>>[0]);
  return plugin;
}

/** An argument whose value is checked: `first`/`last` (size) or any list. */
interface SizedArgument {
  where: string;
  value: ValueNode;
  size: boolean;
}

type SizedArguments = SizedArgument[] & { operation: OperationDefinitionNode };

/** The arguments of the operation that runs and of the fragments it spreads; null when there is no single operation. */
function sizedArguments(document: DocumentNode, operationName: string | undefined): SizedArguments | null {
  const operation = getOperationAST(document, operationName);
  if (!operation) return null;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const out: SizedArgument[] = [];
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
          const where = `${field.alias?.value ?? field.name.value}.${arg.name.value}`;
          out.push({ where, value: arg.value, size: arg.name.value === 'first' || arg.name.value === 'last' });
        }
      },
    });
  }
  return Object.assign(out, { operation });
}

/** Refused before execution: 400 under application/graphql-response+json (200 under application/json). */
function refusal(message: string, where: string): BadUserInputError {
  const error = new BadUserInputError(message, where);
  error.extensions.http = { status: 400, spec: true };
  return error;
}

/** Items of a list argument, literal or from a variable; undefined when it is not a list. */
function listLength(node: ValueNode, variables: Record<string, unknown>): number | undefined {
  if (node.kind === Kind.LIST) return node.values.length;
  if (node.kind === Kind.VARIABLE) {
    const value = variables[node.name.value];
    return Array.isArray(value) ? value.length : undefined;
  }
  return undefined;
}

/** The value each variable will have: the one sent, else its declared default. */
function variableValues(operation: OperationDefinitionNode, sent: Record<string, unknown>): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const definition of operation.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    if (Object.hasOwn(sent, name)) values[name] = sent[name];
    else if (definition.defaultValue) values[name] = literalNumber(definition.defaultValue, {});
  }
  return values;
}

function literalNumber(node: ValueNode, variables: Record<string, unknown>): unknown {
  if (node.kind === Kind.INT) return Number(node.value);
  if (node.kind === Kind.VARIABLE) return variables[node.name.value];
  return undefined;
}
