import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError } from 'graphql';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import type { Config } from './config.js';
import { createContext, eventContext, type AppDeps, type Context } from './context.js';
import { ParleyError } from './errors.js';
import { createCache } from './infra/cache/index.js';
import { warmCache } from './warm.js';
import { databaseOptions, openDatabase, type Database } from './infra/db.js';
import { createLogger, type Logger } from './infra/log.js';
import { migrate, migrationsApplied } from './infra/migrate.js';
import { createPubSub } from './infra/pubsub/index.js';
import { runInSqlScope, newSqlScope } from './infra/sql-stats.js';
import { createMaskError } from './plugins/errors.js';
import { useRequestDedup } from './plugins/dedup.js';
import { useEventContext } from './plugins/event-context.js';
import { usePageSizeLimit } from './plugins/page-size.js';
import { schema } from './schema/index.js';
import { authenticate, credentialsFromHeaders, type Credentials } from './services/auth.js';
import { loadOrCreateAdminToken } from './services/admin-token.js';
import { createLiveEvents, type ParleyEvents } from './services/events.js';
import { createTyping, memoryTypingStore, redisTypingStore } from './services/typing.js';
import { seedDemo, type DemoSeed } from './services/seed.js';
import { MAX_PAGE_SIZE } from './services/validation.js';

export interface App {
  readonly deps: AppDeps;
  readonly yoga: YogaServerInstance<Record<string, unknown>, Context>;
  /** Set when this start seeded or found the demo product. */
  readonly demo: DemoSeed | null;
  start(port?: number, host?: string): Promise<{ url: string; port: number }>;
  stop(): Promise<void>;
}

export interface BuildOptions {
  /** Use this database instead of opening one from the config (tests share one per file). */
  db?: Database;
  log?: Logger;
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<App> {
  const log = options.log ?? createLogger(config.logLevel);
  const db = options.db ?? (await openDatabase(databaseOptions(config)));
  const migration = await migrate(db.prisma);
  if (migration.applied.length) log.info('migrations applied', { applied: migration.applied });
  const adminToken = config.adminToken ?? loadOrCreateAdminToken(config.dataDir).token;
  const demo = config.demo ? await seedDemo(db.prisma, config.dataDir) : null;
  const cache = await createCache(config, log);
  const pubsub = await createPubSub<ParleyEvents>({ redisUrl: config.redis.url, prefix: config.redis.prefix, log });
  const events = createLiveEvents(pubsub, log);
  const typingStore = pubsub.redis ? redisTypingStore(pubsub.redis, config.redis.prefix) : memoryTypingStore();
  const typing = createTyping({ events, store: typingStore, ttlMs: config.live.typingTtlMs, log });
  const deps: AppDeps = { config, db, log, adminToken, cache, pubsub, events, typing };
  const store = { prisma: db.prisma, cache, events };
  const warmed = await warmCache(deps, config.cache.warmProducts);
  if (warmed.products) log.info('cache warmed', { products: warmed.products, ms: warmed.ms, caches: 'productByKey, productStats, viewer knowledge first page' });

  const maskError = createMaskError(log);
  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    graphiql: config.env !== 'production' ? { title: 'Parley', subscriptionsProtocol: 'WS' } : false,
    maskedErrors: { maskError },
    // Yoga logs every error that maskError replaced, i.e. every expected error
    // (UNAUTHENTICATED, NOT_FOUND, ...) as well; createMaskError already logs the
    // unexpected ones, so Yoga's own output goes to our logger at debug level.
    logging: yogaLogger(log),
    plugins: [
      usePageSizeLimit({ max: MAX_PAGE_SIZE }),
      useRequestDedup({ onJoin: () => cache.countDedupJoin() }),
      // A subscription event's result depends on the event, the operation and who asks: nothing else.
      useEventContext<Context>(eventContext, (ctx) => `${ctx.product?.id ?? '-'}|${ctx.isAdmin}`),
    ],
    context: async (initial) => {
      const credentials = (initial as { credentials?: Credentials }).credentials ?? credentialsFromHeaders(initial.request.headers);
      try {
        return createContext(deps, await authenticate(store, adminToken, credentials));
      } catch (error) {
        if (error instanceof ParleyError) {
          throw new GraphQLError(error.message, { extensions: { code: error.code, http: { status: 401 } } });
        }
        throw error;
      }
    },
  });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      void readiness(db).then((ready) => json(res, ready.ok ? 200 : 503, ready));
      return;
    }
    // Each request gets its own SQL scope so statements are counted per request.
    runInSqlScope(newSqlScope(), () => yoga(req, res));
  });

  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  const wsServer = useServer<Record<string, unknown>, { credentials: Credentials }>(
    {
      onConnect: async (ctx) => {
        const credentials = wsCredentials(ctx.connectionParams ?? {}, ctx.extra.request);
        // No credentials at all: 4401 Unauthorized (graphql-ws' close after `false` is then a no-op);
        // credentials that fail: graphql-ws' own 4403 Forbidden.
        if (!credentials.productKey && !credentials.adminToken && credentials.invalid === undefined) {
          ctx.extra.socket.close(CloseCode.Unauthorized, 'Unauthorized');
          return false;
        }
        try {
          await authenticate(store, adminToken, credentials);
        } catch {
          return false;
        }
        ctx.extra.credentials = credentials;
        return true;
      },
      onSubscribe: async (ctx, _id, payload) => {
        const enveloped = yoga.getEnveloped({ credentials: ctx.extra.credentials, request: undefined, params: payload });
        const document = enveloped.parse(payload.query);
        const errors = enveloped.validate(enveloped.schema, document);
        if (errors.length) return errors;
        return {
          schema: enveloped.schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue: await enveloped.contextFactory(),
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
        };
      },
      // An error thrown before execution (a plugin refusing the operation) is that operation's
      // error, as over HTTP: graphql-ws would otherwise close the socket and every subscription on it.
      execute: (args) => asResult(() => (args.rootValue as { execute: typeof import('graphql').execute }).execute(args)),
      subscribe: (args) => asResult(() => (args.rootValue as { subscribe: typeof import('graphql').subscribe }).subscribe(args)),
    },
    wss,
    config.live.wsKeepAliveMs,
  );

  async function asResult<T>(operation: () => T | Promise<T>): Promise<T | { errors: GraphQLError[] }> {
    try {
      return await operation();
    } catch (error) {
      return { errors: [maskError(error, 'Unexpected error.') as GraphQLError] };
    }
  }

  let stopping: Promise<void> | undefined;
  return {
    deps,
    yoga,
    demo,
    start: (port = config.port, host = config.host) =>
      new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          const address = server.address() as AddressInfo;
          const shownHost = host === '0.0.0.0' || host === '::' || host === '127.0.0.1' ? 'localhost' : host;
          resolve({ port: address.port, url: `http://${shownHost}:${address.port}${yoga.graphqlEndpoint}` });
        });
      }),
    stop: () =>
      (stopping ??= (async () => {
        await wsServer.dispose();
        typing.dispose();
        // Ends SSE subscriptions too, so closing the server does not wait for them.
        await pubsub.dispose();
        await closeServer(server);
        await yoga.dispose();
        await cache.dispose();
        if (!options.db) await db.close();
      })()),
  };
}

