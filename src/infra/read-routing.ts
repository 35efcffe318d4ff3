import { AsyncLocalStorage } from 'node:async_hooks';
import type { SqlDriverAdapter, SqlDriverAdapterFactory, SqlQuery, Transaction } from '@prisma/driver-adapter-utils';
import { LRUCache } from 'lru-cache';

/**
 * Read routing: one PrismaClient whose driver adapter sends each statement to
 * the primary or to a streaming replica.
 *
 * - Writes (executeRaw, a queryRaw that is not read-only, any transaction) go
 *   to the primary and pin the current routing scope to it, so everything the
 *   request reads afterwards sees its own writes.
 * - A read-only queryRaw goes to a replica only inside a routing scope that is
 *   not pinned (an HTTP request, a graphql-ws operation) and only while a
 *   replica is usable (fresh enough, see replica-monitor.ts), round-robin.
 * - No scope means the primary: start-up, migrations, cache warming and
 *   background work are never routed unless they ask for it.
 *
 * Replicas never make a statement fail: one whose replica cannot answer is run
 * again on the primary (a read-only statement can be).
 */

interface RoutingScope {
  primary: boolean;
  parent: RoutingScope | undefined;
}

const storage = new AsyncLocalStorage<RoutingScope>();

/** Runs `fn` in a new routing scope whose reads may go to replicas (one per request or socket operation). */
export function runWithReadRouting<T>(fn: () => T): T {
  return runIn({ primary: false, parent: undefined }, fn);
}

/** Runs `fn` with every statement on the primary (cache fills, subscription events). */
export function readFromPrimary<T>(fn: () => T): T {
  return runIn({ primary: true, parent: storage.getStore() }, fn);
}

/**
 * Prisma's promises are lazy: the query runs when `then` is first called, which
 * an `await` outside the scope would do outside it. So `then` is called here.
 */
function runIn<T>(scope: RoutingScope, fn: () => T): T {
  return storage.run(scope, () => {
    const result = fn();
    if (typeof (result as { then?: unknown } | null)?.then !== 'function') return result;
    return new Promise((resolve, reject) => (result as PromiseLike<unknown>).then(resolve, reject)) as T;
  });
}

/** Sends the rest of the current scope (and the scopes it is nested in) to the primary. */
export function pinToPrimary(): void {
  for (let scope = storage.getStore(); scope; scope = scope.parent) scope.primary = true;
}

/** Whether a statement run now could go to a replica (a scope exists and is not pinned). */
export function replicaReadsAllowed(): boolean {
  const scope = storage.getStore();
  return scope !== undefined && !scope.primary;
}

/** Whether a write now would pin something: a scope here or around it that is not pinned yet. */
function pinnable(): boolean {
  for (let scope = storage.getStore(); scope; scope = scope.parent) if (!scope.primary) return true;
  return false;
}

// ---------------------------------------------------------------------------
// Which statements only read.

const WRITE_WORDS = new Set(['INSERT', 'UPDATE', 'DELETE', 'MERGE', 'INTO']);
/** SELECTs of these change state or take locks that only mean something on the primary. */
const SIDE_EFFECT_FUNCTIONS = new Set(['NEXTVAL', 'SETVAL', 'SET_CONFIG', 'PG_NOTIFY', 'TXID_CURRENT', 'PG_CURRENT_XACT_ID']);
const sideEffect = (word: string) =>
  SIDE_EFFECT_FUNCTIONS.has(word) || word.startsWith('PG_ADVISORY') || word.startsWith('PG_TRY_ADVISORY') || word.startsWith('LO_');

/**
 * Whether `sql` certainly only reads, by a conservative look at its words
 * (comments, string literals, quoted identifiers and dollar quotes skipped):
 *
 * - its first word is SELECT, or WITH (a CTE: data-modifying ones contain
 *   INSERT/UPDATE/DELETE/MERGE, which disqualify it);
 * - no INSERT, UPDATE, DELETE, MERGE or INTO anywhere (SELECT … INTO creates a
 *   table; FOR UPDATE / FOR NO KEY UPDATE lock rows);
 * - no FOR SHARE / FOR KEY SHARE locking clause;
 * - no call of a function with side effects or session state: advisory locks
 *   (pg_advisory_lock … a lock taken on a replica protects nothing), nextval,
 *   setval, set_config, pg_notify, txid_current, pg_current_xact_id, lo_*;
 * - one statement only (nothing after a `;`), and the text scans cleanly.
 *
 * Anything else — SHOW, EXPLAIN, VALUES, TABLE, a statement starting with `(`
 * — counts as a write and goes to the primary. A user-defined function that
 * writes cannot be seen from here: call it with executeRaw or in a transaction.
 */
export function isReadOnlySql(sql: string): boolean {
  const words = sqlWords(sql);
  if (words === null || words.length === 0) return false;
  if (words[0] !== 'SELECT' && words[0] !== 'WITH') return false;
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!;
    if (word === ';') {
      if (i < words.length - 1) return false;
      continue;
    }
    if (WRITE_WORDS.has(word) || sideEffect(word)) return false;
    if (word === 'FOR' && (words[i + 1] === 'SHARE' || words[i + 1] === 'KEY')) return false;
  }
  return true;
}

