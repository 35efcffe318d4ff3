import { randomUUID } from 'node:crypto';
import { deserialize, serialize } from 'node:v8';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { Logger } from '../log.js';
import type { RedisClient } from '../redis.js';
import type { WireEvent } from '../pubsub/index.js';
import { readFromPrimary } from '../read-routing.js';
import { EPOCH_TAG, Generations } from './generations.js';
import { RedisGuard } from './redis-guard.js';
import { sha256 } from '../hash.js';

/**
 * Two-layer resolver cache: L1 in process (bounded by entries and bytes), L2 in
 * Redis when configured. Declared where the data is read with `cachePolicy`,
 * invalidated precisely by tag generations (see generations.ts), loads once per
 * key at a time (single-flight in process, a short Redis lock across nodes).
 */

export interface CachePolicy<A> {
  /** Names the cache in keys and stats, e.g. `viewerStats`. */
  name: string;
  ttlMs: number;
  /** Product namespace of the entry; `_` for lookups that precede knowing the product (a key hash). */
  scope: (args: A) => string;
  /** Tags whose generations the entry depends on; a write bumping any of them makes it unreachable. */
  tags: (args: A) => string[];
  /** Identity of the arguments inside the scope. @default the arguments themselves */
  key?: (args: A) => unknown;
  /** Serve an expired entry this much longer while one background load refreshes it. @default 0 */
  staleWhileRevalidateMs?: number;
  /** Whether a loaded value is stored at all (e.g. not a lookup that found nothing). @default always */
  // biome-ignore lint/suspicious/noExplicitAny: a policy's own value type (CachedAnswer, …), which CachePolicy<A> does not carry
  cacheIf?: (value: any) => boolean;
  /**
   * Whether entries also go to L2 (Redis), with the cross-node load lock. Off: L1 and
   * single-flight in this process only, for values cheaper to load again than the
   * round trips that share them. @default true
   */
  shared?: boolean;
  /**
   * How long a node waits for another node's load of the same key before loading
   * itself (the cross-node lock lives as long). For slow loads (a language model's
   * answer) that must run once across nodes. @default the cache's lockWaitMs (200)
   */
  lockWaitMs?: number;
}

export function cachePolicy<A>(policy: CachePolicy<A>): CachePolicy<A> {
  return policy;
}

export interface CacheOptions {
  prefix: string;
  /** @default 10_000 */
  l1MaxEntries?: number;
  /** @default 64 MiB */
  l1MaxBytes?: number;
  redis?: { client: RedisClient; subscriber: Redis } | undefined;
  /** Bound of every Redis call. @default 50 */
  redisTimeoutMs?: number;
  /** See GenerationsOptions.trustMs. @default 0 */
  generationTrustMs?: number;
  /** TTL jitter as a fraction (±). @default 0.1 */
  jitter?: number;
  /** Cross-node load lock lifetime. @default 2000 */
  lockTtlMs?: number;
  /** How long a node waits for another node's load before loading itself. @default 200 */
  lockWaitMs?: number;
  log?: Logger;
}

export interface CacheStat {
  cache: string;
  layer: 'L1' | 'L2';
  hits: number;
  misses: number;
  sets: number;
  evictions: number;
  /** Values not stored because they were asked for only once so far (the response cache's admission). */
  skipped: number;
  invalidations: number;
  singleFlightJoins: number;
  dedupJoins: number;
  staleServed: number;
  hitRate: number;
  avgLatencyMs: number | null;
}

interface Entry {
  value: unknown;
  /** Fresh until; served stale (with a refresh) until the L1/L2 TTL removes it. */
  freshUntil: number;
}

export interface Counters {
  l1: { hits: number; misses: number; sets: number; evictions: number; skipped: number };
  l2: { hits: number; misses: number; sets: number };
  singleFlightJoins: number;
  dedupJoins: number;
  staleServed: number;
  loads: number;
  tagKinds: Set<string>;
}

const counters = (): Counters => ({
  l1: { hits: 0, misses: 0, sets: 0, evictions: 0, skipped: 0 },
  l2: { hits: 0, misses: 0, sets: 0 },
  singleFlightJoins: 0,
  dedupJoins: 0,
  staleServed: 0,
  loads: 0,
  tagKinds: new Set(),
});

