import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, type RateLimiterAbstract } from 'rate-limiter-flexible';
import type { Logger } from './log.js';
import { openRedis, reportOutages, type RedisClient } from './redis.js';

/**
 * Where rate-limit counters live: Redis when there is one, shared by every node,
 * else this process. Each Redis limiter is insured by an in-process one with the
 * same budget: while Redis is unreachable (commands fail at once, or after
 * `timeoutMs`) each node counts on its own — limits loosen, requests never fail
 * or hang because of Redis.
 *
 * Two kinds: `limiter` is rate-limiter-flexible's (one Redis call per use; for
 * counters that are read as well as counted), `leased` spends a budget in
 * slices leased from Redis (see LeasedLimiter: no Redis call on most requests).
 */

export interface LimiterSpec {
  /** Names the counters, e.g. `product`. */
  name: string;
  points: number;
  durationSeconds: number;
}

/** Counts one use of `key`: null when allowed, else the ms before the next use is. Never rejects. */
export interface Limiter {
  consume(key: string): Promise<number | null>;
}

export interface LimiterStore {
  readonly kind: 'memory' | 'redis';
  limiter(spec: LimiterSpec): RateLimiterAbstract;
  leased(spec: LimiterSpec): Limiter;
  dispose(): Promise<void>;
}

export interface LimiterStoreOptions {
  /** Without a URL, counters stay in this process. */
  redisUrl?: string | undefined;
  /** PEM of the CAs a TLS Redis's certificate must chain to (see openRedis). */
  redisCa?: string | undefined;
  /** @default 'parley:' */
  prefix?: string;
  /** Bound of every Redis command. @default 50 */
  timeoutMs?: number;
  /** Share of a window's budget a node leases at once (see LeasedLimiter). @default 1/500 */
  leaseFraction?: number;
  log: Logger;
}

export async function createLimiterStore(options: LimiterStoreOptions): Promise<LimiterStore> {
  const prefix = `${options.prefix ?? 'parley:'}rl:`;
  const memory = (spec: LimiterSpec) =>
    new RateLimiterMemory({ keyPrefix: `${prefix}${spec.name}`, points: spec.points, duration: spec.durationSeconds });
  if (!options.redisUrl) {
    return { kind: 'memory', limiter: memory, leased: (spec) => limiterOf(memory(spec)), dispose: async () => {} };
  }

  const client = openRedis(options.redisUrl, { role: 'commands', commandTimeoutMs: options.timeoutMs ?? 50, ca: options.redisCa });
  reportOutages([client], options.log, { down: 'rate limits: redis unreachable, counting per node' });
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
    leased: (spec) =>
      new LeasedLimiter(client, {
        ...spec,
        key: (k) => `${prefix}lease:${spec.name}:${k}`,
        fraction: options.leaseFraction ?? 1 / 500,
        insurance: limiterOf(memory(spec)),
      }),
    dispose: async () => {
      client.disconnect();
    },
  };
}

/** rate-limiter-flexible's limiter as a Limiter (in process: it cannot fail for another reason). */
function limiterOf(limiter: RateLimiterAbstract): Limiter {
  return {
    consume: (key) =>
      limiter.consume(key).then(
        () => null,
        (error: unknown) => (error instanceof RateLimiterRes ? error.msBeforeNext : null),
      ),
  };
}

/**
 * Takes up to ARGV[1] points of the window's budget ARGV[2] (the window starts
 * with its first lease and lasts ARGV[3] ms). Returns the points granted (0 when
 * the budget is spent) and the ms left in the window. The counter may pass the
 * budget: what was not granted is simply never spent.
 */
const LEASE = `local used = redis.call('INCRBY', KEYS[1], ARGV[1])
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  ttl = tonumber(ARGV[3])
end
local left = tonumber(ARGV[2]) - (used - tonumber(ARGV[1]))
if left < 0 then left = 0 end
return {math.min(left, tonumber(ARGV[1])), ttl}`;

interface Lease {
  /** Points this node may still spend without asking Redis. */
  left: number;
  /** End of the window the points belong to, in this node's clock. */
  until: number;
}

export interface LeasedLimiterOptions extends LimiterSpec {
  key: (key: string) => string;
  /** Share of the budget leased at once; a lease is at least 1 point. */
  fraction: number;
  /** Counts while Redis is unreachable. */
  insurance: Limiter;
  now?: () => number;
}

/**
 * A per-key limit that is global across nodes without a Redis call per request
 * (rate-limiter-flexible's Redis limiter makes one per use: 34 % of a cached
 * read's throughput in issue 12). A node leases a slice of the current window's
 * budget — `fraction` of it, at least 1 point — with one script, and spends it
 * locally; when the slice is spent it leases again. Redis never grants more than
 * the budget in a window, so nodes together never allow more than the limit;
 * they may refuse up to (nodes − 1) slices early (points leased by a node that
 * did not spend them before the window ended). Concurrent requests of one key
 * share one lease call. A key refused is refused locally until its window ends.
 * While Redis is unreachable the insurance limiter counts, as the other limits do.
 */
export class LeasedLimiter implements Limiter {
  private readonly leases = new Map<string, Lease>();
  private readonly pending = new Map<string, Promise<Lease | null>>();
  private readonly size: number;
  private readonly now: () => number;

  constructor(
    private readonly redis: RedisClient,
    private readonly options: LeasedLimiterOptions,
  ) {
    this.size = Math.max(1, Math.floor(options.points * options.fraction));
    this.now = options.now ?? Date.now;
  }

  async consume(key: string): Promise<number | null> {
    for (;;) {
      const lease = this.leases.get(key);
      const now = this.now();
      if (lease && lease.until > now) {
        if (lease.left > 0) {
          lease.left -= 1;
          return null;
        }
        // Spent here: lease again unless Redis said the whole budget is (then wait for the window).
        if (lease.left < 0) return lease.until - now;
      }
      const leased = await this.lease(key);
      if (!leased) return this.options.insurance.consume(key);
    }
  }

  /** Forgets expired leases (called on each lease, so the map holds only live windows' keys). */
  private sweep(now: number): void {
    if (this.leases.size < 10_000) return;
    for (const [key, lease] of this.leases) if (lease.until <= now) this.leases.delete(key);
  }

  private lease(key: string): Promise<Lease | null> {
    let pending = this.pending.get(key);
    if (!pending) {
      pending = this.redis
        .eval(LEASE, 1, this.options.key(key), this.size, this.options.points, this.options.durationSeconds * 1_000)
        .then(
          (reply) => {
            const [granted, ttl] = reply as [number, number];
            const now = this.now();
            this.sweep(now);
            // left −1 marks a window whose whole budget is spent across nodes.
            const lease: Lease = { left: granted > 0 ? granted : -1, until: now + Math.max(1, ttl) };
            this.leases.set(key, lease);
            return lease;
          },
          () => null,
        )
        .finally(() => this.pending.delete(key));
      this.pending.set(key, pending);
    }
    return pending;
  }
}
