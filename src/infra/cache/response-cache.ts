import { deserialize, serialize } from 'node:v8';
import { LRUCache } from 'lru-cache';
import type { Cache } from './cache.js';
import { sha256 } from '../hash.js';

/**
 * Finished, serialized GraphQL responses (the `response` cache of cacheStats).
 * An entry holds the bytes, their ETag, and the generations of the tags the
 * execution depended on *as read before it ran*; a lookup reads the current
 * generations of those tags (one batched call, shared with every other lookup
 * of the tick) and serves the entry only if none moved. So a write on any node
 * makes the entry unreachable exactly as it does a resolver-cache entry, and a
 * write that lands while the execution runs leaves an entry that never hits.
 *
 * Why not @envelop/response-cache: it keys invalidation on entity ids it
 * collects by walking every result (a cost per field per row, the cost this
 * cache exists to remove) and keeps its own invalidation store; Parley already
 * has tag generations shared by every node, which this reuses as they are.
 */

export interface StoredResponse {
  /** The JSON text (what Yoga's result processor is handed). */
  text: string;
  /** The same JSON as UTF-8, written to the socket as it is: encoding 100 KB per hit showed in profiles. */
  bytes: Buffer;
  /** Weak ETag of the text (an HTTP representation of the same JSON, whatever encoding carries it). */
  etag: string;
  /** Generations of the entry's tags when its execution started (the tags themselves follow from its key's document). */
  gens: string[];
  expiresAt: number;
}

export interface ResponseCacheOptions {
  /** Key prefix (PARLEY_REDIS_PREFIX). */
  prefix: string;
  /** L1 bound in bytes (the text's length plus its UTF-8 bytes). @default 64 MiB */
  maxBytes?: number;
  /**
   * The request of a response, counted per entry key on this node within `admitWindowMs`, that stores it:
   * 1 stores every response, 2 (PARLEY_RESPONSE_CACHE_ADMIT_AFTER's default) a response asked for again. @default 1
   */
  admitAfter?: number;
  /** How long a request is remembered for admission. @default 60_000 */
  admitWindowMs?: number;
}

export interface ResponseLookup {
  /** The stored response, when its tags' generations have not moved. */
  hit: StoredResponse | undefined;
  /** Current generations of the tags: what an entry stored after this execution must carry. */
  gens: string[];
  /** Where the hit came from. */
  layer: 'l1' | 'l2' | undefined;
  /** A miss that asked L2 too. */
  l2?: boolean;
}

const NAME = 'response';

export function weakEtag(text: string): string {
  return `W/"${sha256(text, 'base64url').slice(0, 27)}"`;
}

export class ResponseCache {
  private readonly l1: LRUCache<string, StoredResponse>;
  /**
   * Requests of entries not stored yet (TinyLFU's "doorkeeper"): a response asked for once in a while
   * is never stored. Measured on nested cursor pages, which are mostly asked for once: storing each
   * (its copy in L1 pushed out by the next, v8-serialised and SET in Redis, ~110 KB) cost 2.3 ms of
   * CPU per request, 40 % of the request (5.8 vs 3.5 ms with the cache off).
   */
  private readonly sightings: LRUCache<string, number> | undefined;

  constructor(
    private readonly cache: Cache,
    private readonly options: ResponseCacheOptions,
  ) {
    const maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.l1 = new LRUCache<string, StoredResponse>({
      maxSize: maxBytes,
      maxEntrySize: maxBytes,
      sizeCalculation: (entry) => Math.max(1, entry.text.length + entry.bytes.length),
      disposeAfter: (_value, _key, reason) => {
        if (reason === 'evict') this.cache.countersOf(NAME).l1.evictions += 1;
      },
    });
    const admitAfter = options.admitAfter ?? 1;
    this.sightings = admitAfter > 1 ? new LRUCache<string, number>({ max: 50_000, ttl: options.admitWindowMs ?? 60_000 }) : undefined;
  }

  /**
   * Whether the response under `key`, just executed, is stored: with `admitAfter` n, on its n-th request
   * within the window on this node. One not stored is counted as `skipped` in its layer's counters.
   */
  admit(key: string): boolean {
    if (!this.sightings) return true;
    const seen = (this.sightings.get(key) ?? 0) + 1;
    if (seen >= (this.options.admitAfter ?? 1)) {
      this.sightings.delete(key);
      return true;
    }
    this.sightings.set(key, seen);
    this.cache.countersOf(NAME).l1.skipped += 1;
    return false;
  }

