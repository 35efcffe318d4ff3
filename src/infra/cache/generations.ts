import { randomUUID } from 'node:crypto';
import DataLoader from 'dataloader';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { WireEvent } from '../pubsub/index.js';
import { perSlot, slotGroups } from '../redis-slots.js';
import type { RedisGuard } from './redis-guard.js';

/**
 * Tag generations: a write bumps the counter of each tag it affects (O(1), no
 * key scans, no growing sets); cache keys embed the generations of their tags,
 * so entries written before the bump are simply never read again and age out.
 *
 * With Redis the counters live there (INCR); nodes read them batched per tick and
 * keep a bounded local copy, dropped for a tag when another node announces a
 * bump over pub/sub, and used on its own while Redis is unreachable.
 * Without Redis (or while it is down) generations are local values that can
 * never repeat: `l<n>` from a process-wide counter, distinct from Redis' `r<n>`.
 *
 * In a Redis Cluster the counters of one product's tags share a slot (see `key`),
 * so a write's bump stays one MULTI; reads mixing products and the epoch, and
 * the rare bump that spans products, are sent as one command per slot.
 */

/** Implicit tag of every entry: bumped to drop everything at once (Redis recovery). */
export const EPOCH_TAG = '*';

export interface InvalidationMessage {
  origin: string;
  tags: string[];
}

export interface GenerationsOptions {
  prefix: string;
  guard?: RedisGuard | undefined;
  subscriber?: Redis | undefined;
  /**
   * How long a node trusts its local copy of a tag's generation before asking
   * Redis again. 0 (the default) asks on every read — one MGET per turn of the
   * event loop for all concurrent reads — so a read that starts after a write returned on another
   * node is never stale; more trades that for fewer Redis round trips, leaning
   * on the pub/sub invalidations (sub-millisecond on a LAN, lost during a
   * Redis outage). @default 0
   */
  trustMs?: number;
  /** Bound of the local copy. @default 100_000 */
  maxLocalTags?: number;
  /** Called when another node bumped tags (after the local copy was updated). */
  onRemoteInvalidation?: (tags: string[]) => void;
  /** Called when the local view had to be reset (Redis came back): drop L1. */
  onReset?: () => void;
}

interface LocalGeneration {
  gen: string;
  /** When Redis last confirmed it; 0 for a local-only generation. */
  confirmedAt: number;
}

export class Generations {
  readonly nodeId = randomUUID();
  private readonly local: LRUCache<string, LocalGeneration>;
  private counter = 0;
  private readonly channel: string;
  private readonly trustMs: number;
  /** Bumps that could not reach Redis; on recovery they force an epoch bump. */
  private missedBumps = false;
  /** Batches the generation reads of all requests of one turn of the event loop into one MGET. */
  private readonly remote: DataLoader<string, string | null> | undefined;

  constructor(private readonly options: GenerationsOptions) {
    this.local = new LRUCache({ max: options.maxLocalTags ?? 100_000 });
    this.channel = `${options.prefix}cache:invalidate`;
    this.trustMs = options.trustMs ?? 0;
    const guard = options.guard;
    if (guard) {
      this.remote = new DataLoader(
        async (tags) => {
          const keys = tags.map((t) => this.key(t));
          const values = await guard.tryRun((r) => perSlot(r, keys, (group) => r.mget(...group)), null);
          return values ? values.map((v) => `r${v ?? 0}`) : tags.map(() => null);
        },
        // Collected until the loop's check phase rather than the end of the tick: requests whose bytes
        // arrived in the same poll share one MGET, where DataLoader's default gave each its own. A
        // Redis round trip is the largest CPU cost of a cached read (the write to the socket
        // delivers to Redis in the caller's syscall); still sent after every request it answers
        // has arrived, so a read that starts after a write returned is never stale.
        { cache: false, maxBatchSize: 500, batchScheduleFn: (run) => setImmediate(run) },
      );
    }
  }

  get distributed(): boolean {
    return this.options.guard !== undefined;
  }

  /** Starts listening for other nodes' bumps; resolves once subscribed (or at once without Redis). */
  async start(): Promise<void> {
    const sub = this.options.subscriber;
    if (!sub) return;
    sub.on('message', (channel: string, raw: string) => {
      if (channel !== this.channel) return;
      let message: InvalidationMessage;
      try {
        message = JSON.parse(raw) as InvalidationMessage;
      } catch {
        return;
      }
      if (message.origin === this.nodeId || !Array.isArray(message.tags)) return;
      for (const tag of message.tags) this.local.delete(tag);
      this.options.onRemoteInvalidation?.(message.tags);
    });
    // After a reconnect, invalidations sent meanwhile were lost: start from Redis again.
    let connectedBefore = sub.status === 'ready';
    sub.on('ready', () => {
      if (connectedBefore) void this.recover();
      connectedBefore = true;
    });
    // Connected: wait until subscribed. Redis down: the SUBSCRIBE waits in the
    // connection's queue and is sent on connect; start-up must not wait for it.
    const subscribed = sub.subscribe(this.channel).catch(() => undefined);
    if (sub.status === 'ready') await subscribed;
  }