/** `product:0190…:knowledge` → `product:*:knowledge`, `…:term:ship` → `…:term:*`: what invalidations are counted by. */
export function tagKind(tag: string): string {
  return tag.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{64}/gi, '*').replace(/:term:.*$/s, ':term:*');
}

const hash = (value: string) => sha256(value, 'base64url').slice(0, 22);

export class Cache {
  private readonly l1: LRUCache<string, Entry>;
  private readonly guard: RedisGuard | undefined;
  readonly generations: Generations;
  private readonly inflight = new Map<string, Promise<unknown>>();
  private readonly stats = new Map<string, Counters>();
  private readonly invalidationsByKind = new Map<string, number>();
  private readonly jitter: number;
  private readonly lockTtlMs: number;
  private readonly lockWaitMs: number;
  private readonly bumpListeners: ((tags: readonly string[]) => void)[] = [];

  constructor(private readonly options: CacheOptions) {
    this.jitter = options.jitter ?? 0.1;
    this.lockTtlMs = options.lockTtlMs ?? 2_000;
    this.lockWaitMs = options.lockWaitMs ?? 200;
    this.l1 = new LRUCache<string, Entry>({
      max: options.l1MaxEntries ?? 10_000,
      maxSize: options.l1MaxBytes ?? 64 * 1024 * 1024,
      // A value larger than the whole bound is simply not kept in L1.
      maxEntrySize: options.l1MaxBytes ?? 64 * 1024 * 1024,
      sizeCalculation: () => 1, // replaced per set with the serialized size
      ttlAutopurge: false,
      disposeAfter: (_value, key, reason) => {
        if (reason === 'evict') this.counter(this.cacheOfKey(key)).l1.evictions += 1;
      },
    });
    if (options.redis) {
      this.guard = new RedisGuard(options.redis.client, {
        timeoutMs: options.redisTimeoutMs ?? 50,
        onStateChange: (state) => {
          options.log?.warn(state === 'open' ? 'cache: redis unavailable, serving from L1 + database' : 'cache: redis back');
          if (state === 'closed') void this.generations.recover();
        },
      });
    }
    this.generations = new Generations({
      prefix: options.prefix,
      guard: this.guard,
      subscriber: options.redis?.subscriber,
      trustMs: options.generationTrustMs ?? 0,
      onRemoteInvalidation: (tags) => this.announceBump(tags),
      onReset: () => this.l1.clear(),
    });
  }

  get distributed(): boolean {
    return this.guard !== undefined;
  }

  start(): Promise<void> {
    return this.generations.start();
  }

  /** Bytes currently held by L1 (never above l1MaxBytes). */
  get l1Bytes(): number {
    return this.l1.calculatedSize;
  }

  /** Empties L1 (entries are read again from L2 or loaded): for memory measurements. */
  clearL1(): void {
    this.l1.clear();
  }

  get l1Entries(): number {
    return this.l1.size;
  }

  /** Reads through L1 → L2 → `load`, storing what was loaded in both layers. */
  async get<A, V>(policy: CachePolicy<A>, args: A, load: () => Promise<V>): Promise<V> {
    const stat = this.counter(policy.name);
    const key = await this.keyOf(policy, args);

    const cached = this.l1.get(key);
    if (cached) {
      stat.l1.hits += 1;
      if (cached.freshUntil < Date.now()) {
        stat.staleServed += 1;
        if (!this.inflight.has(key)) void this.loadOnce(policy, key, load, true).catch(() => undefined);
      }
      return cached.value as V;
    }
    stat.l1.misses += 1;
    // What invalidations count against this cache: the kinds of the tags of what it loads
    // (noted on a miss, not on every lookup: the pattern match showed in profiles of cached reads).
    for (const tag of policy.tags(args)) stat.tagKinds.add(tagKind(tag));
    const running = this.inflight.get(key);
    if (running) {
      stat.singleFlightJoins += 1;
      return running as Promise<V>;
    }
    return this.loadOnce(policy, key, load, false);
  }

