import {
  getNamedType,
  getOperationAST,
  isAbstractType,
  isObjectType,
  parse,
  TypeInfo,
  visit,
  visitWithTypeInfo,
  type ExecutionResult,
  type GraphQLSchema,
} from 'graphql';
import type { GraphQLParams, Plugin } from 'graphql-yoga';
import { LRUCache } from 'lru-cache';
import type { Context } from '../context.js';
import type { ResponseCache, StoredResponse } from '../infra/cache/response-cache.js';
import { pinToPrimary } from '../infra/read-routing.js';
import { credentialsFromHeaders, type Principal } from '../services/auth.js';
import type { TagOfProduct } from '../schema/response-tags.js';

export interface ResponseCacheOptions {
  /** The tag of the product row, which every response depends on. */
  productTag: TagOfProduct;
  responses: ResponseCache;
  schema: GraphQLSchema;
  /** Tags of each type a selection can reach (schema/response-tags.ts); `false` or absent = never cached. */
  typeTags: Readonly<Record<string, readonly TagOfProduct[] | false>>;
  /** Longest life of an entry; shorter when the execution read a cache policy with a shorter TTL. @default 60_000 */
  ttlMs?: number;
  /** Distinct (document, operation) pairs whose analysis is kept. @default 1_000 */
  maxDocuments?: number;
  /** Called for each request answered from the cache (operation metrics count it as a query that ran no SQL). */
  onHit?: (operationName: string, durationMs: number, by: 'server' | 'yoga') => void;
  /** Path of the GraphQL endpoint: requests to it are looked up before Yoga parses them. @default '/graphql' */
  graphqlEndpoint?: string;
}

/** What one document's operation allows: its kind, and the tags of its types (null: not cacheable whole). */
interface DocumentInfo {
  operation: 'query' | 'mutation' | 'subscription' | undefined;
  name?: string | undefined;
  tags: readonly TagOfProduct[] | null;
}

interface Pending {
  key: string;
  tags: string[];
  gens: string[];
}

/** A request's GraphQL parameters as the early lookup reads them (only the plain, well-formed case). */
export interface PlainParams {
  query: string;
  operationName?: string | null | undefined;
  variables?: Record<string, unknown> | null | undefined;
}

/** What a lookup found for a cacheable request: the stored response, or what its execution stores under. */
export interface Found {
  info: DocumentInfo;
  hit: StoredResponse | undefined;
  pending: Pending;
}

/** A lookup made before Yoga (http/cached-responses.ts) and handed to it: Yoga answers or executes with it. */
export interface EarlyLookup {
  params: PlainParams;
  /** The media type of the answer (regularMediaType). */
  mediaType: string;
  /** Undefined: not cacheable (a mutation, a publishable key, …). */
  found: Found | undefined;
  started: number;
}

/** Only what a lookup reads of a request's headers: a fetch Request's or node's IncomingMessage's. */
export type HeaderReader = Pick<Headers, 'get'>;

/**
 * The lookup of a query's finished response, shared by the two places that make it: the HTTP server,
 * before Yoga is involved (http/cached-responses.ts), and Yoga's plugin (useResponseCache) for requests
 * that reach Yoga otherwise (fetch calls, persisted operations, chunked bodies, pages with an Origin).
 */
export class ResponseLookups {
  private readonly documents: LRUCache<string, DocumentInfo>;
  // The product each key last authenticated as (a guess: never served unchecked).
  private readonly productOfKey = new LRUCache<string, string>({ max: 10_000 });
  // Requests (IncomingMessage) looked up before Yoga and handed to it; null: not plain, nothing to look up.
  private readonly handed = new WeakMap<object, EarlyLookup | null>();
  readonly endpoint: string;

  constructor(readonly options: ResponseCacheOptions) {
    this.documents = new LRUCache<string, DocumentInfo>({ max: options.maxDocuments ?? 1_000 });
    this.endpoint = options.graphqlEndpoint ?? '/graphql';
  }