  /** Current generations of `tags` (plus the epoch), in order. */
  async current(tags: readonly string[]): Promise<string[]> {
    const all = [EPOCH_TAG, ...tags];
    const now = Date.now();
    const guard = this.options.guard;
    if (this.remote && guard && !guard.isOpen) {
      const ask = all.filter((tag) => {
        const known = this.local.get(tag);
        return !known || known.confirmedAt === 0 || now - known.confirmedAt >= this.trustMs;
      });
      if (ask.length) {
        const values = await this.remote.loadMany(ask);
        ask.forEach((tag, i) => {
          const gen = values[i];
          if (typeof gen === 'string') this.local.set(tag, { gen, confirmedAt: now });
        });
      }
    }
    return all.map((tag) => {
      let known = this.local.get(tag);
      if (!known) {
        known = { gen: this.fresh(), confirmedAt: 0 };
        this.local.set(tag, known);
      }
      return known.gen;
    });
  }

  /**
   * Bumps `tags` and tells every node. Never throws: without Redis the bump is
   * local. `alongside`: events the write announces, published in the same MULTI
   * (one round trip for both, and no event about a write whose bump was lost).
   * Resolves true when they were published, false when the caller must publish
   * them itself (no Redis, or the MULTI failed).
   */
  async bump(tags: readonly string[], alongside: readonly WireEvent[] = []): Promise<boolean> {
    if (!tags.length) return false;
    const guard = this.options.guard;
    if (guard) {
      const values: (number | null)[] = tags.map(() => null);
      let published = false;
      await guard.tryRun(async (r) => {
        const keys = tags.map((tag) => this.key(tag));
        // One MULTI per slot (one in all for one Redis, or for the tags of one product); the
        // first also carries the announcement and the events, so they go out at most once.
        const outcomes = await Promise.allSettled(
          slotGroups(r, keys).map(async (group, g) => {
            const transaction = r.multi();
            for (const i of group) transaction.incr(keys[i]!);
            if (g === 0) {
              transaction.publish(this.channel, JSON.stringify({ origin: this.nodeId, tags: [...tags] } satisfies InvalidationMessage));
              for (const event of alongside) transaction.publish(event.channel, event.payload);
            }
            const results = await transaction.exec();
            group.forEach((i, j) => {
              const [error, value] = results?.[j] ?? [new Error('no reply')];
              values[i] = error ? null : Number(value);
            });
            if (g === 0) published = results?.slice(group.length).every(([error]) => !error) ?? false;
          }),
        );
        // A failed slot counts against Redis (the guard's circuit), after the others were recorded.
        const failed = outcomes.find((outcome) => outcome.status === 'rejected');
        if (failed) throw failed.reason;
      }, undefined);
      const now = Date.now();
      tags.forEach((tag, i) => {
        const value = values[i];
        if (value === null || value === undefined) {
          this.missedBumps = true;
          this.local.set(tag, { gen: this.fresh(), confirmedAt: 0 });
        } else this.local.set(tag, { gen: `r${value}`, confirmedAt: now });
      });
      if (published) for (const event of alongside) event.sent();
      return published && alongside.length > 0;
    }
    for (const tag of tags) this.local.set(tag, { gen: this.fresh(), confirmedAt: 0 });
    return false;
  }

  /**
   * Redis is back: forget the local view (bumps from other nodes may have been
   * missed) and, if this node wrote while Redis was away, bump the epoch so no
   * node reads an L2 entry from before those writes.
   */
  async recover(): Promise<void> {
    this.local.clear();
    this.options.onReset?.();
    if (this.missedBumps && this.options.guard) {
      const ok = await this.options.guard.tryRun(async (r) => {
        await r.incr(this.key(EPOCH_TAG));
        await r.publish(this.channel, JSON.stringify({ origin: this.nodeId, tags: [EPOCH_TAG] }));
        return true;
      }, false);
      if (ok) this.missedBumps = false;
    }
  }

  private fresh(): string {
    this.counter += 1;
    return `l${this.nodeId.slice(0, 8)}.${this.counter}`;
  }

  /**
   * `{prefix}gen:{p:<productId>}<rest of the tag>` for a product's tags (`product:<id>…`), so all of a
   * product's counters share one cluster slot; `{prefix}gen:<tag>` for the others (the epoch, key hashes).
   */
  key(tag: string): string {
    const product = /^product:([^:{}]+)/.exec(tag);
    if (product) return `${this.options.prefix}gen:{p:${product[1]}}${tag.slice(product[0].length)}`;
    return `${this.options.prefix}gen:${tag}`;
  }
}
