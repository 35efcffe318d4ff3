import { createHash } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import { LRUCache } from 'lru-cache';
import pg from 'pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import type { Config } from '../config.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { routingAdapter } from './read-routing.js';
import { ReplicaMonitor, type ReplicaStatus } from './replica-monitor.js';
import { countingAdapter } from './sql-stats.js';
import type { ArgType, SqlDriverAdapter, SqlDriverAdapterFactory } from '@prisma/driver-adapter-utils';

export type { PrismaClient, ReplicaStatus };

/** One connection pool, as /readyz and the metrics show it. */
export interface PoolStat {
  /** `primary`, `replica-0`, … */
  pool: string;
  /** Connections open (idle + busy). */
  total: number;
  idle: number;
  /** Queries waiting for a connection. */
  waiting: number;
  max: number;
  /** Statements Prisma sent to this pool since start. */
  statements: number;
}

export interface Database {
  readonly prisma: PrismaClient;
  readonly kind: 'pglite' | 'postgres';
  /** A human description without credentials, for logs. */
  readonly description: string;
  ping(): Promise<void>;
  /**
   * One read statement sent through the driver adapter Prisma uses (so counted, and routed to a replica
   * where reads may go), without Prisma's query engine: for a statement written by hand whose rows are read
   * as they come (planned reads). Rows are objects keyed by column; values are as the driver gives them
   * (times as ISO-8601 strings, JSON as its text). Parameters: strings and integers, cast in the SQL.
   */
  queryRows<T extends object>(sql: string, args: readonly (string | number)[]): Promise<T[]>;
  /**
   * Opens DATABASE_POOL_MIN connections on every pool (in parallel) and checks
   * the replicas once, so the first requests neither wait for connections nor
   * skip the replicas. A replica that cannot be reached does not fail it.
   */
  warm(): Promise<void>;
  poolStats(): PoolStat[];
  /** Read replicas and whether they take reads now (empty without DATABASE_REPLICA_URLS). */
  replicas(): ReplicaStatus[];
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string | undefined;
  /** @default 10 */
  poolSize?: number;
  /** Connections warm() opens and the pool keeps while idle. @default 2 (at most poolSize) */
  poolMin?: number;
  /** How long a statement waits for a connection. @default 5000 */
  poolTimeoutMs?: number;
  /** @default 30000 */
  idleTimeoutMs?: number;
  /** statement_timeout of every connection; 0 leaves the server's. @default 30000 */
  statementTimeoutMs?: number;
  /** Prepare each distinct statement once per connection (see preparedStatementNames). @default true */
  preparedStatements?: boolean;
  /** Streaming replicas of `url` that take reads (see read-routing.ts). */
  replicaUrls?: readonly string[];
  /** @default 1000 */
  replicaMaxLagMs?: number;
  /** PGlite directory; `memory://` for an in-memory database (tests). */
  dataDir?: string;
}