  /** The entry a request's parameters name, with the generations its tags have now; undefined if not cacheable. */
  async find(params: PlainParams, headers: HeaderReader, principalOf: () => Promise<Principal>): Promise<Found | undefined> {
    const { responses } = this.options;
    const info = this.infoOf(params.query, params.operationName ?? undefined);
    if (info.operation !== 'query' || !info.tags) return undefined;
    const identity = `${params.operationName ?? ''}\n${JSON.stringify(params.variables ?? {})}\n${params.query}`;
    const entryOf = (productId: string) => {
      const tags = info.tags!.map((tag) => tag(productId));
      const key = responses.key(productId, identity);
      return { key, tags, read: responses.read(key, tags) };
    };
    // The product these credentials named last time: its entry is read while they are checked, so the
    // generations of both go out in one MGET (one Redis round trip of waiting, not two). Served only
    // if the check names the same product.
    const productKey = credentialsFromHeaders(headers).productKey;
    const guess = productKey !== undefined ? this.productOfKey.get(productKey) : undefined;
    const guessed = guess !== undefined ? entryOf(guess) : undefined;
    guessed?.read.catch(() => undefined);
    const principal = await principalOf();
    // A publishable key's response depends on its conversation token and on checks (auth-scopes) that a
    // stored response would skip: never looked up or stored, so no secret-key response can reach it.
    if (!principal.product || principal.isAdmin || principal.key?.kind !== 'SECRET') return undefined;
    const productId = principal.product.id;
    if (productKey !== undefined) this.productOfKey.set(productKey, productId);
    const entry = guess === productId ? guessed! : entryOf(productId);
    const found = await entry.read;
    responses.count(found);
    return { info, hit: found.hit, pending: { key: entry.key, tags: entry.tags, gens: found.gens } };
  }

  /**
   * The early lookup of a request's plain parameters (null when they are not plain: Yoga reads them
   * itself). A refused principal (wrong key, rate limited) is not cacheable here: Yoga's context factory
   * asks again and answers with the refusal.
   */
  async early(
    params: PlainParams | undefined,
    mediaType: string,
    started: number,
    headers: HeaderReader,
    principalOf: () => Promise<Principal>,
  ): Promise<EarlyLookup | null> {
    if (!params) return null;
    const found = await this.find(params, headers, principalOf).catch(() => undefined);
    return { params, mediaType, found, started };
  }

  /** Counts a request answered from the cache. */
  answered(found: Found, started: number, by: 'server' | 'yoga'): void {
    this.options.onHit?.(found.info.name ?? 'anonymous', performance.now() - started, by);
  }

  /** A lookup made before Yoga, for Yoga to answer or execute (keyed by the IncomingMessage, its server context's `req`). */
  handOver(req: object, lookup: EarlyLookup | null): void {
    this.handed.set(req, lookup);
  }

  /** What was handed over for this request; undefined when nothing was (Yoga looks it up itself). */
  taken(req: object | undefined): EarlyLookup | null | undefined {
    if (!req) return undefined;
    const lookup = this.handed.get(req);
    this.handed.delete(req);
    return lookup;
  }

  private infoOf(query: string, operationName: string | undefined): DocumentInfo {
    const id = `${operationName ?? ''}\n${query}`;
    let info = this.documents.get(id);
    if (!info) this.documents.set(id, (info = analyse(this.options, query, operationName)));
    return info;
  }
}

/**
 * A query's finished response, cached per product, document, operation and
 * variables (infra/cache/response-cache.ts holds the entries). A hit is
 * answered before parse, validation, context and execution: the stored bytes
 * are written as they are, with their ETag, so a GET that revalidates gets its
 * 304 without any execution. Only queries of a product key: never mutations or
 * subscriptions (their document says so), admin requests, or results with
 * errors. The tags an entry depends on come from the document's types
 * (read before execution, with their generations); an execution that reads a
 * cache policy whose tags the document's types do not cover is not stored, so
 * the type map cannot silently fall behind the services.
 *
 * Most hits never reach this plugin: the HTTP server answers them before Yoga
 * (http/cached-responses.ts) and hands it what it looked up otherwise.
 */
