import { AsyncLocalStorage } from 'node:async_hooks';
import type { SqlDriverAdapter, SqlDriverAdapterFactory, SqlQuery, Transaction } from '@prisma/driver-adapter-utils';

/**
 * Counts the SQL statements that really reach the database, per request.
 * Wrapping the driver adapter (rather than listening to Prisma's query event)
 * keeps the async context, so each statement is charged to the request that
 * caused it — the number tests, logs and metrics report.
 */
export interface SqlScope {
  statements: number;
  durationMs: number;
  /** Filled only when a test asks for the text of the statements. */
  log?: string[];
  /** The arguments of each statement in `log`, as the driver adapter got them. */
  args?: unknown[][];
}

const storage = new AsyncLocalStorage<SqlScope>();

export function newSqlScope(recordText = false): SqlScope {
  return recordText ? { statements: 0, durationMs: 0, log: [], args: [] } : { statements: 0, durationMs: 0 };
}

export function runInSqlScope<T>(scope: SqlScope, fn: () => T): T {
  return storage.run(scope, fn);
}

export function currentSqlScope(): SqlScope | undefined {
  return storage.getStore();
}

async function counted<T>(query: SqlQuery, run: () => Promise<T>): Promise<T> {
  const scope = storage.getStore();
  if (!scope) return run();
  const started = performance.now();
  try {
    return await run();
  } finally {
    scope.statements += 1;
    scope.durationMs += performance.now() - started;
    scope.log?.push(query.sql);
    scope.args?.push(query.args);
  }
}

function wrapQueryable<T extends SqlDriverAdapter | Transaction>(target: T): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      if (prop === 'queryRaw' || prop === 'executeRaw') {
        return (query: SqlQuery) => counted(query, () => (obj[prop] as (q: SqlQuery) => Promise<unknown>).call(obj, query));
      }
      if (prop === 'startTransaction') {
        return async (...args: unknown[]) => wrapQueryable(await (obj as SqlDriverAdapter).startTransaction(...(args as [])));
      }
      const value = Reflect.get(obj, prop, receiver);
      return typeof value === 'function' ? value.bind(obj) : value;
    },
  });
}

export function countingAdapter<F extends SqlDriverAdapterFactory>(factory: F): F {
  return new Proxy(factory, {
    get(obj, prop, receiver) {
      if (prop === 'connect') return async () => wrapQueryable(await obj.connect());
      const value = Reflect.get(obj, prop, receiver);
      return typeof value === 'function' ? value.bind(obj) : value;
    },
  });
}
