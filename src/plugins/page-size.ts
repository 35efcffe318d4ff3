import { Kind, visit, type ASTNode, type ValueNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { BadUserInputError } from '../errors.js';

/**
 * Rejects `first`/`last` outside 0..max before anything executes, naming the
 * field, instead of silently clamping: a client asking for 500 rows should learn
 * that it gets at most 100.
 * @default max 100
 */
export function usePageSizeLimit({ max = 100 }: { max?: number } = {}): Plugin {
  return {
    onExecute({ args }) {
      const variables = (args.variableValues ?? {}) as Record<string, unknown>;
      visit(args.document as ASTNode, {
        Field(field) {
          for (const arg of field.arguments ?? []) {
            if (arg.name.value !== 'first' && arg.name.value !== 'last') continue;
            const value = valueOf(arg.value, variables);
            if (typeof value !== 'number') continue;
            if (value < 0 || value > max) {
              const where = `${field.alias?.value ?? field.name.value}.${arg.name.value}`;
              throw new BadUserInputError(`${where} must be between 0 and ${max}, got ${value}`, where);
            }
          }
        },
      });
    },
  };
}

function valueOf(node: ValueNode, variables: Record<string, unknown>): unknown {
  if (node.kind === Kind.INT) return Number(node.value);
  if (node.kind === Kind.VARIABLE) return variables[node.name.value];
  return undefined;
}
