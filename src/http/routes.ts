import type { IncomingMessage, ServerResponse } from 'node:http';
import type { YogaServerInstance } from 'graphql-yoga';
import type { Context } from '../context.js';
import type { Database } from '../infra/db.js';
import type { Metrics } from '../infra/metrics.js';
import { migrationsApplied } from '../infra/migrate.js';
import { runWithReadRouting } from '../infra/read-routing.js';
import { newSqlScope, runInSqlScope } from '../infra/sql-stats.js';
import { secretsEqual } from '../services/products.js';
import type { cachedResponses } from './cached-responses.js';
import type { Drain } from './drain.js';
import type { createGraphiQL } from './graphiql.js';
import type { createWidgetRoutes } from './widget.js';

export interface RoutesOptions {
  yoga: YogaServerInstance<Record<string, unknown>, Context>;
  /** Response-cache hits answered before Yoga (cached-responses.ts), which hands Yoga everything else. */
  cached: ReturnType<typeof cachedResponses> | undefined;
  db: Database;
  drain: Drain;
  metrics: Metrics | undefined;
  /** PARLEY_METRICS_TOKEN: required as a Bearer token on /metrics when set. */
  metricsToken: string | undefined;
  graphiql: ReturnType<typeof createGraphiQL> | null;
  widget: ReturnType<typeof createWidgetRoutes>;
}

/**
 * The HTTP server's request listener: health and readiness, the 503 of a draining node, /metrics,
 * GraphiQL's assets, the widget's files, then GraphQL (Yoga), each request in its own SQL and
 * read-routing scope. graphql-ws is served on the same server (ws.ts).
 */
export function httpRoutes({ yoga, cached, db, drain, metrics, metricsToken, graphiql, widget }: RoutesOptions) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      // Draining: the load balancer stops sending here while what is in flight finishes.
      if (drain.draining) return json(res, 503, { ok: false, draining: true });
      void readiness(db).then((ready) => json(res, ready.ok ? 200 : 503, ready));
      return;
    }
    if (drain.draining) {
      // A request on a kept-alive connection after stop(): another node can take it at once.
      res.setHeader('connection', 'close');
      res.setHeader('retry-after', '1');
      return json(res, 503, { errors: [{ message: 'this node is shutting down', extensions: { code: 'SHUTTING_DOWN' } }] });
    }
    drain.request(res);
    if (path === '/metrics' && metrics) {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        return json(res, 405, { error: 'method not allowed' });
      }
      if (!metricsTokenMatches(req.headers.authorization, metricsToken)) {
        res.setHeader('www-authenticate', 'Bearer realm="metrics"');
        return json(res, 401, { error: 'PARLEY_METRICS_TOKEN required' });
      }
      void metrics.text().then((text) => {
        res.writeHead(200, { 'content-type': metrics.contentType, 'cache-control': 'no-store' });
        res.end(text);
      });
      return;
    }
    if (graphiql?.serveAsset(req, res)) return;
    if (widget.serve(req, res)) return;
    // Each request gets its own SQL scope so statements are counted per request, and its own
    // routing scope: reads may go to replicas until it writes (see infra/read-routing.ts).
    runInSqlScope(newSqlScope(), () => runWithReadRouting(() => (cached ? cached(req, res, path!, () => yoga(req, res)) : yoga(req, res))));
  };
}

/** Ready when the primary answers and is migrated; pools and replicas are shown, replicas never make it fail. */
async function readiness(db: Database): Promise<{ ok: boolean; database: string; migrations: string }> {
  const pools = db.poolStats().map(({ statements: _, ...pool }) => pool);
  const replicas = db.replicas();
  const shown = { ...(pools.length ? { pools } : {}), ...(replicas.length ? { replicas } : {}) };
  try {
    await db.ping();
  } catch {
    return { ok: false, database: 'unreachable', migrations: 'unknown', ...shown };
  }
  const applied = await migrationsApplied(db.prisma).catch(() => false);
  return { ok: applied, database: 'ok', migrations: applied ? 'applied' : 'pending', ...shown };
}

/** No token configured: open. Else `Authorization: Bearer <token>`, compared in constant time. */
function metricsTokenMatches(header: string | undefined, token: string | undefined): boolean {
  if (token === undefined) return true;
  const sent = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
  return sent !== undefined && secretsEqual(sent, token);
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  res.end(JSON.stringify(body));
}
