import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { GraphQLError } from 'graphql';
import { useDisableIntrospection } from '@graphql-yoga/plugin-disable-introspection';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import type { Config } from './config.js';
import { createContext, eventContext, type AppDeps, type Context } from './context.js';
import { clientIp } from './http/client-ip.js';
import { Drain } from './http/drain.js';
import { DatabaseUnavailableError, HTTP_STATUS, ParleyError, UnauthenticatedError } from './errors.js';
import { createGraphiQL } from './http/graphiql.js';
import { isDatabaseUnavailable, type Database } from './infra/db.js';
import type { Logger } from './infra/log.js';
import { createMaskError, useUnavailableStatus } from './plugins/errors.js';
import { useKeyRevocation } from './plugins/key-revocation.js';
import { useRequestDedup } from './plugins/dedup.js';
import { useAdmission } from './plugins/admission.js';
import { useEventContext } from './plugins/event-context.js';
import { useOperationMetrics } from './plugins/metrics.js';
import { useBodyLimit } from './plugins/body-limit.js';
import { useCompression } from './plugins/compression.js';
import { useCors } from './plugins/cors.js';
import { useCsrfPrevention } from './plugins/csrf.js';
import { useQueryLimits } from './plugins/query-limits.js';
import { useRequestId } from './plugins/request-id.js';
import { useTracing } from './plugins/tracing.js';
import { useRequestParamsCheck } from './plugins/request-params.js';
import { slowOperationLog } from './plugins/slow-operations.js';
import { usePageSizeLimit } from './plugins/page-size.js';
import { createPersistedOperations, usePersistedOperations } from './plugins/persisted.js';
import { useHttpCache } from './plugins/http-cache.js';
import { ResponseLookups, useResponseCache, type HeaderReader } from './plugins/response-cache.js';
import { cachedResponses } from './http/cached-responses.js';
import { usePlannedReads } from './plugins/planned-reads.js';
import { ResponseCache } from './infra/cache/response-cache.js';
import { RESPONSE_TAGS } from './schema/response-tags.js';
import { principalKey, type Principal } from './services/auth.js';
import { tags } from './services/store.js';
import { usePrimaryForMutations } from './plugins/primary-for-mutations.js';
import { schema } from './schema/index.js';
import { authenticate, credentialsFromHeaders, type Credentials } from './services/auth.js';
import { findDemoConversation, type DemoSeed } from './services/seed.js';
import { BrowserRuleError, checkBrowserUse, type BrowserOrigin } from './services/origins.js';
import { requestOrigin, urlHost } from './http/request-origin.js';
import { serveGraphqlWs } from './http/ws.js';
import { createDeps } from './deps.js';
import { httpRoutes } from './http/routes.js';
import { createWidgetRoutes } from './http/widget.js';
import { MAX_PAGE_SIZE } from './services/validation.js';

export interface App {
  readonly deps: AppDeps;
  readonly yoga: YogaServerInstance<Record<string, unknown>, Context>;
  /** Set when this start seeded or found the demo product. */
  readonly demo: DemoSeed | null;
  start(port?: number, host?: string): Promise<{ url: string; port: number }>;
  stop(): Promise<void>;
  /** This node's bounded in-process caches (L1 and the response cache): their size, and emptying them, for memory reports. */
  readonly localCaches: { bytes(): number; clear(): void };
}

export interface BuildOptions {
  /** Use this database instead of opening one from the config (tests share one per file). */
  db?: Database;
  log?: Logger;
}

export async function buildApp(config: Config, options: BuildOptions = {}): Promise<App> {
  // What start-up opened, closed again (last first) when a later step fails: a failed start leaves no
  // pool, Redis connection or timer behind (main.ts has no app to stop then).
  const opened: (() => unknown)[] = [];
  try {
    return await build(config, options, (close) => void opened.push(close));
  } catch (error) {
    for (const close of opened.reverse())
      await Promise.resolve()
        .then(close)
        .catch(() => undefined);
    throw error;
  }
}

