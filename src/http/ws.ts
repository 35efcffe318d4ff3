import type { IncomingMessage, Server } from 'node:http';
import { GraphQLError, type execute as graphqlExecute, type subscribe as graphqlSubscribe } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { CloseCode } from 'graphql-ws';
import { useServer } from 'graphql-ws/use/ws';
import { WebSocketServer } from 'ws';
import { clientIp } from './client-ip.js';
import type { Config } from '../config.js';
import type { Context } from '../context.js';
import type { Drain } from './drain.js';
import { ParleyError } from '../errors.js';
import { paramsProblem } from '../plugins/request-params.js';
import type { KeyRevocations } from '../plugins/key-revocation.js';
import { sha256 } from '../infra/hash.js';
import type { Metrics } from '../infra/metrics.js';
import { runWithReadRouting } from '../infra/read-routing.js';
import { newSqlScope, runInSqlScope } from '../infra/sql-stats.js';
import type { PersistedOperations } from '../plugins/persisted.js';
import { credentialsFromHeaders, type Credentials } from '../services/auth.js';
import { BrowserRuleError, type BrowserOrigin } from '../services/origins.js';
import { requestOrigin } from './request-origin.js';
import { messageBudget } from '../services/rate-limits.js';

export interface GraphqlWsOptions {
  server: Server;
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  config: Config;
  /** Socket operations in flight are tracked, so a shutdown lets a mutation sent over a socket finish too. */
  drain: Drain;
  persisted: PersistedOperations;
  metrics: Metrics | undefined;
  /** A socket opened with a product key closes with 4403 when that key is rotated (on any node). */
  revocations: KeyRevocations;
  /** The app's authentication with its wrong-credentials limit and browser rules; throws a ParleyError. */
  authenticate(credentials: Credentials, ip: string | undefined, browser: BrowserOrigin | null): Promise<unknown>;
  /** Called in each operation's read-routing scope before it executes (pins recently written products). */
  beforeExecute(context: Context): void;
  maskError(error: unknown, message: string): Error;
}

export interface GraphqlWs {
  readonly wss: WebSocketServer;
  /** Closes every socket with 1001 Going Away. */
  dispose(): Promise<void>;
}

/** RFC 6455: the endpoint received a message that violates its policy (here: too many). */
const WS_POLICY_VIOLATION = 1008;

/**
 * GraphQL over WebSocket (graphql-ws) on the HTTP server's port: the same
 * Yoga plugins (envelop), credentials from connectionParams or the upgrade's
 * headers, persisted operations, and a message-rate cap per socket.
 */
