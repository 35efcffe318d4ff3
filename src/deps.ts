import type { Config } from './config.js';
import { configSecrets } from './config.js';
import type { AppDeps } from './context.js';
import { createCache } from './infra/cache/index.js';
import { databaseOptions, openDatabase, type Database } from './infra/db.js';
import { createLogger, type Logger } from './infra/log.js';
import { createMetrics } from './infra/metrics.js';
import { migrate } from './infra/migrate.js';
import { createPubSub } from './infra/pubsub/index.js';
import { createLimiterStore } from './infra/rate-limiter.js';
import { pinToPrimary, RecentWrites } from './infra/read-routing.js';
import { KeyRevocations } from './plugins/key-revocation.js';
import { loadAllowList } from './plugins/persisted.js';
import { schema } from './schema/index.js';
import { loadOrCreateAdminToken } from './services/admin-token.js';
import { createAnswers } from './services/answers/index.js';
import { Replays } from './services/event-replay.js';
import { createLiveEvents, type ParleyEvents } from './services/events.js';
import { sweepExpiredKeys } from './services/idempotency.js';
import { createKnowledgeSearch } from './services/knowledge.js';
import { createRateLimits } from './services/rate-limits.js';
import { seedDemo } from './services/seed.js';
import { createTyping, memoryTypingStore, redisTypingStore } from './services/typing.js';
import { warmCache } from './warm.js';

/**
 * Everything a node holds for as long as it runs, opened in order: the database (migrated, its pools
 * warm), the cache, pub/sub, metrics, the rate limiter's store, live events, typing, knowledge search
 * and answers, then the caches warmed and the idempotency-key sweep started. Each thing that needs
 * closing is handed to `opened` as soon as it is open, so a start-up that fails at a later step closes
 * it again (buildApp); the HTTP and WebSocket servers are built on top of these in app.ts.
 */
export async function createDeps(config: Config, options: { db?: Database; log?: Logger }, opened: (close: () => unknown) => void) {
  const log = options.log ?? createLogger(config.logLevel, { secrets: configSecrets(config) });
  // A stale or broken allow-list stops the start here, before anything is opened.
  const allowList = config.persisted.operationsFile ? loadAllowList(config.persisted.operationsFile, schema) : new Map<string, string>();
  const db = options.db ?? (await openDatabase(databaseOptions(config)));
  if (!options.db) opened(() => db.close());
  const migration = await migrate(db.prisma);
  if (migration.applied.length) log.info('migrations applied', { applied: migration.applied });
  // Pools hold DATABASE_POOL_MIN connections (and replicas are checked) before /readyz can say ready.
  await db.warm();
  const adminToken = config.adminToken ?? loadOrCreateAdminToken(config.dataDir).token;
  const demo = config.demo ? await seedDemo(db.prisma, config.dataDir) : null;
  const cache = await createCache(config, log);
  opened(() => cache.dispose());
  const pubsub = await createPubSub<ParleyEvents>({ redisUrl: config.redis.url, redisCa: config.redis.ca, prefix: config.redis.prefix, log });
  opened(() => pubsub.dispose());
  const metrics = config.observability.metrics ? createMetrics() : undefined;
  metrics?.observeCache(() => cache.snapshot());
  metrics?.observeDatabase(db);
  // A product written in the last PARLEY_REPLICA_MAX_LAG_MS (here or, announced, on another node) reads from the primary.
  // Without replicas every statement is the primary's: nothing to track on each write and request.
  const replicas = db.replicas().length > 0;
  const recentWrites = new RecentWrites(config.database.replicaMaxLagMs);
  if (replicas) cache.onBump((tags) => recentWrites.noteTags(tags));
  const pinIfWrittenRecently = (context: { product: { id: string } | null }) => {
    if (replicas && context.product && recentWrites.has(context.product.id)) pinToPrimary();
  };
  // A rotated key's open sockets and subscription streams end on every node (the rotation's cache bump reaches all).
  const revocations = new KeyRevocations();
  cache.onBump((tags) => revocations.revokeTags(tags));
  const limiterStore = await createLimiterStore({
    redisUrl: config.redis.url,
    redisCa: config.redis.ca,
    prefix: config.redis.prefix,
    timeoutMs: config.cache.redisTimeoutMs,
    log,
  });
  opened(() => limiterStore.dispose());
  const rateLimits = createRateLimits(limiterStore, { ...config.rateLimits, badCredentialsWindowSeconds: BAD_CREDENTIALS_WINDOW_S }, (reason) =>
    metrics?.rejected(`rate_${reason}`),
  );
  const events = createLiveEvents(metrics ? metrics.countPublishes(pubsub) : pubsub, log);
  const typingStore = pubsub.redis ? redisTypingStore(pubsub.redis, config.redis.prefix) : memoryTypingStore();
  const typing = createTyping({ events, store: typingStore, ttlMs: config.live.typingTtlMs, log });
  const store = { prisma: db.prisma, cache, events };
  const knowledgeSearch = createKnowledgeSearch(db.prisma, config.answers.searchBatchMs);
  const answers = createAnswers({ config: config.answers, store, search: knowledgeSearch, typing, log, metrics });
  opened(() => {
    typing.dispose();
    return answers.dispose(0);
  });
  // A quarter of the pool: after an outage the node's subscriptions catch up while requests still get connections.
  const replays = new Replays(Math.max(1, Math.floor(config.database.poolSize / 4)));
  const deps: AppDeps = { config, db, log, adminToken, cache, pubsub, events, replays, typing, metrics, knowledgeSearch, answers };
  const warmed = await warmCache(deps, config.cache.warmProducts);
  if (warmed.products)
    log.info('cache warmed', { products: warmed.products, ms: warmed.ms, caches: 'productByKey, productStats, viewer knowledge first page' });

  // Idempotency keys older than a day match nothing; reusing one overwrites it, the rest are deleted here.
  // Every node sweeps (a DELETE by the createdAt index, harmless when two run at once): no leader to elect.
  const sweep = setInterval(
    () => void sweepExpiredKeys(db.prisma).catch((error: Error) => log.warn('idempotency keys: sweep failed', { error: error.message })),
    KEY_SWEEP_MS,
  );
  sweep.unref();
  opened(() => clearInterval(sweep));

  return { deps, store, demo, allowList, rateLimits, limiterStore, revocations, replicas, pinIfWrittenRecently, sweep };
}

/** How often a node deletes idempotency keys older than a day. */
const KEY_SWEEP_MS = 3_600_000;

/** Wrong credentials are counted per address over this window (PARLEY_RATE_LIMIT_BAD_CREDENTIALS of them). */
const BAD_CREDENTIALS_WINDOW_S = 300;