async function build(config: Config, options: BuildOptions, opened: (close: () => unknown) => void): Promise<App> {
  const { deps, store, demo, allowList, rateLimits, limiterStore, revocations, replicas, pinIfWrittenRecently, sweep } = await createDeps(
    config,
    options,
    opened,
  );
  const { log, db, adminToken, cache, pubsub, metrics, answers, typing } = deps;

  const maskError = maskDatabaseUnavailable(createMaskError(log), log);
  const persisted = createPersistedOperations({
    apq: config.persisted.apq,
    only: config.persisted.only,
    allowList,
    redis: pubsub.redis,
    redisPrefix: config.redis.prefix,
    redisTimeoutMs: config.cache.redisTimeoutMs,
  });
  // Development only: example tabs, the demo key pre-filled, assets served from here (works offline).
  const graphiql =
    config.env !== 'production'
      ? createGraphiQL({ demoKey: demo?.key ?? null, demoConversation: async () => (demo ? findDemoConversation(db.prisma, demo.productId) : null) })
      : null;
  const widget = createWidgetRoutes({ config, log, store, demo });
  const responses = config.cache.responses.enabled
    ? new ResponseCache(cache, {
        prefix: config.redis.prefix,
        maxBytes: config.cache.responses.l1MaxBytes,
        admitAfter: config.cache.responses.admitAfter,
        admitWindowMs: config.cache.responses.ttlMs,
      })
    : undefined;
  // One authentication (and one rate-limit count) per HTTP request, whoever asks first: the response
  // cache before Yoga (keyed by node's request) or in Yoga, or the context factory. Within Yoga a request is
  // always the same Request object from the first hook to the context (the body limit replaces it before anyone asks).
  const principals = new WeakMap<object, Promise<Principal>>();
  // Requests refused by their product's browser rules: their responses carry no CORS headers (plugins/cors.ts).
  const refusedOrigins = new WeakSet<object>();
  const requestKey = (request: Request, initial: { req?: IncomingMessage }): object => initial.req ?? request;
  const principalOf = (headers: HeaderReader, req: IncomingMessage | undefined, key: object, url: () => string): Promise<Principal> => {
    let principal = principals.get(key);
    if (!principal) {
      const browser = requestOrigin(
        { origin: headers.get('origin'), host: urlHost(url()), forwardedHost: headers.get('x-forwarded-host') },
        config.http.trustProxy,
      );
      principal = admit(credentialsFromHeaders(headers), clientIp(req, config.http.trustProxy), browser, () => refusedOrigins.add(key));
      principals.set(key, principal);
    }
    return principal;
  };
  const principalOfRequest = (request: Request, initial: { req?: IncomingMessage }) =>
    principalOf(request.headers, initial.req, requestKey(request, initial), () => request.url);
  const lookups = responses
    ? new ResponseLookups({
        responses,
        schema,
        typeTags: RESPONSE_TAGS,
        productTag: tags.product,
        graphqlEndpoint: '/graphql',
        ttlMs: config.cache.responses.ttlMs,
        onHit: (operation, durationMs, by) => {
          metrics?.operation({ operation, type: 'query', durationMs, sqlStatements: 0, sqlMs: 0, errorCode: undefined });
          metrics?.responseServed(by);
        },
      })
    : undefined;
  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    landingPage: false,
    graphiql: graphiql ? graphiql.options : false,
    renderGraphiQL: graphiql?.render,
    maskedErrors: { maskError },
    // Yoga logs every error that maskError replaced, i.e. every expected error
    // (UNAUTHENTICATED, NOT_FOUND, ...) as well; createMaskError already logs the
    // unexpected ones, so Yoga's own output goes to our logger at debug level.
    logging: yogaLogger(log),
    // Yoga's own CORS would allow every origin; useCors answers by product (see plugins/cors.ts).
    cors: false,
    // The body limit is useBodyLimit's: it refuses a Content-Length over PARLEY_MAX_BODY_BYTES in onRequest,
    // before the response cache's early lookup reads a body, and counts a chunked body as it arrives.
    // Yoga's own limit (25 MB by default) checks later, in onRequestParse, and wraps every request body
    // again in a stream and a new Request, which the profiles of planned reads showed on every POST.
    maxRequestBodySize: false,
    plugins: [
      useRequestId(),
      // Outermost but the id: the operation's span holds everything done for it.
      ...(config.observability.tracing ? [useTracing()] : []),
      // Before anything reads a body or a key: a preflight is answered at once.
      useCors({ refused: (request, serverContext) => refusedOrigins.has(requestKey(request, serverContext)) }),
      // Before the response cache's early lookup, which reads only bodies within the limit.
      useBodyLimit({ maxBytes: config.limits.maxBodyBytes, onReject: () => metrics?.rejected('body_size') }),
      // Before the HTTP plugins: their onResponse sees the stored bytes and ETag of a cached response.
      usePersistedOperations(persisted),
      ...(lookups ? [useResponseCache(lookups, principalOfRequest)] : []),
      // Before compression: the ETag is computed on the JSON.
      useHttpCache({ maxAgeS: config.http.getMaxAgeS }),
      useCompression({ minBytes: config.http.compressionMinBytes }),
      useCsrfPrevention(),
      useRequestParamsCheck(),
      useUnavailableStatus(),
      ...(config.limits.introspection ? [] : [useDisableIntrospection()]),
      ...useQueryLimits({ ...config.limits, hideSuggestions: !config.limits.introspection }, (limit) => metrics?.rejected(`query_${limit}`)),
      usePageSizeLimit({ max: MAX_PAGE_SIZE }),
      ...(replicas ? [usePrimaryForMutations()] : []),
      // Before admission and dedup, whose execute functions wrap this one's: a planned read takes a slot and is shared.
      ...(config.plannedReads ? [usePlannedReads()] : []),
      // Before dedup, whose execute function wraps this one's: identical queries joined there share one slot.
      useAdmission({ maxConcurrent: config.limits.maxConcurrentOperations, onReject: () => metrics?.rejected('overloaded') }),
      useRequestDedup({ onJoin: () => cache.countDedupJoin() }),
      // A subscription event's result depends on the event, the operation and who asks: nothing else.
      useEventContext<Context>(eventContext, principalKey),
      useKeyRevocation(revocations),
      useOperationMetrics(metrics, slowOperationLog(log, config.observability.slowOperationMs)),
    ],
    context: async (initial) => {
      // graphql-ws operations bring their socket's credentials, address and page; HTTP requests their headers and socket.
      const fromSocket = initial as { credentials?: Credentials; clientIp?: string; browser?: BrowserOrigin | null; req?: IncomingMessage };
      const principal = await (fromSocket.credentials
        ? admit(fromSocket.credentials, fromSocket.clientIp, fromSocket.browser ?? null)
        : principalOfRequest(initial.request, fromSocket));
      pinIfWrittenRecently(principal);
      return createContext(deps, principal);
    },
  });

  // Each response that ends while draining may leave a kept-alive connection idle: close it.
  const drain = new Drain(() => setImmediate(() => server.closeIdleConnections()));
  // Response-cache hits answered before Yoga (off with tracing: a hit would have no span).
  const cached =
    lookups && !config.observability.tracing
      ? cachedResponses({
          lookups,
          principalOf: (headers, req) => principalOf(headers, req, req, () => `http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`),
          maxBodyBytes: config.limits.maxBodyBytes,
          getMaxAgeS: config.http.getMaxAgeS,
          compressionMinBytes: config.http.compressionMinBytes,
        })
      : undefined;
  const server = createServer(httpRoutes({ yoga, cached, db, drain, metrics, metricsToken: config.observability.metricsToken, graphiql, widget }));

  const ws = serveGraphqlWs({
    server,
    yoga,
    config,
    drain,
    persisted,
    metrics,
    // A socket is refused at connection_init for its key and for the page it was opened from.
    authenticate: async (credentials, ip, browser) => {
      const principal = await authenticateLimited(credentials, ip);
      await checkBrowserUse(store, principal, browser);
      return principal;
    },
    revocations,
    beforeExecute: pinIfWrittenRecently,
    maskError,
  });

  /**
   * The principal of a request or socket operation, allowed from the page it comes from (browser rules),
   * counted against its rate limits; refusals as their HTTP answers. A request refused for its page is not counted.
   */
  async function admit(
    credentials: Credentials,
    ip: string | undefined,
    browser: BrowserOrigin | null,
    onRefusedOrigin?: () => void,
  ): Promise<Principal> {
    try {
      const principal = await authenticateLimited(credentials, ip);
      await checkBrowserUse(store, principal, browser).catch((error: unknown) => {
        if (error instanceof BrowserRuleError) onRefusedOrigin?.();
        throw error;
      });
      await rateLimits.request(principal, ip);
      return principal;
    } catch (error) {
      if (error instanceof ParleyError) throw requestError(error);
      throw error;
    }
  }

  /** Authenticates, refusing at once an address that sent too many wrong credentials, and counting wrong ones. */
  async function authenticateLimited(credentials: Credentials, ip: string | undefined) {
    const sent =
      credentials.productKey !== undefined ||
      credentials.adminToken !== undefined ||
      credentials.conversationToken !== undefined ||
      credentials.invalid !== undefined;
    if (sent) await rateLimits.checkCredentialsAllowed(ip);
    try {
      return await authenticate(store, adminToken, credentials);
    } catch (error) {
      if (error instanceof UnauthenticatedError) await rateLimits.badCredentials(ip);
      throw error;
    }
  }

  let stopping: Promise<void> | undefined;
  return {
    deps,
    yoga,
    demo,
    localCaches: {
      bytes: () => cache.l1Bytes + (responses?.l1Bytes ?? 0),
      clear: () => {
        cache.clearL1();
        responses?.clearL1();
      },
    },
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
        const deadline = Date.now() + config.http.shutdownMs;
        const left = () => Math.max(0, deadline - Date.now());
        // Stop accepting: no new connection, /readyz 503, requests on kept-alive connections 503.
        drain.begin();
        clearInterval(sweep);
        const closed = closeServer(server);
        // Sockets go away with 1001 (their clients reconnect elsewhere); subscriptions over SSE complete.
        await ws.dispose();
        await pubsub.endStreams();
        // Requests and socket operations in flight finish, writes and their events included.
        const finished = await drain.idle(left());
        if (!finished)
          log.warn('shutdown: operations still running, cutting their connections', { inFlight: drain.inFlight, shutdownMs: config.http.shutdownMs });
        // Streamed replies still being produced are finished (bounded) while events and the database are up.
        await answers.dispose(left());
        typing.dispose();
        await pubsub.dispose();
        server.closeAllConnections();
        // An upgraded socket whose peer never finishes the close handshake is not the server's to wait for.
        await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 1_000).unref())]);
        await yoga.dispose();
        await cache.dispose();
        await limiterStore.dispose();
        if (!options.db) await db.close();
      })()),
  };
}