  /**
   * A fresh value already in L1 or L2, without loading anything (undefined when
   * there is none). Only hits are counted: the `get` that follows a miss counts it.
   */
  async peek<A, V>(policy: CachePolicy<A>, args: A): Promise<V | undefined> {
    const stat = this.counter(policy.name);
    const key = await this.keyOf(policy, args);
    const cached = this.l1.get(key);
    if (cached && cached.freshUntil >= Date.now()) {
      stat.l1.hits += 1;
      return cached.value as V;
    }
    const l2 = this.l2Of(policy);
    if (!cached && l2) {
      const fromL2 = await this.readL2(l2, key);
      if (fromL2 && fromL2.entry.freshUntil >= Date.now()) {
        stat.l2.hits += 1;
        stat.l1.misses += 1;
        this.setL1(policy, key, fromL2.entry, fromL2.size);
        return fromL2.entry.value as V;
      }
    }
    return undefined;
  }

  /**
   * Calls `listener` with the tags of every bump: this node's invalidations and
   * those other nodes announce (what read routing learns recent writes from).
   */
  onBump(listener: (tags: readonly string[]) => void): void {
    this.bumpListeners.push(listener);
  }

  /**
   * Makes every entry depending on `tags` unreachable, on every node. `alongside`:
   * the write's events, published in the same Redis MULTI as the bump; resolves
   * true when they were, false when the caller must publish them (see Generations.bump).
   */
  async invalidate(tags: readonly string[], alongside?: readonly WireEvent[]): Promise<boolean> {
    const unique = [...new Set(tags)];
    this.announceBump(unique);
    for (const tag of unique) {
      const kind = tagKind(tag);
      this.invalidationsByKind.set(kind, (this.invalidationsByKind.get(kind) ?? 0) + 1);
    }
    return this.generations.bump(unique, alongside);
  }

  /** Makes every entry unreachable, on every node (bumps the epoch every key embeds). */
  async flush(): Promise<void> {
    await this.generations.bump([EPOCH_TAG]);
  }

  private announceBump(tags: readonly string[]): void {
    for (const listener of this.bumpListeners) listener(tags);
  }

  /** The Redis guard of L2, undefined without REDIS_URL (for other caches sharing this one's Redis, stats and generations). */
  get redisGuard(): RedisGuard | undefined {
    return this.guard;
  }

  /** The counters of `cache` in cacheStats (created on first use). */
  countersOf(cache: string): Counters {
    return this.counter(cache);
  }

  /** Counts bumps of `tag`'s kind as invalidations of `cache`. */
  noteTagKind(cache: string, tag: string): void {
    this.counter(cache).tagKinds.add(tagKind(tag));
  }

  /**
   * This cache, telling `record` the tags (and TTL) of every policy read
   * through it: what a response cached whole depended on (see context.ts).
   */
  withTagRecorder(record: (tags: readonly string[], ttlMs: number) => void): Cache {
    const view = Object.create(this) as Cache;
    view.get = (policy, args, load) => {
      record(policy.tags(args), policy.ttlMs);
      return this.get(policy, args, load);
    };
    view.peek = (policy, args) => {
      record(policy.tags(args), policy.ttlMs);
      return this.peek(policy, args);
    };
    return view;
  }

  /** Counts a request that joined an identical one in flight (request deduplication). */
  countDedupJoin(operation = 'operations'): void {
    this.counter(operation).dedupJoins += 1;
  }

  snapshot(): CacheStat[] {
    const out: CacheStat[] = [];
    const guard = this.guard;
    for (const [cache, c] of [...this.stats].sort(([a], [b]) => a.localeCompare(b))) {
      const invalidations = [...c.tagKinds].reduce((sum, kind) => sum + (this.invalidationsByKind.get(kind) ?? 0), 0);
      const l1Total = c.l1.hits + c.l1.misses;
      out.push({
        cache,
        layer: 'L1',
        ...c.l1,
        invalidations,
        singleFlightJoins: c.singleFlightJoins,
        dedupJoins: c.dedupJoins,
        staleServed: c.staleServed,
        hitRate: l1Total ? c.l1.hits / l1Total : 0,
        avgLatencyMs: null,
      });
      if (guard) {
        const l2Total = c.l2.hits + c.l2.misses;
        out.push({
          cache,
          layer: 'L2',
          ...c.l2,
          evictions: 0,
          skipped: 0,
          invalidations,
          singleFlightJoins: 0,
          dedupJoins: 0,
          staleServed: 0,
          hitRate: l2Total ? c.l2.hits / l2Total : 0,
          avgLatencyMs: guard.calls ? guard.latencyMs / guard.calls : null,
        });
      }
    }
    return out;
  }

