import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { CacheStat } from './cache/index.js';
import { cacheMetricsText } from './cache/index.js';
import type { PoolStat, ReplicaStatus } from './db.js';
import type { EventMap, PubSub } from './pubsub/index.js';

/**
 * Prometheus metrics of one app (a registry per app, so tests that build
 * several apps in one process never share counters). `GET /metrics` renders
 * `text()`: these series, Node's process metrics and the cache counters.
 *
 * Operation names come from clients, so they are capped: past
 * `maxOperationNames` distinct names, new ones are counted as `other` — a
 * client inventing names cannot grow the series without bound.
 */

export type OperationType = 'query' | 'mutation' | 'subscription';

export interface OperationSample {
  operation: string;
  type: OperationType;
  durationMs: number;
  sqlStatements: number;
  sqlMs: number;
  /** `extensions.code` of the first error, when the result has errors. */
  errorCode?: string | undefined;
}

/** What the answers engine reports for each assistant reply it produces. */
export interface AnswerSample {
  /** The model that answered, or e.g. `cache` / `fallback`. */
  model: string;
  latencyMs: number;
  /** Served from a cache of answers rather than produced. */
  cached: boolean;
  /** `ok`, or why no real answer was produced (`timeout`, `error`, ...). */
  outcome?: string;
}

export interface Metrics {
  readonly registry: Registry;
  operation(sample: OperationSample): void;
  /** A subscription started (+1) or ended (-1), per transport. */
  subscriptionActive(transport: 'ws' | 'sse', delta: 1 | -1): void;
  /** One subscription result sent to one subscriber. */
  eventDelivered(subscription: string): void;
  /** Hook for the answers engine: one call per assistant reply. */
  answer(sample: AnswerSample): void;
  /** A request refused by a limit (rate, size, complexity), by reason. */
  rejected(reason: string): void;
  /** A request answered from the response cache, by the HTTP server before Yoga (`server`) or by Yoga's plugin (`yoga`). */
  responseServed(by: 'server' | 'yoga'): void;
  /** Counts every publish that reached the pub/sub (events published, per topic and type). */
  countPublishes<E extends EventMap>(pubsub: PubSub<E>): PubSub<E>;
  /** Gauges read at scrape time. */
  observeWebSockets(connections: () => number): void;
  observeCache(snapshot: () => readonly CacheStat[]): void;
  /** Connection pools (primary, replicas) and replica freshness. */
  observeDatabase(database: { poolStats(): PoolStat[]; replicas(): ReplicaStatus[] }): void;
  /** The Prometheus text exposition: registry + cache counters. */
  text(): Promise<string>;
  readonly contentType: string;
}

export interface MetricsOptions {
  /** Distinct operation names kept as labels before `other`. @default 200 */
  maxOperationNames?: number;
  /** Node's default process metrics (event loop lag, heap, GC). @default true */
  processMetrics?: boolean;
}

