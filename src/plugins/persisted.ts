import { readFileSync } from 'node:fs';
import { GraphQLError, parse, validate, type GraphQLSchema } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { LRUCache } from 'lru-cache';
import { RedisGuard } from '../infra/cache/redis-guard.js';
import type { RedisClient } from '../infra/redis.js';
import { sha256 } from '../infra/hash.js';

/**
 * Persisted operations, two ways (PARLEY_APQ, PARLEY_PERSISTED_ONLY):
 *
 * - Automatic persisted queries (Apollo's protocol): a client sends
 *   `extensions.persistedQuery.sha256Hash` alone; an unknown hash answers
 *   PERSISTED_QUERY_NOT_FOUND and the client sends hash + document once. A
 *   document is remembered only after it was validated and its caller
 *   authenticated (so nobody can fill the store with junk), in this process and
 *   in Redis, where every node finds it.
 * - Allow-list (PARLEY_PERSISTED_OPERATIONS, checked against the schema at
 *   start-up): its documents are always known by hash; with
 *   PARLEY_PERSISTED_ONLY=true nothing else runs — over HTTP or WebSocket.
 */

export interface PersistedParams {
  query?: string | null | undefined;
  extensions?: Record<string, unknown> | null | undefined;
}

/** The document a request runs, and the hash to remember it by once it has passed validation and authentication. */
export interface ResolvedDocument {
  query: string | undefined;
  register?: string;
}

export interface PersistedOperations {
  resolve(params: PersistedParams): Promise<ResolvedDocument>;
  /** Remembers an APQ document (after it was validated and its caller authenticated). */
  register(hash: string, query: string): Promise<void>;
}

export interface PersistedOptions {
  apq: boolean;
  only: boolean;
  allowList: ReadonlyMap<string, string>;
  /** Shared APQ store (every node); without it documents are remembered in this process only. */
  redis?: RedisClient | undefined;
  redisPrefix?: string;
  redisTimeoutMs?: number;
}

/** How long Redis keeps an APQ document nobody asked for (each hit refreshes it). */
const APQ_TTL_S = 7 * 86_400;
/** Documents kept in this process: a bounded LRU by characters. */
const LOCAL_MAX_CHARS = 8 * 1024 * 1024;
const SHA256_HEX = /^[0-9a-f]{64}$/;

export function createPersistedOperations(options: PersistedOptions): PersistedOperations {
  const local = new LRUCache<string, string>({ maxSize: LOCAL_MAX_CHARS, sizeCalculation: (v) => Math.max(1, v.length) });
  const guard = options.redis ? new RedisGuard(options.redis, { timeoutMs: options.redisTimeoutMs ?? 50 }) : undefined;
  const key = (hash: string) => `${options.redisPrefix ?? 'parley:'}apq:${hash}`;

  async function lookup(hash: string): Promise<string | undefined> {
    const listed = options.allowList.get(hash);
    if (listed !== undefined) return listed;
    if (!options.apq || options.only) return undefined;
    const known = local.get(hash);
    if (known !== undefined) return known;
    if (!guard) return undefined;
    // Redis down or slow: a miss, and the client sends the document again (the protocol's own recovery).
    const stored = await guard.run((redis) => redis.getex(key(hash), 'EX', APQ_TTL_S)).catch(() => null);
    // A stored document is trusted only if it still hashes to its key.
    if (stored === null || sha256(stored) !== hash) return undefined;
    local.set(hash, stored);
    return stored;
  }

  return {
    async resolve(params) {
      // Yoga checks the parameters' types after this runs: a query that is not text must not reach sha256.
      if (params.query !== undefined && params.query !== null && typeof params.query !== 'string') {
        throw persistedError(`Expected "query" param to be a string, but given ${typeof params.query}.`, 'BAD_REQUEST', 400);
      }
      const persisted = persistedQueryOf(params.extensions);
      if (!persisted) {
        if (params.query === undefined || params.query === null) return { query: undefined };
        if (options.only && !options.allowList.has(sha256(params.query))) throw notAllowed();
        return { query: params.query };
      }
      if (!options.apq && !options.only && options.allowList.size === 0) {
        throw persistedError('PersistedQueryNotSupported', 'PERSISTED_QUERY_NOT_SUPPORTED');
      }
      const { hash } = persisted;
      if (params.query !== undefined && params.query !== null && params.query !== '') {
        if (sha256(params.query) !== hash) throw persistedError('provided sha256Hash does not match the query', 'BAD_USER_INPUT', 400);
        if (options.allowList.has(hash)) return { query: params.query };
        if (options.only) throw notAllowed();
        if (!options.apq) throw persistedError('PersistedQueryNotSupported', 'PERSISTED_QUERY_NOT_SUPPORTED');
        return { query: params.query, register: hash };
      }
      const found = await lookup(hash);
      if (found !== undefined) return { query: found };
      if (options.only) throw notAllowed();
      // Apollo clients recognise this message (and the code) and retry with the document.
      throw persistedError('PersistedQueryNotFound', 'PERSISTED_QUERY_NOT_FOUND');
    },
    async register(hash, query) {
      if (options.allowList.has(hash) || local.has(hash)) return;
      local.set(hash, query);
      await guard?.run((redis) => redis.set(key(hash), query, 'EX', APQ_TTL_S)).catch(() => undefined);
    },
  };
}