export function useResponseCache(
  lookups: ResponseLookups,
  principalOf: (request: Request, serverContext: Record<string, unknown>) => Promise<Principal>,
): Plugin<Context> {
  const { responses, ttlMs = 60_000 } = lookups.options;
  const pending = new WeakMap<object, Pending>();
  // What each request is answered with, to swap Yoga's string body for the stored bytes.
  const answered = new WeakMap<Request, StoredResponse>();
  // Identical requests that shared one execution (request dedup) share its serialization too.
  const serialized = new WeakMap<object, StoredResponse>();
  // Requests whose lookup ran in onRequest and missed: what their execution stores under (null: not cacheable).
  const lookedUp = new WeakMap<Request, Pending | null>();
  // POST bodies the early lookup read: Yoga's own parser reads them again from here on a miss.
  const bodies = new WeakMap<Request, string>();
  // ... unless they were plain, well-formed parameters: those are what Yoga's parser would return (a second
  // parse went through a new Request built from the text, ~2 % of the CPU of a planned read).
  const parsedBodies = new WeakMap<Request, PlainParams>();

  /** The early lookup of a request that reached Yoga without one: a plain GET, or a JSON POST with a Content-Length. */
  const lookUp = async (request: Request, url: URL, serverContext: Record<string, unknown>): Promise<EarlyLookup | null> => {
    const mediaType = regularMediaType(request.headers.get('accept'));
    if (!mediaType) return null;
    const started = performance.now();
    let params: PlainParams | undefined;
    if (request.method === 'GET') params = plainParams(url.searchParams);
    else if (request.method === 'POST' && isJson(request.headers.get('content-type')) && request.headers.has('content-length')) {
      // The body limit has already refused a Content-Length above the limit.
      const body = await request.text();
      params = plainParams(body);
      if (!params) bodies.set(request, body);
    }
    return lookups.early(params, mediaType, started, request.headers, () => principalOf(request, serverContext));
  };

  return {
    /**
     * The early lookup: a plain query is looked up before Yoga builds anything for it, and a hit is the
     * stored bytes as they are — no parameter parsing, context, envelop orchestration or result
     * processing. Everything else (persisted operations, batches, streams, client mistakes) goes through
     * Yoga as usual and is still looked up in onParams. The response hooks (request id, CORS, HTTP
     * caching, compression) run on a hit as on any response.
     */
    async onRequest({ request, serverContext, url, endResponse, fetchAPI }) {
      if (url.pathname !== lookups.endpoint) return;
      const handed = lookups.taken((serverContext as { req?: object }).req);
      const early = handed === undefined ? await lookUp(request, url, serverContext) : handed;
      if (!early) return;
      const { found, params, mediaType } = early;
      if (request.method === 'POST') parsedBodies.set(request, params);
      if (!found?.hit) {
        lookedUp.set(request, found ? found.pending : null);
        return;
      }
      const { hit } = found;
      endResponse(
        new fetchAPI.Response(hit.bytes as unknown as BodyInit, {
          status: 200,
          headers: { 'content-type': `${mediaType}; charset=utf-8`, 'content-length': String(hit.bytes.byteLength), etag: hit.etag },
        }),
      );
      lookups.answered(found, early.started, 'yoga');
    },
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      const params = parsedBodies.get(request);
      if (params) return setRequestParser(() => params as GraphQLParams);
      const body = bodies.get(request);
      if (body === undefined || !requestParser) return;
      // The early lookup read the body: Yoga's parser (with its checks and errors) reads the same text.
      setRequestParser((read) => requestParser(new fetchAPI.Request(read.url, { method: read.method, headers: read.headers, body })));
    },
    async onParams({ params, request, context, setResult }) {
      if (typeof params.query !== 'string') return;
      const early = lookedUp.get(request);
      if (early !== undefined) {
        // Looked up in onRequest: a miss's execution stores under what that lookup read.
        lookedUp.delete(request);
        if (!early) return;
        pending.set(params, early);
        pinToPrimary();
        return;
      }
      const started = performance.now();
      const found = await lookups.find(params as PlainParams, request.headers, () => principalOf(request, context));
      if (!found) return;
      if (found.hit) {
        setResult(answer(found.hit));
        answered.set(request, found.hit);
        lookups.answered(found, started, 'yoga');
      } else {
        pending.set(params, found.pending);
        // A fill reads from the primary, as resolver-cache fills do: a lagging replica's rows would be
        // stored under generations that already include the write they lack, and stay stale.
        pinToPrimary();
      }
    },
    onResponse({ request, response, setResponse, fetchAPI }) {
      const stored = answered.get(request);
      if (!stored || response.status !== 200 || response.headers.has('content-encoding')) return;
      response.headers.set('content-length', String(stored.bytes.byteLength));
      setResponse(new fetchAPI.Response(stored.bytes as unknown as BodyInit, { status: 200, headers: response.headers }));
    },
    onExecute({ args }) {
      const ctx = args.contextValue as Context & { params?: object; request?: Request };
      const entry = ctx.params && pending.get(ctx.params);
      if (!entry) return;
      pending.delete(ctx.params!);
      return {
        onExecuteDone({ result, setResult }) {
          if (!isPlainResult(result) || result.errors?.length) return;
          let stored = serialized.get(result);
          if (!stored) {
            const reads = ctx.responseReads;
            // A cache policy read under tags the document's types do not name: its writes would not drop this entry.
            if (reads.tags.some((tag) => !entry.tags.includes(tag))) return;
            // Stored only once asked for again (see ResponseCache.admit): most one-off pages never are.
            if (!responses.admit(entry.key)) return;
            stored = responses.store(entry.key, entry.tags, entry.gens, JSON.stringify(result), Math.min(ttlMs, reads.ttlMs));
            serialized.set(result, stored);
          }
          if (ctx.request) answered.set(ctx.request, stored);
          setResult(answer(stored));
        },
      };
    },
  };
}