export function serveGraphqlWs(options: GraphqlWsOptions): GraphqlWs {
  const { server, yoga, config, drain, persisted, metrics, maskError } = options;
  const wss = new WebSocketServer({ server, path: yoga.graphqlEndpoint });
  const wsServer = useServer<Record<string, unknown>, { credentials: Credentials; clientIp: string | undefined; browser: BrowserOrigin | null }>(
    {
      onConnect: async (ctx) => {
        const credentials = wsCredentials(ctx.connectionParams ?? {}, ctx.extra.request);
        const ip = clientIp(ctx.extra.request, config.http.trustProxy);
        // A browser always sends the page's Origin on an upgrade (no preflight: the check is here).
        const { headers } = ctx.extra.request;
        const browser = requestOrigin(
          { origin: headers.origin, host: headers.host, forwardedHost: headers['x-forwarded-host'] },
          config.http.trustProxy,
        );
        // No credentials at all: 4401 Unauthorized (graphql-ws' close after `false` is then a no-op);
        // credentials that fail: graphql-ws' own 4403 Forbidden.
        if (!credentials.productKey && !credentials.adminToken && !credentials.conversationToken && credentials.invalid === undefined) {
          ctx.extra.socket.close(CloseCode.Unauthorized, 'Unauthorized');
          return false;
        }
        try {
          await options.authenticate(credentials, ip, browser);
        } catch (error) {
          if (error instanceof ParleyError && error.code === 'RATE_LIMITED') {
            ctx.extra.socket.close(CloseCode.TooManyInitialisationRequests, 'Too many wrong credentials');
          }
          // A page its product does not allow: 4403 too, saying why.
          if (error instanceof BrowserRuleError) ctx.extra.socket.close(CloseCode.Forbidden, error.closeReason);
          return false;
        }
        ctx.extra.credentials = credentials;
        ctx.extra.clientIp = ip;
        ctx.extra.browser = browser;
        if (credentials.productKey) {
          const socket = ctx.extra.socket;
          const unwatch = options.revocations.watch(sha256(credentials.productKey), () =>
            socket.close(CloseCode.Forbidden, 'Forbidden: the product key was rotated'),
          );
          socket.once('close', unwatch);
        }
        return true;
      },
      onSubscribe: async (ctx, _id, payload) => {
        const problem = paramsProblem(payload);
        if (problem) return [new GraphQLError(problem, { extensions: { code: 'BAD_REQUEST' } })];
        // Persisted operations apply to sockets too: a hash for a document, the allow-list in persisted-only mode.
        let resolved;
        try {
          resolved = await persisted.resolve(payload);
        } catch (error) {
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        const query = resolved.query ?? '';
        const params = { ...payload, query };
        // Each operation is admitted again with the socket's page: browser rules changed since connect apply to it.
        const enveloped = yoga.getEnveloped({
          credentials: ctx.extra.credentials,
          clientIp: ctx.extra.clientIp,
          browser: ctx.extra.browser,
          request: undefined,
          params,
        });
        const document = enveloped.parse(query);
        const errors = enveloped.validate(enveloped.schema, document);
        if (errors.length) return errors;
        let contextValue;
        try {
          contextValue = await enveloped.contextFactory();
        } catch (error) {
          // RATE_LIMITED: this operation fails, the socket and its other subscriptions carry on.
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        if (resolved.register) void persisted.register(resolved.register, query);
        return {
          schema: enveloped.schema,
          document,
          operationName: payload.operationName,
          variableValues: payload.variables,
          contextValue,
          rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe },
        };
      },
      // An error thrown before execution (a plugin refusing the operation) is that operation's
      // error, as over HTTP: graphql-ws would otherwise close the socket and every subscription on it.
      // A scope per operation: over a socket there is no request to count SQL statements for,
      // nor to route reads for (its context was made in onSubscribe, outside this scope).
      execute: (args) =>
        drain.operation(() =>
          runInSqlScope(newSqlScope(), () =>
            runWithReadRouting(() => {
              options.beforeExecute(args.contextValue as Context);
              return asResult(() => (args.rootValue as { execute: typeof graphqlExecute }).execute(args));
            }),
          ),
        ),
      subscribe: (args) => asResult(() => (args.rootValue as { subscribe: typeof graphqlSubscribe }).subscribe(args)),
    },
    wss,
    config.live.wsKeepAliveMs,
  );
  metrics?.observeWebSockets(() => wss.clients.size);
  wss.on('connection', (socket) => {
    const withinBudget = messageBudget(config.rateLimits.wsMessagesPerSecond);
    socket.on('message', () => {
      if (withinBudget()) return;
      metrics?.rejected('rate_ws_messages');
      socket.close(WS_POLICY_VIOLATION, 'Rate limited');
    });
  });

  async function asResult<T>(operation: () => T | Promise<T>): Promise<T | { errors: GraphQLError[] }> {
    try {
      return await operation();
    } catch (error) {
      return { errors: [maskError(error, 'Unexpected error.') as GraphQLError] };
    }
  }

  return { wss, dispose: async () => void (await wsServer.dispose()) };
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
  const conversationToken = fromParams('conversationToken');
  if (conversationToken) headers.set('x-conversation-token', conversationToken);
  return credentialsFromHeaders(headers);
}