/**
 * The bare words of `sql`, upper-cased, and `;`s (and what precedes the first
 * word, if anything); null when a literal, quoted identifier or comment never
 * ends (then nothing about the text is certain). Runs on every routed
 * statement: character codes, no regular expressions per character.
 */
function sqlWords(sql: string): string[] | null {
  const words: string[] = [];
  const n = sql.length;
  let i = 0;
  while (i < n) {
    const c = sql.charCodeAt(i);
    if (c === DASH && sql.charCodeAt(i + 1) === DASH) {
      const end = sql.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === SLASH && sql.charCodeAt(i + 1) === STAR) {
      // Block comments nest in PostgreSQL.
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        const d = sql.charCodeAt(i);
        if (d === SLASH && sql.charCodeAt(i + 1) === STAR) {
          depth += 1;
          i += 2;
        } else if (d === STAR && sql.charCodeAt(i + 1) === SLASH) {
          depth -= 1;
          i += 2;
        } else i += 1;
      }
      if (depth > 0) return null;
    } else if (c === QUOTE || c === DOUBLE_QUOTE) {
      // E'…' strings take backslash escapes; in the others a quote is doubled.
      const prefix = sql.charCodeAt(i - 1);
      const escapes = c === QUOTE && (prefix === 69 || prefix === 101) && !isWordChar(sql.charCodeAt(i - 2));
      i += 1;
      for (;;) {
        if (i >= n) return null;
        const d = sql.charCodeAt(i);
        if (escapes && d === BACKSLASH) i += 2;
        else if (d === c && sql.charCodeAt(i + 1) === c) i += 2;
        else if (d === c) break;
        else i += 1;
      }
      i += 1;
    } else if (c === DOLLAR && (isWordStart(sql.charCodeAt(i + 1)) || sql.charCodeAt(i + 1) === DOLLAR)) {
      let j = i + 1;
      while (j < n && isWordChar(sql.charCodeAt(j)) && sql.charCodeAt(j) !== DOLLAR) j += 1;
      if (sql.charCodeAt(j) === DOLLAR) {
        const tag = sql.slice(i, j + 1);
        const end = sql.indexOf(tag, j + 1);
        if (end === -1) return null;
        i = end + tag.length;
      } else i = j;
    } else if (isWordStart(c)) {
      let j = i + 1;
      while (j < n && isWordChar(sql.charCodeAt(j))) j += 1;
      words.push(sql.slice(i, j).toUpperCase());
      i = j;
    } else if (isDigit(c)) {
      // A number (or a parameter's digits after `$`), exponent included: `1e5` holds no word.
      while (i < n && (isDigit(sql.charCodeAt(i)) || sql.charCodeAt(i) === DOT || sql.charCodeAt(i) === UNDERSCORE)) i += 1;
      const e = sql.charCodeAt(i);
      if (e === 69 || e === 101) {
        let j = i + 1;
        if (sql.charCodeAt(j) === 43 || sql.charCodeAt(j) === 45) j += 1;
        if (isDigit(sql.charCodeAt(j))) {
          while (j < n && isDigit(sql.charCodeAt(j))) j += 1;
          i = j;
        }
      }
    } else {
      // `;` matters anywhere; anything else only before the first word (then it is not a keyword).
      if (c === SEMICOLON || (words.length === 0 && !isSpace(c))) words.push(sql[i]!);
      i += 1;
    }
  }
  return words;
}

const [DASH, SLASH, STAR, QUOTE, DOUBLE_QUOTE, BACKSLASH, DOLLAR, DOT, UNDERSCORE, SEMICOLON] = [...'-/*\'"\\$._;'].map((ch) => ch.charCodeAt(0));
const isDigit = (c: number) => c >= 48 && c <= 57;
// Unquoted identifiers: letters, `_`, and (PostgreSQL) any non-ASCII character; then digits and `$` too.
const isWordStart = (c: number) => (c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95 || c >= 128;
const isWordChar = (c: number) => isWordStart(c) || isDigit(c) || c === 36;
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13);

// ---------------------------------------------------------------------------
// Products written recently read from the primary.

/**
 * Products written in the last `windowMs` (by this node, or by another one that
 * announced it through the cache invalidations): their requests read from the
 * primary, since a replica may not have the write yet. Bounded: the oldest
 * entries go first past `max`.
 */
export class RecentWrites {
  private readonly written: LRUCache<string, true>;

  constructor(windowMs: number, max = 100_000) {
    this.written = new LRUCache({ max, ttl: windowMs, ttlAutopurge: false });
  }

  /** Notes the products named by cache tags (`product:<id>` and `product:<id>:…`). */
  noteTags(tags: readonly string[]): void {
    for (const tag of tags) {
      const id = /^product:([^:]+)/.exec(tag)?.[1];
      if (id) this.written.set(id, true);
    }
  }