/** A result Yoga writes as the stored text (its `stringify`), with the ETag as a response header. */
function answer(stored: StoredResponse): ExecutionResult & { stringify: () => string } {
  return { extensions: { http: { headers: { etag: stored.etag } } }, stringify: () => stored.text };
}

/**
 * The media type Yoga's regular result processor would answer with for this Accept header
 * (graphql-yoga's use-result-processor: the last match of its loop wins); undefined when the
 * client asked only for a stream (SSE, multipart), which Yoga answers itself.
 */
export function regularMediaType(accept: string | null): string | undefined {
  let chosen: string | undefined;
  const asked = (accept || '*/*').replace(/\s/g, '').toLowerCase().split(',').reverse();
  for (const entry of asked) {
    const [type, ...parameters] = entry.split(';');
    if (!type) continue;
    const charset = parameters.find((p) => p.includes('charset=')) ?? 'charset=utf-8';
    if (charset !== 'charset=utf-8') continue;
    for (const offered of REGULAR_TYPES) if (mediaTypeMatches(type, offered)) chosen = offered;
  }
  return chosen;
}

const REGULAR_TYPES = ['application/graphql-response+json', 'application/json'] as const;

function mediaTypeMatches(asked: string, offered: string): boolean {
  const [askedType, askedSub] = asked.split('/');
  const [type, sub] = offered.split('/');
  return (askedType === '*' || askedType === type) && (askedSub === '*' || askedSub === sub);
}

export function isJson(contentType: string | null): boolean {
  return contentType !== null && /^application\/(json|graphql-response\+json)\s*(;|$)/i.test(contentType);
}

const PARAM_NAMES = new Set(['query', 'operationName', 'variables', 'extensions']);

/**
 * `{ query, operationName?, variables? }` from a JSON body or a GET's search parameters, when that
 * is all the request carries (empty or no `extensions`); anything else — persisted operations,
 * batches, malformed input — is left to Yoga and its error messages.
 */
export function plainParams(source: string | URLSearchParams): PlainParams | undefined {
  let raw: Record<string, unknown>;
  if (typeof source === 'string') {
    try {
      raw = JSON.parse(source) as Record<string, unknown>;
    } catch {
      return undefined;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return undefined;
  } else {
    raw = {};
    for (const [name, value] of source) {
      if (name in raw) return undefined;
      raw[name] = value;
    }
    try {
      if (typeof raw.variables === 'string') raw.variables = JSON.parse(raw.variables);
      if (typeof raw.extensions === 'string') raw.extensions = JSON.parse(raw.extensions);
    } catch {
      return undefined;
    }
  }
  for (const name in raw) if (!PARAM_NAMES.has(name)) return undefined;
  const { query, operationName, variables, extensions } = raw;
  if (typeof query !== 'string') return undefined;
  if (operationName !== undefined && operationName !== null && typeof operationName !== 'string') return undefined;
  if (variables !== undefined && variables !== null && !isPlainObject(variables)) return undefined;
  if (extensions !== undefined && extensions !== null && !(isPlainObject(extensions) && Object.keys(extensions).length === 0)) return undefined;
  return { query, operationName, variables: variables as PlainParams['variables'] };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isPlainResult(result: unknown): result is ExecutionResult {
  return typeof result === 'object' && result !== null && !(Symbol.asyncIterator in result);
}

/** The operation's kind and, for a query, the tags of every type its document can reach (null if one has none). */
function analyse(
  { schema, typeTags, productTag }: Pick<ResponseCacheOptions, 'schema' | 'typeTags' | 'productTag'>,
  query: string,
  operationName: string | undefined,
): DocumentInfo {
  let document;
  try {
    document = parse(query);
  } catch {
    return { operation: undefined, tags: null };
  }
  const ast = getOperationAST(document, operationName);
  const operation = ast?.operation;
  if (operation !== 'query') return { operation, tags: null };
  // Every response of a product depends on its row (a rename, a key rotation).
  const found = new Set<TagOfProduct>([productTag]);
  let cacheable = true;
  const note = (typeName: string) => {
    const tags = typeTags[typeName];
    if (!tags) cacheable = false;
    else for (const tag of tags) found.add(tag);
  };
  const typeInfo = new TypeInfo(schema);
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field() {
        const parent = typeInfo.getParentType();
        if (parent) note(parent.name);
        const type = typeInfo.getType();
        // An unknown field: validation refuses the request; nothing is stored for it.
        if (!type) return;
        const named = getNamedType(type);
        if (isObjectType(named)) note(named.name);
        else if (isAbstractType(named)) for (const possible of schema.getPossibleTypes(named)) note(possible.name);
      },
    }),
  );
  return { operation, name: ast?.name?.value, tags: cacheable ? [...found] : null };
}