/** An error raised while building the context (authentication, rate limits) as the HTTP answer it is. */
function requestError(error: ParleyError): GraphQLError {
  const retryAfter = error.extensions.retryAfter;
  const status = HTTP_STATUS[error.code] ?? 401;
  const http = error.code === 'RATE_LIMITED' ? { status, headers: { 'retry-after': String(retryAfter) } } : { status };
  return new GraphQLError(error.message, { extensions: { code: error.code, ...error.extensions, http } });
}

function yogaLogger(log: Logger): Record<'debug' | 'info' | 'warn' | 'error', (...args: unknown[]) => void> {
  const at =
    (level: 'debug' | 'warn') =>
    (...args: unknown[]) => {
      const [first, ...rest] = args;
      if (first instanceof Error) log[level]('yoga', { error: first });
      else log[level](`yoga: ${String(first)}`, rest.length ? { details: rest } : undefined);
    };
  return { debug: at('debug'), info: at('debug'), warn: at('warn'), error: at('debug') };
}

/**
 * An exhausted pool or an unreachable database is DATABASE_UNAVAILABLE (the
 * client may retry), not an internal error; logged once here as a warning.
 */
function maskDatabaseUnavailable(mask: (error: unknown, message: string) => Error, log: Logger): (error: unknown, message: string) => Error {
  return (error, message) => {
    const graphqlError = error instanceof GraphQLError ? error : undefined;
    const original = graphqlError?.originalError ?? error;
    const unavailable = isDatabaseUnavailable(original);
    if (unavailable)
      log.warn('database unavailable', { error: original instanceof Error ? original.message : String(original), path: graphqlError?.path });
    // An expected error already says what happened (e.g. a reply that failed after its message was stored).
    if (original instanceof ParleyError || !unavailable) return mask(error, message);
    const replaced = new DatabaseUnavailableError();
    return mask(new GraphQLError(replaced.message, { nodes: graphqlError?.nodes, path: graphqlError?.path, originalError: replaced }), message);
  };
}

/**
 * Stops accepting connections and closes idle keep-alive ones at once; resolves
 * when every connection is gone. stop() cuts what is left once requests in
 * flight had PARLEY_SHUTDOWN_MS to finish: a stalled upload or a long-lived
 * stream must not keep a SIGTERM waiting for Node's 300 s request timeout.
 */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) return resolve();
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}