  has(productId: string): boolean {
    return this.written.has(productId);
  }
}

// ---------------------------------------------------------------------------
// The routing driver adapter.

export interface RoutedPool {
  /** `primary`, `replica-0`, … (metrics labels). */
  name: string;
  factory: SqlDriverAdapterFactory;
}

export interface RoutingOptions {
  /** Index of the replica the next read goes to (round-robin over usable ones), or undefined for none. */
  pickReplica(): number | undefined;
  /** A replica failed a statement that was then run on the primary. */
  replicaFailed(index: number, error: unknown): void;
  /** One statement sent to this pool. */
  onStatement(pool: string): void;
  /** What a statement's error becomes (e.g. a pool timeout as DATABASE_UNAVAILABLE). */
  mapError(error: unknown, pool: string): unknown;
}

/**
 * A driver adapter factory over the primary's and the replicas' factories.
 * Sits under countingAdapter (sql-stats.ts), so every statement is still
 * charged to its request whichever pool ran it.
 */
export function routingAdapter(primary: RoutedPool, replicas: RoutedPool[], options: RoutingOptions): SqlDriverAdapterFactory {
  return {
    provider: primary.factory.provider,
    adapterName: primary.factory.adapterName,
    async connect() {
      const [main, ...others] = await Promise.all([primary, ...replicas].map((p) => p.factory.connect()));
      return routedConnection(
        main!,
        others,
        primary.name,
        replicas.map((r) => r.name),
        options,
      );
    },
  };
}

function routedConnection(
  primary: SqlDriverAdapter,
  replicas: SqlDriverAdapter[],
  primaryName: string,
  replicaNames: string[],
  options: RoutingOptions,
): SqlDriverAdapter {
  const onPrimary = async <T>(run: () => Promise<T>): Promise<T> => {
    options.onStatement(primaryName);
    try {
      return await run();
    } catch (error) {
      throw options.mapError(error, primaryName);
    }
  };
  // A write pins the scope (only meaningful when there is a replica to avoid).
  const write = () => {
    if (replicas.length) pinToPrimary();
  };
  // Statements of a transaction are the primary's, counted and mapped like the others.
  const onPrimaryTransaction = (tx: Transaction): Transaction =>
    new Proxy(tx, {
      get(obj, prop, receiver) {
        if (prop === 'queryRaw' || prop === 'executeRaw') {
          return (query: SqlQuery) => onPrimary(() => (obj[prop] as (q: SqlQuery) => Promise<unknown>).call(obj, query));
        }
        const value = Reflect.get(obj, prop, receiver);
        return typeof value === 'function' ? value.bind(obj) : value;
      },
    });

  return {
    provider: primary.provider,
    adapterName: primary.adapterName,
    async queryRaw(query) {
      // Only classified when it matters: a write pins (a cache fill's too), a read may go to a replica.
      if (replicas.length && pinnable()) {
        if (!isReadOnlySql(query.sql)) write();
        else if (replicaReadsAllowed()) {
          const index = options.pickReplica();
          if (index !== undefined) {
            options.onStatement(replicaNames[index]!);
            try {
              return await replicas[index]!.queryRaw(query);
            } catch (error) {
              if (!retryOnPrimary(error)) throw options.mapError(error, replicaNames[index]!);
              options.replicaFailed(index, error);
            }
          }
        }
      }
      return onPrimary(() => primary.queryRaw(query));
    },
    executeRaw(query) {
      write();
      return onPrimary(() => primary.executeRaw(query));
    },
    executeScript(script) {
      write();
      return onPrimary(() => primary.executeScript(script));
    },
    async startTransaction(isolationLevel) {
      write();
      try {
        return onPrimaryTransaction(await primary.startTransaction(isolationLevel));
      } catch (error) {
        throw options.mapError(error, primaryName);
      }
    },
    getConnectionInfo: primary.getConnectionInfo ? () => primary.getConnectionInfo!() : undefined,
    async dispose() {
      await Promise.allSettled([primary, ...replicas].map((a) => a.dispose()));
    },
  };
}

/** SQLSTATE classes a replica answers with when it, not the statement, is the problem. */
const REPLICA_TROUBLE = /^(08|40|53|57P)/;

/**
 * Whether a replica's failure is the replica's (unreachable, restarting, out of
 * connections, cancelled by recovery) rather than the statement's: then the
 * primary runs it. A statement that is itself wrong fails as it would anywhere.
 */
function retryOnPrimary(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const cause = (error as { cause?: { kind?: string; code?: string; originalCode?: string } }).cause;
  if (error.name !== 'DriverAdapterError' || !cause) return true; // pool timeouts, lost connections
  const sqlState = cause.originalCode ?? (cause.kind === 'postgres' ? cause.code : undefined);
  return sqlState === undefined ? cause.kind !== 'postgres' : REPLICA_TROUBLE.test(sqlState);
}
