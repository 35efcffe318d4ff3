import { Redis } from 'ioredis';
import { RateLimiterMemory, RateLimiterRedis, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from './log.js';

/**
 * Where rate-limit counters live: Redis when there is one, shared by every node
 * (rate-limiter-flexible's atomic counters), else this process. Each Redis
 * limiter is insured by an in-process one with the same budget: while Redis is
 * unreachable (commands fail at once, or after `timeoutMs`) each node counts
 * on its own — limits loosen, requests never fail or hang because of Redis.
 */

export interface LimiterSpec {
  /** Names the counters, e.g. `product`. */
  name: string;
  points: number;
  durationSeconds: number;
}

export interface LimiterStore {
  readonly kind: 'memory' | 'redis';
  limiter(spec: LimiterSpec): RateLimiterAbstract;
  dispose(): Promise<void>;
}

export interface LimiterStoreOptions {
  /** Without a URL, counters stay in this process. */
  redisUrl?: string | undefined;
  /** @default 'parley:' */
  prefix?: string;
  /** Bound of every Redis command. @default 50 */
  timeoutMs?: number;
  log: Logger;
}

export async function createLimiterStore(options: LimiterStoreOptions): Promise<LimiterStore> {
  const prefix = `${options.prefix ?? 'parley:'}rl:`;
  const memory = (spec: LimiterSpec) => new RateLimiterMemory({ keyPrefix: `${prefix}${spec.name}`, points: spec.points, duration: spec.durationSeconds });
  if (!options.redisUrl) return { kind: 'memory', limiter: memory, dispose: async () => {} };

  const client = new Redis(options.redisUrl, {
    lazyConnect: true,
    connectTimeout: 2_000,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    commandTimeout: options.timeoutMs ?? 50,
    retryStrategy: (times: number) => Math.min(50 * times, 2_000),
  });
  let reported = false;
  client.on('error', (error: Error) => {
    if (!reported) options.log.warn('rate limits: redis unreachable, counting per node', { error: error.message });
    reported = true;
  });
  client.on('ready', () => (reported = false));
  await client.connect().catch(() => {});
  return {
    kind: 'redis',
    limiter: (spec) =>
      new RateLimiterRedis({
        storeClient: client,
        keyPrefix: `${prefix}${spec.name}`,
        points: spec.points,
        duration: spec.durationSeconds,
        rejectIfRedisNotReady: true,
        insuranceLimiter: memory(spec),
      }),
    dispose: async () => {
      client.disconnect();
    },
  };
}