export function databaseOptions(config: Config): DatabaseOptions {
  const d = config.database;
  return {
    url: d.url,
    poolSize: d.poolSize,
    poolMin: d.poolMin,
    poolTimeoutMs: d.poolTimeoutMs,
    idleTimeoutMs: d.idleTimeoutMs,
    statementTimeoutMs: d.statementTimeoutMs,
    preparedStatements: d.preparedStatements,
    replicaUrls: d.replicaUrls,
    replicaMaxLagMs: d.replicaMaxLagMs,
    dataDir: join(config.dataDir, 'pgdata'),
  };
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) return openPostgres(options.url, options);
  const dataDir = options.dataDir ?? 'memory://';
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
  const pglite = await PGlite.create(dataDir.startsWith('memory://') ? undefined : resolve(dataDir));
  const adapter = countingAdapter(new PrismaPGlite(pglite));
  const prisma = new PrismaClient({ adapter });
  return {
    prisma,
    queryRows: rowsQuery(adapter),
    kind: 'pglite',
    description: dataDir.startsWith('memory://') ? 'embedded PGlite (in memory)' : `embedded PGlite at ${resolve(dataDir)}`,
    ping: async () => void (await prisma.$queryRawUnsafe('SELECT 1')),
    warm: async () => undefined,
    poolStats: () => [],
    replicas: () => [],
    close: async () => {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}

/**
 * Names for Prisma's statements, so pg prepares each distinct SQL text once per
 * connection and later requests only bind and execute it. Unnamed, every
 * statement was parsed and planned again: for the nested read's statement 0.27 ms
 * of parse and 0.6 ms of planning at bind in PostgreSQL, on top of 1.6 ms of
 * execution. A name is a hash of the text; the memo of names is bounded.
 */
function preparedStatementNames(): (query: { sql: string }) => string {
  const names = new LRUCache<string, string>({ max: 1_000 });
  return ({ sql }) => {
    let name = names.get(sql);
    if (name === undefined) {
      name = `parley_${createHash('sha1').update(sql).digest('base64url')}`;
      names.set(sql, name);
    }
    return name;
  };
}

interface NamedPool {
  name: string;
  pool: pg.Pool;
  statements: number;
}

function openPostgres(url: string, options: DatabaseOptions): Database {
  const max = options.poolSize ?? 10;
  const min = Math.min(options.poolMin ?? 2, max);
  const timeoutMs = options.poolTimeoutMs ?? 5_000;
  const statementTimeoutMs = options.statementTimeoutMs ?? 30_000;
  const maxLagMs = options.replicaMaxLagMs ?? 1_000;
  const open = (name: string, connectionString: string): NamedPool => {
    const pool = new pg.Pool({
      connectionString,
      max,
      min,
      connectionTimeoutMillis: timeoutMs,
      idleTimeoutMillis: options.idleTimeoutMs ?? 30_000,
      application_name: 'parley',
      // Sent at connection start-up, so it holds for every statement and transaction.
      ...(statementTimeoutMs > 0 ? { statement_timeout: statementTimeoutMs } : {}),
    });
    // A server going away errors idle connections; the pool replaces them. Unhandled, it would end the process.
    pool.on('error', () => undefined);
    return { name, pool, statements: 0 };
  };
  const primary = open('primary', url);
  const replicas = (options.replicaUrls ?? []).map((replicaUrl, i) => open(`replica-${i}`, replicaUrl));
  const all = [primary, ...replicas];
  const byName = new Map(all.map((p) => [p.name, p]));
  const monitor = replicas.length
    ? new ReplicaMonitor(primary.pool, replicas, { intervalMs: Math.max(1, Math.floor(maxLagMs / 4)), maxLagMs })
    : undefined;

  const pgOptions = options.preparedStatements === false ? undefined : { statementNameGenerator: preparedStatementNames() };
  const adapter = routingAdapter(
    // Pools made here are closed here: PrismaPg leaves a pool it was given open on $disconnect.
    { name: primary.name, factory: new PrismaPg(primary.pool, pgOptions) },
    replicas.map((r) => ({ name: r.name, factory: new PrismaPg(r.pool, pgOptions) })),
    {
      pickReplica: () => monitor?.pick(),
      replicaFailed: (index, error) => monitor?.failed(index, error),
      onStatement: (name) => void (byName.get(name)!.statements += 1),
      mapError: (error, name) => poolTimeout(error, name, timeoutMs),
    },
  );
  const counted = countingAdapter(adapter);
  const prisma = new PrismaClient({ adapter: counted });
  const where = (u: string) => {
    const parsed = new URL(u);
    return `${parsed.hostname}:${parsed.port || 5432}${parsed.pathname}`;
  };
  const replicaNote = replicas.length ? `, ${replicas.length} read replica(s): ${options.replicaUrls!.map(where).join(', ')}` : '';
  // Until the first check answers, every read goes to the primary.
  const firstCheck = monitor?.start();

  return {
    prisma,
    queryRows: rowsQuery(counted),
    kind: 'postgres',
    description: `PostgreSQL ${where(url)} (pool ${max}${replicaNote})`,
    ping: async () => void (await prisma.$queryRawUnsafe('SELECT 1')),
    async warm() {
      // Holding `min` clients at once makes the pool open that many (an idle one would be handed out again).
      const fill = async ({ pool }: NamedPool) => {
        const clients = await Promise.allSettled(Array.from({ length: min }, () => pool.connect()));
        for (const c of clients) if (c.status === 'fulfilled') c.value.release();
        const failed = clients.find((c) => c.status === 'rejected');
        if (failed) throw failed.reason;
      };
      // The primary must be reachable; a replica that is not is simply not read from.
      await Promise.all([fill(primary), ...replicas.map((r) => fill(r).catch(() => undefined)), firstCheck]);
    },
    poolStats: () =>
      all.map(({ name, pool, statements }) => ({
        pool: name,
        total: pool.totalCount,
        idle: pool.idleCount,
        waiting: pool.waitingCount,
        max,
        statements,
      })),
    replicas: () => monitor?.status() ?? [],
    async close() {
      await monitor?.stop();
      await prisma.$disconnect();
      await Promise.all(all.map(({ pool }) => (pool.ended ? undefined : pool.end())));
    },
  };
}

/**
 * Database.queryRows over an adapter factory. Measured on a nested cursor page: the same statement through
 * `$queryRawUnsafe` spent ~9 % of the request's CPU in Prisma's client (argument typing, its query
 * interpreter, per-value conversion) for rows that are then read as they are.
 */
function rowsQuery(factory: SqlDriverAdapterFactory): Database['queryRows'] {
  let driver: Promise<SqlDriverAdapter> | undefined;
  return async <T extends object>(sql: string, args: readonly (string | number)[]) => {
    driver ??= factory.connect();
    const argTypes: ArgType[] = args.map((arg) => ({ scalarType: typeof arg === 'number' ? 'int' : 'string', arity: 'scalar' }));
    const { columnNames, rows } = await (await driver).queryRaw({ sql, args: [...args], argTypes });
    return rows.map((row) => {
      const out: Record<string, unknown> = {};
      for (let i = 0; i < columnNames.length; i++) out[columnNames[i]!] = row[i];
      return out as T;
    });
  };
}

export const DATABASE_UNAVAILABLE = 'DATABASE_UNAVAILABLE';

/** Raised when no connection became free within DATABASE_POOL_TIMEOUT_MS (Prisma keeps `code`). */
export class DatabaseUnavailable extends Error {
  override name = 'DatabaseUnavailable';
  readonly code = DATABASE_UNAVAILABLE;
}

/** pg-pool's own errors for "no connection in time" (waiting for a free one, or opening one). */
const POOL_TIMEOUT = /^(timeout exceeded when trying to connect|Connection terminated due to connection timeout)/;

function poolTimeout(error: unknown, pool: string, timeoutMs: number): unknown {
  if (!(error instanceof Error) || !POOL_TIMEOUT.test(error.message)) return error;
  return new DatabaseUnavailable(`no ${pool} database connection within ${timeoutMs} ms (DATABASE_POOL_TIMEOUT_MS)`);
}

/**
 * Whether an error (as Prisma hands it on) means the database could not be
 * used — pool exhausted, server unreachable, connection lost — rather than a
 * statement that failed: the client may retry later.
 */
/**
 * Every way a database can be unreachable, shutting down, starting up or out of
 * connections, however it reaches us: Prisma's own codes, a driver adapter
 * error wrapped in P2010 (raw statements) with its `kind` or SQLSTATE, pg's
 * errors and Node's socket errors — walked through `cause`, `meta` and
 * `originalError`. Found under load with PostgreSQL stopped and restarted:
 * raw statements came back as P2010 { driverAdapterError: DatabaseNotReachable }.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  const seen = new Set<unknown>();
  const pending: unknown[] = [error];
  // A socket error counts only on the way to the database (a provider's ECONNREFUSED is not ours to call so).
  let database = false;
  while (pending.length) {
    const current = pending.pop();
    if (typeof current !== 'object' || current === null || seen.has(current)) continue;
    seen.add(current);
    const node = current as {
      name?: unknown;
      code?: unknown;
      severity?: unknown;
      originalCode?: unknown;
      kind?: unknown;
      message?: unknown;
      cause?: unknown;
      meta?: { driverAdapterError?: unknown };
      originalError?: unknown;
    };
    database ||=
      (typeof node.name === 'string' && /^(Prisma|DriverAdapter|DatabaseUnavailable)/.test(node.name)) || typeof node.severity === 'string';
    if (typeof node.code === 'string') {
      if (node.code === DATABASE_UNAVAILABLE || UNAVAILABLE_PRISMA_CODES.has(node.code)) return true;
      if (typeof node.severity === 'string' && isUnavailableSqlState(node.code)) return true;
      if (database && UNAVAILABLE_SOCKET_CODES.has(node.code)) return true;
    }
    if (typeof node.originalCode === 'string' && isUnavailableSqlState(node.originalCode)) return true;
    if (typeof node.kind === 'string' && UNAVAILABLE_ADAPTER_KINDS.has(node.kind)) return true;
    if (typeof node.message === 'string' && UNAVAILABLE_MESSAGE.test(node.message)) return true;
    pending.push(node.cause, node.meta?.driverAdapterError, node.originalError);
  }
  return false;
}

/** P1001 can't reach the server, P1002 timed out reaching it, P1008 timed out, P1017 connection closed, P2024 no pool connection in time, P2037 too many connections. */
const UNAVAILABLE_PRISMA_CODES = new Set(['P1001', 'P1002', 'P1008', 'P1017', 'P2024', 'P2037']);
/** @prisma/adapter-pg's names for socket failures and a full server. */
const UNAVAILABLE_ADAPTER_KINDS = new Set(['DatabaseNotReachable', 'ConnectionClosed', 'SocketTimeout', 'TooManyConnections']);
const UNAVAILABLE_SOCKET_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ECONNABORTED',
  'EAI_AGAIN',
]);
const UNAVAILABLE_MESSAGE =
  /Can't reach database server|Server has closed the connection|Connection terminated|terminating connection due to|the database system is (starting up|shutting down|in recovery mode|not yet accepting connections)|Unable to start a transaction in the given time|Timed out fetching a new connection/i;

/** SQLSTATE class 08 (connection exception), 57P01-57P03 (shutdown, crash, cannot connect now), 53300 (too many connections). */
function isUnavailableSqlState(code: string): boolean {
  return /^08[0-9A-Z]{3}$/.test(code) || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300';
}
