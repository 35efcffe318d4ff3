import { getOperationAST, print, type DocumentNode } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../context.js';
import { principalKey } from '../services/auth.js';

/**
 * Identical read operations in flight at the same time — same principal, same
 * document, same variables — share one execution and its result. Only queries:
 * a mutation or subscription always runs for itself.
 * @default enabled; `onJoin` counts joins (cache stats).
 */
export function useRequestDedup({ onJoin }: { onJoin?: () => void } = {}): Plugin<Context> {
  const inflight = new Map<string, Promise<unknown>>();
  // Printing a document is the costly part of the key: once per parsed document.
  const printed = new WeakMap<DocumentNode, string>();
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (operation?.operation !== 'query') return;
      const ctx = args.contextValue as Context;
      let text = printed.get(args.document);
      if (text === undefined) printed.set(args.document, (text = print(args.document)));
      const principal = principalKey(ctx);
      const key = `${principal}|${args.operationName ?? ''}|${JSON.stringify(args.variableValues ?? {})}|${text}`;
      setExecuteFn((executeArgs) => {
        const running = inflight.get(key);
        if (running) {
          onJoin?.();
          return running as ReturnType<typeof executeFn>;
        }
        const result = Promise.resolve(executeFn(executeArgs)).finally(() => inflight.delete(key));
        inflight.set(key, result);
        return result as ReturnType<typeof executeFn>;
      });
    },
  };
}