/** `{ version: 1, sha256Hash }` from a request's extensions; a malformed one is the client's error. */
function persistedQueryOf(extensions: Record<string, unknown> | null | undefined): { hash: string } | undefined {
  const value = extensions?.persistedQuery;
  if (value === undefined || value === null) return undefined;
  const { version, sha256Hash } = value as { version?: unknown; sha256Hash?: unknown };
  if (typeof value !== 'object' || version !== 1) {
    throw persistedError('extensions.persistedQuery must be { version: 1, sha256Hash }', 'PERSISTED_QUERY_NOT_SUPPORTED', 400);
  }
  if (typeof sha256Hash !== 'string' || !SHA256_HEX.test(sha256Hash)) {
    throw persistedError('extensions.persistedQuery.sha256Hash must be 64 lowercase hex digits', 'BAD_USER_INPUT', 400);
  }
  return { hash: sha256Hash };
}

function notAllowed(): GraphQLError {
  return persistedError('Only persisted operations are accepted here (PARLEY_PERSISTED_ONLY)', 'PERSISTED_QUERY_NOT_ALLOWED', 400);
}

function persistedError(message: string, code: string, status = 200): GraphQLError {
  // 200 for NOT_FOUND/NOT_SUPPORTED as Apollo Server answers them (the client retries with the document);
  // never cached: the next request may well succeed.
  return new GraphQLError(message, { extensions: { code, http: { status, headers: { 'cache-control': 'no-store' } } } });
}

/**
 * Reads an allow-list file: `{ "<sha256 hex>": "<document>" }` (GraphQL Codegen's
 * persisted documents, Apollo's manifest turned into a map) or an array of
 * documents. Every entry must hash to its key, parse and validate against the
 * schema: a stale manifest stops the start, not a client at run time.
 */
export function loadAllowList(file: string, schema: GraphQLSchema): Map<string, string> {
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw new Error(`PARLEY_PERSISTED_OPERATIONS: cannot read ${file}: ${(error as Error).message}`);
  }
  const entries: [string, unknown][] = Array.isArray(raw)
    ? raw.map((doc) => [typeof doc === 'string' ? sha256(doc) : '', doc])
    : raw && typeof raw === 'object'
      ? Object.entries(raw)
      : [];
  if (!entries.length)
    throw new Error(`PARLEY_PERSISTED_OPERATIONS: ${file} holds no operations (expected an object of sha256 → document or an array of documents)`);
  const list = new Map<string, string>();
  for (const [hash, doc] of entries) {
    if (typeof doc !== 'string') throw new Error(`PARLEY_PERSISTED_OPERATIONS: entry ${hash || '?'} is not a string`);
    if (sha256(doc) !== hash) throw new Error(`PARLEY_PERSISTED_OPERATIONS: entry ${hash} is not the sha256 of its document`);
    let errors;
    try {
      errors = validate(schema, parse(doc));
    } catch (error) {
      throw new Error(`PARLEY_PERSISTED_OPERATIONS: entry ${hash} does not parse: ${(error as Error).message}`);
    }
    if (errors.length) throw new Error(`PARLEY_PERSISTED_OPERATIONS: entry ${hash} is not valid against the schema: ${errors[0]!.message}`);
    list.set(hash, doc);
  }
  return list;
}

/**
 * The Yoga side: swaps a hash for its document before parsing, and remembers
 * an APQ document once the operation is about to run (validated, caller
 * authenticated). graphql-ws operations go through the same `resolve` in app.ts.
 */
export function usePersistedOperations(persisted: PersistedOperations): Plugin {
  const pending = new WeakMap<Request, { hash: string; query: string }>();
  const remember = (request: Request | undefined) => {
    const entry = request && pending.get(request);
    if (!entry) return;
    pending.delete(request);
    void persisted.register(entry.hash, entry.query);
  };
  return {
    async onParams({ params, setParams, request }) {
      const resolved = await persisted.resolve(params as PersistedParams);
      if (resolved.register && resolved.query) pending.set(request, { hash: resolved.register, query: resolved.query });
      if (resolved.query !== params.query) setParams({ ...params, query: resolved.query });
    },
    onExecute({ args }) {
      remember((args.contextValue as { request?: Request }).request);
    },
    onSubscribe({ args }) {
      remember((args.contextValue as { request?: Request }).request);
    },
  };
}
