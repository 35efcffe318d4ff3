import { Redis } from 'ioredis';
import type { Config } from '../../config.js';
import type { Logger } from '../log.js';
import { Cache } from './cache.js';

export { Cache, cachePolicy, tagKind, type CachePolicy, type CacheStat } from './cache.js';
export { cacheMetricsText } from './prometheus.js';

/**
 * The app's cache: L1 only without REDIS_URL; with it, L2 + cross-node
 * invalidation over two connections (commands, and a subscriber). The command
 * connection never queues while disconnected, so a dead Redis fails fast and
 * the guard's circuit takes it out of the request path.
 */
export async function createCache(config: Config, log: Logger): Promise<Cache> {
  const c = config.cache;
  let redis: { client: Redis; subscriber: Redis } | undefined;
  if (config.redis.url) {
    const common = {
      connectTimeout: 2_000,
      // Reconnect for ever, backing off to 2 s: Redis coming back must be noticed.
      retryStrategy: (times: number) => Math.min(50 * times, 2_000),
      lazyConnect: true,
    };
    const client = new Redis(config.redis.url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
    // The subscriber queues SUBSCRIBE until connected (however long Redis is away).
    const subscriber = new Redis(config.redis.url, { ...common, autoResubscribe: true, maxRetriesPerRequest: null });
    let reported = false;
    for (const connection of [client, subscriber]) {
      // ioredis emits 'error' on every failed reconnect; the guard and circuit already log the state.
      connection.on('error', (error: Error) => {
        if (!reported) log.warn('cache: redis error', { error: error.message });
        reported = true;
      });
      connection.on('ready', () => (reported = false));
    }
    // Start even when Redis is down: the cache works from L1 until it is back.
    await Promise.allSettled([client.connect(), subscriber.connect()]);
    redis = { client, subscriber };
  }
  const cache = new Cache({
    prefix: config.redis.prefix,
    l1MaxEntries: c.l1MaxEntries,
    l1MaxBytes: c.l1MaxBytes,
    redis,
    redisTimeoutMs: c.redisTimeoutMs,
    generationTrustMs: c.generationTrustMs,
    log,
  });
  await cache.start();
  return cache;
}