function yogaLogger(log: Logger): Record<'debug' | 'info' | 'warn' | 'error', (...args: unknown[]) => void> {
  const at = (level: 'debug' | 'warn') => (...args: unknown[]) => {
    const [first, ...rest] = args;
    if (first instanceof Error) log[level]('yoga', { error: first });
    else log[level](`yoga: ${String(first)}`, rest.length ? { details: rest } : undefined);
  };
  return { debug: at('debug'), info: at('debug'), warn: at('warn'), error: at('debug') };
}

function wsCredentials(params: Record<string, unknown>, request: IncomingMessage): Credentials {
  const headers = new Headers();
  for (const [name, value] of Object.entries(request.headers)) {
    if (typeof value === 'string') headers.set(name, value);
  }
  const fromParams = (name: string) => (typeof params[name] === 'string' ? (params[name] as string) : undefined);
  const authorization = fromParams('authorization') ?? fromParams('Authorization');
  if (authorization) headers.set('authorization', authorization);
  const productKey = fromParams('productKey');
  if (productKey) headers.set('x-product-key', productKey);
  const adminToken = fromParams('adminToken');
  if (adminToken) headers.set('x-admin-token', adminToken);
  return credentialsFromHeaders(headers);
}

async function readiness(db: Database): Promise<{ ok: boolean; database: string; migrations: string }> {
  try {
    await db.ping();
  } catch {
    return { ok: false, database: 'unreachable', migrations: 'unknown' };
  }
  const applied = await migrationsApplied(db.prisma).catch(() => false);
  return { ok: applied, database: 'ok', migrations: applied ? 'applied' : 'pending' };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}

/**
 * Stops accepting connections, closes idle keep-alive ones at once and gives
 * requests in flight `graceMs` to finish before their sockets are cut: a stalled
 * upload or a long-lived stream must not keep a SIGTERM waiting for Node's
 * 300 s request timeout.
 */
function closeServer(server: Server, graceMs = 5_000): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