  async dispose(): Promise<void> {
    this.l1.clear();
    const redis = this.options.redis;
    if (redis) {
      redis.subscriber.disconnect();
      redis.client.disconnect();
    }
  }

  /**
   * `{prefix}v1:{scope}:{cache}:{{argsHash}:{gensHash}}`: the generations of its tags make a bumped entry
   * unreachable. The braces are a cluster hash tag: the entry and its load lock (`…:lock`), read and
   * written together in one script or MULTI, share a slot, while entries spread over the cluster.
   */
  private async keyOf<A>(policy: CachePolicy<A>, args: A): Promise<string> {
    const tags = policy.tags(args);
    const gens = await this.generations.current(tags);
    return `${this.options.prefix}v1:${policy.scope(args)}:${policy.name}:{${hash(JSON.stringify(policy.key ? policy.key(args) : args))}:${hash(gens.join(','))}}`;
  }

  private loadOnce<A, V>(policy: CachePolicy<A>, key: string, load: () => Promise<V>, refresh: boolean): Promise<V> {
    const promise = this.loadThrough(policy, key, load, refresh).finally(() => this.inflight.delete(key));
    this.inflight.set(key, promise);
    return promise;
  }

  private async loadThrough<A, V>(policy: CachePolicy<A>, key: string, load: () => Promise<V>, refresh: boolean): Promise<V> {
    const stat = this.counter(policy.name);
    const guard = this.l2Of(policy);
    if (guard && !refresh) {
      // One round trip: the L2 entry, or on a miss the load lock (taken unless another node holds it).
      const lockKey = `${key}:lock`;
      const token = randomUUID();
      const waitMs = policy.lockWaitMs ?? this.lockWaitMs;
      const reply = await guard.tryRun(
        (r) => r.callBuffer('eval', GET_OR_LOCK, 2, key, lockKey, token, Math.max(this.lockTtlMs, waitMs)) as Promise<Buffer | number>,
        // Redis unreachable: load here, as if the lock were taken (nothing to release).
        null,
      );
      const fromL2 = Buffer.isBuffer(reply) ? this.entryOf(reply) : null;
      if (fromL2) {
        stat.l2.hits += 1;
        this.setL1(policy, key, fromL2.entry, fromL2.size);
        if (fromL2.entry.freshUntil >= Date.now()) return fromL2.entry.value as V;
        stat.staleServed += 1;
        void this.loadOnce(policy, key, load, true).catch(() => undefined);
        return fromL2.entry.value as V;
      }
      stat.l2.misses += 1;
      if (reply === 0) {
        // Another node is loading this key: wait briefly for its result instead of loading too.
        const waited = await this.waitForOtherNode(key, lockKey, waitMs);
        if (waited) {
          stat.l2.hits += 1;
          this.setL1(policy, key, waited.entry, waited.size);
          return waited.entry.value as V;
        }
      } else if (reply === 1) {
        let stored = false;
        try {
          return await this.loadAndStore(policy, key, load, { lockKey, token, released: () => (stored = true) });
        } finally {
          if (!stored) void guard.tryRun((r) => r.eval(RELEASE_LOCK, 1, lockKey, token), 0);
        }
      }
    }
    return this.loadAndStore(policy, key, load);
  }

