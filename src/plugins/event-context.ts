import { createSourceEventStream, execute, type DocumentNode, type ExecutionArgs, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { readFromPrimary } from '../infra/read-routing.js';

/**
 * graphql's subscribe resolves every event with the context the subscription
 * started with, so its loaders (and Pothos' per-context caches) would serve a
 * long-lived subscription rows read for an earlier event. This plugin keeps
 * graphql's algorithm — the source stream from the root field, `execute` per
 * event — but resolves each event with `forEvent(context, event)`. It applies
 * to graphql-ws and SSE alike, since both subscribe through Yoga's envelop.
 *
 * Each event is resolved from the primary database: it follows a write that a
 * replica may not have replayed yet (see src/infra/read-routing.ts).
 *
 * One event fans out to every subscriber of its channel. Subscribers of one
 * event whose document (Yoga's parse cache hands out one per query text),
 * operation, variables and `sharedBy` key agree get one execution and its
 * result, not one each: identical work is done once.
 * @param forEvent the context one event is resolved with (see eventContext)
 * @param sharedBy what else a result depends on (the principal); undefined: never shared
 */
export function useEventContext<C extends object>(
  forEvent: (context: C, event: unknown) => C,
  sharedBy?: (context: C) => string | undefined,
): Plugin {
  const documents = new WeakMap<DocumentNode, number>();
  let documentCount = 0;
  const executions = new WeakMap<object, Map<string, Promise<ExecutionResult> | ExecutionResult>>();
  const run = (args: ExecutionArgs, event: unknown) => {
    const executeEvent = () => readFromPrimary(() => execute({ ...args, rootValue: event, contextValue: forEvent(args.contextValue as C, event) }));
    const principal = sharedBy?.(args.contextValue as C);
    if (principal === undefined || typeof event !== 'object' || event === null) return executeEvent();
    let document = documents.get(args.document);
    if (document === undefined) documents.set(args.document, (document = documentCount++));
    const key = `${document}|${args.operationName ?? ''}|${principal}|${JSON.stringify(args.variableValues ?? {})}`;
    let shared = executions.get(event);
    if (!shared) executions.set(event, (shared = new Map()));
    let result = shared.get(key);
    if (!result) shared.set(key, (result = executeEvent()));
    return result;
  };
  return {
    onSubscribe({ setSubscribeFn }) {
      setSubscribeFn(async (args: ExecutionArgs) => {
        const source = await createSourceEventStream(args);
        if (!isAsyncIterable(source)) return source;
        return mapEvents(source[Symbol.asyncIterator](), (event) => run(args, event));
      });
    },
  };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}

/** `return()` goes straight to the source, even while a `next()` waits: an unsubscribe never waits for an event. */
function mapEvents(
  source: AsyncIterator<unknown>,
  run: (event: unknown) => Promise<ExecutionResult> | ExecutionResult,
): AsyncIterableIterator<ExecutionResult> {
  const done = async (): Promise<IteratorReturnResult<undefined>> => {
    await source.return?.();
    return { value: undefined, done: true };
  };
  return {
    async next() {
      const item = await source.next();
      if (item.done) return { value: undefined, done: true };
      return { value: await run(item.value), done: false };
    },
    return: done,
    async throw(error: unknown) {
      await done();
      throw error;
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
