import type { Redis } from 'ioredis';
import type { Config } from '../../config.js';
import type { Logger } from '../log.js';
import { openRedis, reportOutages, type RedisClient } from '../redis.js';
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
  let redis: { client: RedisClient; subscriber: Redis } | undefined;
  if (config.redis.url) {
    const client = openRedis(config.redis.url, { role: 'commands', ca: config.redis.ca });
    const subscriber = openRedis(config.redis.url, { role: 'subscriber', ca: config.redis.ca });
    // The guard and its circuit already log the state; this is the connections' own first error.
    reportOutages([client, subscriber], log, { down: 'cache: redis error' });
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
