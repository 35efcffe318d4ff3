import { request } from 'node:http';
import { expect } from 'vitest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { databaseOptions, openDatabase, type Database, type PrismaClient } from '../../src/infra/db.js';
import type { Logger } from '../../src/infra/log.js';
import { newSqlScope, runInSqlScope } from '../../src/infra/sql-stats.js';
import { createProduct } from '../../src/services/products.js';
import type { Store } from '../../src/services/store.js';
import type { DatabaseVariant, TestDatabase } from './db.js';

export const TEST_ADMIN_TOKEN = 'adm_test_admin_token_0123456789abcdef';

export interface GqlResult<T = any> {
  status: number;
  data: T;
  errors: { message: string; path?: (string | number)[]; extensions?: Record<string, any> }[] | undefined;
  /** SQL statements this request sent to the database. */
  sql: string[];
  /** The arguments of each of `sql`. */
  sqlArgs: unknown[][];
}

export interface RequestOptions {
  variables?: Record<string, unknown>;
  /** Product key sent as `Authorization: Bearer`. */
  key?: string;
  admin?: boolean;
  headers?: Record<string, string>;
}

export interface TestApp {
  app: App;
  database: TestDatabase;
  prisma: PrismaClient;
  /** What services write through: the app's database, cache and live events. */
  store: Store;
  logged: { level: string; msg: string; fields?: Record<string, unknown> }[];
  gql<T = any>(query: string, options?: RequestOptions): Promise<GqlResult<T>>;
  /** Creates a product through the service; returns its database id, secret key and publishable key. */
  product(name?: string): Promise<{ id: string; key: string; publishableKey: string }>;
  dispose(): Promise<void>;
}

export function recordingLogger(): { log: Logger; logged: TestApp['logged'] } {
  const logged: TestApp['logged'] = [];
  const at = (level: string) => (msg: string, fields?: Record<string, unknown>) => void logged.push({ level, msg, fields });
  return { logged, log: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error'), always: at('info') } };
}

export interface TestAppOptions {
  /**
   * Build the app on a database another TestApp opened (a second node, or another
   * configuration, without paying for a new database); disposing this app leaves it open.
   */
  shared?: TestDatabase;
  /** The app's logger instead of the recording one (`logged` then stays empty). */
  log?: Logger;
  /** What the app sees of the database (e.g. one whose statements wait for the test). */
  wrapDatabase?: (db: Database) => Database;
}

export async function createTestApp(
  variant: DatabaseVariant,
  env: Record<string, string> = {},
  { shared, log: customLog, wrapDatabase }: TestAppOptions = {},
): Promise<TestApp> {
  const database = shared ?? (await variant.open());
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-test-'));
  const config = loadConfig({
    NODE_ENV: 'test',
    PARLEY_DATA_DIR: dataDir,
    PARLEY_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    PARLEY_DEMO: 'false',
    PARLEY_LOG_LEVEL: 'silent',
    ...env,
  });
  const { log, logged } = recordingLogger();
  const app = await buildApp(config, { db: wrapDatabase ? wrapDatabase(database.db) : database.db, log: customLog ?? log });
  const prisma = database.db.prisma;
  return {
    app,
    database,
    prisma,
    store: { prisma, cache: app.deps.cache, events: app.deps.events },
    logged,
    gql: async (query, options = {}) => {
      const headers: Record<string, string> = { 'content-type': 'application/json', ...options.headers };
      if (options.key) headers.authorization = `Bearer ${options.key}`;
      if (options.admin) headers['x-admin-token'] = TEST_ADMIN_TOKEN;
      const body = JSON.stringify({ query, variables: options.variables });
      // As every HTTP client sends it for a whole body (and as the response cache's early lookup needs it).
      headers['content-length'] ??= String(Buffer.byteLength(body));
      const scope = newSqlScope(true);
      const response = await runInSqlScope(scope, () => app.yoga.fetch('http://parley.test/graphql', { method: 'POST', headers, body }));
      const result = (await response.json()) as { data: any; errors?: GqlResult['errors'] };
      return { status: response.status, data: result.data, errors: result.errors, sql: scope.log ?? [], sqlArgs: scope.args ?? [] };
    },
    product: async (name = 'Test product') => {
      const { product, key, publishableKey } = await createProduct(prisma, { name });
      return { id: product.id, key, publishableKey };
    },
    dispose: async () => {
      await app.stop();
      if (!shared) await database.dispose();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/**
 * An app on the PostgreSQL database `env.DATABASE_URL` names, its pool opened from `env` as
 * production opens it (DATABASE_POOL_*, replicas, timeouts), not the test default.
 * `dispose` closes the app, then the pool.
 */
export async function createAppWithOwnPool(env: Record<string, string>): Promise<{ t: TestApp; db: Database; dispose(): Promise<void> }> {
  const db = await openDatabase(databaseOptions(loadConfig(env)));
  const shared: TestDatabase = { db, url: env.DATABASE_URL, dispose: () => db.close() };
  const t = await createTestApp({ name: 'postgres', available: true, open: async () => shared }, env, { shared });
  return {
    t,
    db,
    dispose: async () => {
      await t.dispose();
      await db.close();
    },
  };
}

/** Two Parley nodes on one database with the same `env` (its REDIS_URL): A, and B, which also listens (`wsB`). */
export interface TwoNodes {
  a: TestApp;
  b: TestApp;
  /** B's GraphQL WebSocket URL. */
  wsB: string;
  dispose(): Promise<void>;
}

export async function createTwoNodes(variant: DatabaseVariant, env: Record<string, string>): Promise<TwoNodes> {
  const a = await createTestApp(variant, env);
  try {
    const b = await createAppWithOwnPool({ DATABASE_URL: a.database.url!, ...env });
    const wsB = `ws://127.0.0.1:${(await b.t.app.start(0, '127.0.0.1')).port}/graphql`;
    return {
      a,
      b: b.t,
      wsB,
      dispose: async () => {
        await b.dispose();
        await a.dispose();
      },
    };
  } catch (error) {
    await a.dispose();
    throw error;
  }
}

/** The data of a result that must have no errors (the errors are the failure message). */
export function dataOf<T>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}

/** `sendMessage` without streaming: the question's id and its reply's. */
export async function sendQuestion(t: TestApp, key: string, conversationId: string, content: string): Promise<readonly [string, string]> {
  const sent = dataOf(
    await t.gql(`mutation($c: ID!, $text: String!) { sendMessage(input: { conversationId: $c, content: $text }) { message { id } reply { id } } }`, {
      key,
      variables: { c: conversationId, text: content },
    }),
  ).sendMessage;
  return [sent.message.id as string, sent.reply.id as string] as const;
}

/**
 * A POST to a listening server's /graphql on its own connection (no keep-alive pool), the body as given
 * (so a test can announce a length or send it chunked); the answer's status and parsed JSON body.
 */
export function rawPost(port: number, body: string, headers: Record<string, string | number>): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: '127.0.0.1', port, path: '/graphql', method: 'POST', agent: false, headers: { 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}