// Buckets chosen around the bench's latencies (sub-ms cached reads to seconds).
const DURATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
const STATEMENT_BUCKETS = [0, 1, 2, 3, 5, 10, 20, 50, 100];

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const maxNames = options.maxOperationNames ?? 200;
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry });

  const labelNames = ['operation', 'type'] as const;
  const duration = new Histogram({
    name: 'parley_graphql_operation_duration_seconds',
    help: 'Time from parsing a GraphQL operation to its result, per operation name and type.',
    labelNames,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const sqlStatements = new Histogram({
    name: 'parley_graphql_operation_sql_statements',
    help: 'SQL statements one operation sent to the database (its request’s, authentication included).',
    labelNames,
    buckets: STATEMENT_BUCKETS,
    registers: [registry],
  });
  const sqlSeconds = new Histogram({
    name: 'parley_graphql_operation_sql_seconds',
    help: 'Time one operation spent waiting for SQL statements (summed over its statements).',
    labelNames,
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const errors = new Counter({
    name: 'parley_graphql_operation_errors_total',
    help: 'Operations whose result carried errors, by the first error’s code.',
    labelNames: [...labelNames, 'code'],
    registers: [registry],
  });
  const subscriptions = new Gauge({
    name: 'parley_subscriptions_active',
    help: 'Subscriptions currently open, per transport.',
    labelNames: ['transport'],
    registers: [registry],
  });
  const delivered = new Counter({
    name: 'parley_events_delivered_total',
    help: 'Subscription results sent to subscribers (one per subscriber per event).',
    labelNames: ['subscription'],
    registers: [registry],
  });
  const published = new Counter({
    name: 'parley_events_published_total',
    help: 'Live events published by this node, per topic and event type.',
    labelNames: ['topic', 'type'],
    registers: [registry],
  });
  const answers = new Counter({
    name: 'parley_answers_total',
    help: 'Assistant replies produced, per model, cache use and outcome.',
    labelNames: ['model', 'cached', 'outcome'],
    registers: [registry],
  });
  const answerLatency = new Histogram({
    name: 'parley_answer_latency_seconds',
    help: 'Time to produce an assistant reply.',
    labelNames: ['model', 'cached'],
    buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const rejected = new Counter({
    name: 'parley_requests_rejected_total',
    help: 'Requests refused before execution by a limit, per reason.',
    labelNames: ['reason'],
    registers: [registry],
  });
  const responsesServed = new Counter({
    name: 'parley_response_cache_served_total',
    help: 'Requests answered from the response cache: by the HTTP server before Yoga, or by Yoga (compressed, from a browser page, …).',
    labelNames: ['by'],
    registers: [registry],
  });
  let webSockets: (() => number) | undefined;
  new Gauge({
    name: 'parley_graphql_ws_connections',
    help: 'Open graphql-ws connections.',
    registers: [registry],
    collect() {
      this.set(webSockets?.() ?? 0);
    },
  });
  let cacheSnapshot: (() => readonly CacheStat[]) | undefined;
  let database: { poolStats(): PoolStat[]; replicas(): ReplicaStatus[] } | undefined;
  const pools = () => database?.poolStats() ?? [];
  const replicas = () => database?.replicas() ?? [];
  new Gauge({
    name: 'parley_db_pool_connections',
    help: 'Open database connections per pool, idle or busy.',
    labelNames: ['pool', 'state'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of pools()) {
        this.set({ pool: p.pool, state: 'idle' }, p.idle);
        this.set({ pool: p.pool, state: 'busy' }, p.total - p.idle);
      }
    },
  });
  /** A gauge set on each scrape from `rows()`, one series per row (a null value leaves the row out). */
  const scraped = <R>(name: string, help: string, label: string, rows: () => readonly R[], of: (row: R) => [string, number | null]) =>
    new Gauge({
      name,
      help,
      labelNames: [label],
      registers: [registry],
      collect() {
        this.reset();
        for (const row of rows()) {
          const [key, value] = of(row);
          if (value !== null) this.set({ [label]: key }, value);
        }
      },
    });
  scraped('parley_db_pool_waiting', 'Statements waiting for a free connection, per pool.', 'pool', pools, (p) => [p.pool, p.waiting]);
  scraped('parley_db_pool_max', 'Most connections a pool opens (DATABASE_POOL_SIZE).', 'pool', pools, (p) => [p.pool, p.max]);
  new Counter({
    name: 'parley_db_statements_total',
    help: 'SQL statements sent to each pool (reads routed to replicas count there).',
    labelNames: ['pool'],
    registers: [registry],
    collect() {
      this.reset();
      for (const p of pools()) this.inc({ pool: p.pool }, p.statements);
    },
  });
  scraped(
    'parley_db_replica_usable',
    'Whether a read replica takes reads now (1) or not (0: behind, unreachable, not a standby).',
    'replica',
    replicas,
    (r) => [r.name, r.usable ? 1 : 0],
  );
  scraped('parley_db_replica_lag_bytes', 'WAL bytes a read replica had not replayed at its last check.', 'replica', replicas, (r) => [
    r.name,
    r.lagBytes,
  ]);

  const names = new Set<string>();
  const operationLabel = (name: string) => {
    if (names.has(name)) return name;
    if (names.size >= maxNames) return 'other';
    names.add(name);
    return name;
  };

  return {
    registry,
    contentType: registry.contentType,
    operation(sample) {
      const labels = { operation: operationLabel(sample.operation), type: sample.type };
      duration.observe(labels, sample.durationMs / 1000);
      sqlStatements.observe(labels, sample.sqlStatements);
      sqlSeconds.observe(labels, sample.sqlMs / 1000);
      if (sample.errorCode) errors.inc({ ...labels, code: sample.errorCode });
    },
    subscriptionActive: (transport, delta) => subscriptions.inc({ transport }, delta),
    eventDelivered: (subscription) => delivered.inc({ subscription }),
    answer(sample) {
      const cached = String(sample.cached);
      answers.inc({ model: sample.model, cached, outcome: sample.outcome ?? 'ok' });
      answerLatency.observe({ model: sample.model, cached }, sample.latencyMs / 1000);
    },
    rejected: (reason) => rejected.inc({ reason }),
    responseServed: (by) => responsesServed.inc({ by }),
    countPublishes(pubsub) {
      return new Proxy(pubsub, {
        get(target, prop, receiver) {
          if (prop === 'publish') {
            return async (topic: string, id: string, event: { type?: string }) => {
              await target.publish(topic, id, event as never);
              published.inc({ topic, type: event.type ?? 'unknown' });
            };
          }
          // Events published inside another MULTI or script count once that ran.
          if (prop === 'wire') {
            return (topic: string, id: string, event: { type?: string }) => {
              const wire = target.wire(topic, id, event as never);
              if (!wire) return undefined;
              return {
                ...wire,
                sent: () => {
                  wire.sent();
                  published.inc({ topic, type: event.type ?? 'unknown' });
                },
              };
            };
          }
          const value = Reflect.get(target, prop, receiver);
          return typeof value === 'function' ? value.bind(target) : value;
        },
      });
    },
    observeWebSockets: (connections) => void (webSockets = connections),
    observeCache: (snapshot) => void (cacheSnapshot = snapshot),
    observeDatabase: (db) => void (database = db),
    async text() {
      const own = await registry.metrics();
      return cacheSnapshot ? own + cacheMetricsText(cacheSnapshot()) : own;
    },
  };
}