  /** Bytes held in this node (never above maxBytes). */
  get l1Bytes(): number {
    return this.l1.calculatedSize;
  }

  /** Empties this node's copies (entries are read again from Redis or executed): for memory measurements. */
  clearL1(): void {
    this.l1.clear();
  }

  /** `{prefix}resp:{scope}:{hash}`: the scope (a product) is part of the key, so no entry is ever shared across products. */
  key(scope: string, identity: string): string {
    return `${this.options.prefix}resp:${scope}:${sha256(identity, 'base64url')}`;
  }

  /** The entry under `key` if its tags' generations have not moved, counted as a hit or miss of its layer. */
  async lookup(key: string, tags: readonly string[]): Promise<ResponseLookup> {
    const found = await this.read(key, tags);
    this.count(found);
    return found;
  }

  /**
   * `lookup` without counting it: for a lookup made on a guess (the product a key had last time) that is
   * counted only if the guess proves right; `count` it then.
   */
  async read(key: string, tags: readonly string[]): Promise<ResponseLookup> {
    const inL1 = this.l1.get(key);
    const guard = inL1 ? undefined : this.cache.redisGuard;
    // The L2 read and the generations check go out together: one round trip of waiting, not two.
    const [gens, fromL2] = await Promise.all([this.cache.generations.current(tags), guard ? guard.tryRun((r) => r.getBuffer(key), null) : null]);
    const now = Date.now();
    if (inL1) {
      if (inL1.expiresAt > now && sameGenerations(inL1.gens, gens)) return { hit: inL1, gens, layer: 'l1' };
      this.l1.delete(key);
    }
    if (!guard) return { hit: undefined, gens, layer: undefined };
    const entry = fromL2 ? decode(fromL2) : undefined;
    if (entry && entry.expiresAt > now && sameGenerations(entry.gens, gens)) {
      this.setL1(key, entry);
      return { hit: entry, gens, layer: 'l2' };
    }
    return { hit: undefined, gens, layer: undefined, l2: true };
  }

  count(found: ResponseLookup): void {
    const stat = this.cache.countersOf(NAME);
    if (found.layer === 'l1') return void (stat.l1.hits += 1);
    stat.l1.misses += 1;
    if (found.layer === 'l2') stat.l2.hits += 1;
    else if (found.l2) stat.l2.misses += 1;
  }

  /** Stores a response read at generations `gens` (from the lookup before it ran); L2 is written in the background. */
  store(key: string, tags: readonly string[], gens: readonly string[], text: string, ttlMs: number): StoredResponse {
    for (const tag of tags) this.cache.noteTagKind(NAME, tag);
    const entry: StoredResponse = { text, bytes: Buffer.from(text), etag: weakEtag(text), gens: [...gens], expiresAt: Date.now() + ttlMs };
    this.setL1(key, entry);
    const guard = this.cache.redisGuard;
    if (guard) {
      const { text: _, ...stored } = entry;
      const bytes = serialize(stored);
      void guard
        .tryRun((r) => r.set(key, bytes, 'PX', ttlMs), null)
        .then((ok) => {
          if (ok) this.cache.countersOf(NAME).l2.sets += 1;
        });
    }
    return entry;
  }

  private setL1(key: string, entry: StoredResponse): void {
    const ttl = entry.expiresAt - Date.now();
    if (ttl <= 0) return;
    this.l1.set(key, entry, { ttl });
    if (this.l1.has(key)) this.cache.countersOf(NAME).l1.sets += 1;
  }
}

function sameGenerations(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** An L2 value: the entry without its text, which is the bytes decoded. */
function decode(raw: Buffer): StoredResponse | undefined {
  try {
    const entry = deserialize(raw) as Omit<StoredResponse, 'text'>;
    if (!(entry?.bytes instanceof Uint8Array) || !Array.isArray(entry.gens)) return undefined;
    const bytes = Buffer.from(entry.bytes.buffer, entry.bytes.byteOffset, entry.bytes.byteLength);
    return { ...entry, bytes, text: bytes.toString('utf8') };
  } catch {
    return undefined;
  }
}