  /** `lock`: released in the MULTI that stores the value (`released()` is called when it was). */
  private async loadAndStore<A, V>(
    policy: CachePolicy<A>,
    key: string,
    load: () => Promise<V>,
    lock?: { lockKey: string; token: string; released: () => void },
  ): Promise<V> {
    const stat = this.counter(policy.name);
    stat.loads += 1;
    // From the primary: a lagging replica's answer would be cached under the new generations and stay stale.
    const value = await readFromPrimary(load);
    if (policy.cacheIf && !policy.cacheIf(value)) return value;
    const ttl = this.jittered(policy.ttlMs);
    const entry: Entry = { value, freshUntil: Date.now() + ttl };
    const lifetime = ttl + (policy.staleWhileRevalidateMs ?? 0);
    const bytes = serialize(entry);
    this.setL1(policy, key, entry, bytes.length, lifetime);
    const l2 = this.l2Of(policy);
    if (l2) {
      const ok = await l2.tryRun(async (r) => {
        if (!lock) return r.set(key, bytes, 'PX', lifetime);
        // The value and the lock's release in one round trip.
        const results = await r.multi().set(key, bytes, 'PX', lifetime).eval(RELEASE_LOCK, 1, lock.lockKey, lock.token).exec();
        lock.released();
        return results?.[0]?.[0] ? null : 'OK';
      }, null);
      if (ok) stat.l2.sets += 1;
    }
    return value;
  }

  private setL1<A>(policy: CachePolicy<A>, key: string, entry: Entry, size: number, lifetime?: number): void {
    const ttl = lifetime ?? Math.max(1, entry.freshUntil - Date.now() + (policy.staleWhileRevalidateMs ?? 0));
    this.l1.set(key, entry, { ttl, size: Math.max(1, size) });
    if (this.l1.has(key)) this.counter(policy.name).l1.sets += 1;
  }

  /** L2 for this policy's entries: Redis, unless there is none or the policy is not shared. */
  private l2Of<A>(policy: CachePolicy<A>): RedisGuard | undefined {
    return policy.shared === false ? undefined : this.guard;
  }

  private async readL2(l2: RedisGuard, key: string): Promise<{ entry: Entry; size: number } | null> {
    const raw = await l2.tryRun((r) => r.getBuffer(key), null);
    return raw ? this.entryOf(raw) : null;
  }

  private entryOf(raw: Buffer): { entry: Entry; size: number } | null {
    try {
      return { entry: deserialize(raw) as Entry, size: raw.length };
    } catch {
      return null;
    }
  }

  /**
   * Waits for the node holding the lock to store its result. Stops early when the
   * lock is released without a result (that load failed or was not cacheable).
   */
  private async waitForOtherNode(key: string, lockKey: string, waitMs: number): Promise<{ entry: Entry; size: number } | null> {
    const deadline = Date.now() + waitMs;
    // Polls every 10 ms at first, backing off to 100 ms for long waits (a model's answer takes seconds).
    for (let pause = 10; Date.now() < deadline; pause = Math.min(100, pause * 1.5)) {
      await new Promise((r) => setTimeout(r, Math.min(pause, Math.max(1, deadline - Date.now()))));
      const [raw, lock] = await this.guard!.tryRun((r) => r.mgetBuffer(key, lockKey), [null, null]);
      if (raw) {
        try {
          return { entry: deserialize(raw) as Entry, size: raw.length };
        } catch {
          return null;
        }
      }
      if (!lock) return null;
    }
    return null;
  }

  private jittered(ttlMs: number): number {
    return Math.max(1, Math.round(ttlMs * (1 + (Math.random() * 2 - 1) * this.jitter)));
  }

  private counter(cache: string): Counters {
    let c = this.stats.get(cache);
    if (!c) this.stats.set(cache, (c = counters()));
    return c;
  }

  /** Keys end `…:{cache}:{{argsHash}:{gensHash}}` and the hashes hold no colon. */
  private cacheOfKey(key: string): string {
    return key.split(':').at(-3) ?? 'unknown';
  }
}

/** The entry (KEYS[1]); on a miss 1 when the load lock (KEYS[2]) was taken for token ARGV[1], 0 when another holds it. */
const GET_OR_LOCK = `local v = redis.call('GET', KEYS[1])
if v then return v end
if redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[2], 'NX') then return 1 end
return 0`;

/** Deletes the lock only if this node still holds it. */
const RELEASE_LOCK = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
