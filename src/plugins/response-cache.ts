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
import type { Plugin } from 'graphql-yoga';
import { LRUCache } from 'lru-cache';
import type { Context } from '../context.js';
import type { ResponseCache, StoredResponse } from '../infra/cache/response-cache.js';
import { pinToPrimary } from '../infra/read-routing.js';
import type { Principal } from '../services/auth.js';
import type { TagOfProduct } from '../schema/response-tags.js';

export interface ResponseCacheOptions {
  /** The tag of the product row, which every response depends on. */
  productTag: TagOfProduct;
  responses: ResponseCache;
  schema: GraphQLSchema;
  /** Tags of each type a selection can reach (schema/response-tags.ts); `false` or absent = never cached. */
  typeTags: Readonly<Record<string, readonly TagOfProduct[] | false>>;
  /** The request's principal, authenticated (and rate limited) once per request: the context factory reuses it. */
  principalOf: (request: Request, serverContext: Record<string, unknown>) => Promise<Principal>;
  /** Longest life of an entry; shorter when the execution read a cache policy with a shorter TTL. @default 60_000 */
  ttlMs?: number;
  /** Distinct (document, operation) pairs whose analysis is kept. @default 1_000 */
  maxDocuments?: number;
  /** Called for each request answered from the cache (operation metrics count it as a query that ran no SQL). */
  onHit?: (operationName: string, durationMs: number) => void;
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
 */
export function useResponseCache(options: ResponseCacheOptions): Plugin<Context> {
  const { responses, principalOf, ttlMs = 60_000 } = options;
  const documents = new LRUCache<string, DocumentInfo>({ max: options.maxDocuments ?? 1_000 });
  const pending = new WeakMap<object, Pending>();
  // What each request is answered with, to swap Yoga's string body for the stored bytes.
  const answered = new WeakMap<Request, StoredResponse>();
  // Identical requests that shared one execution (request dedup) share its serialization too.
  const serialized = new WeakMap<object, StoredResponse>();

  const infoOf = (query: string, operationName: string | undefined): DocumentInfo => {
    const id = `${operationName ?? ''}\n${query}`;
    let info = documents.get(id);
    if (!info) documents.set(id, (info = analyse(options, query, operationName)));
    return info;
  };

  return {
    async onParams({ params, request, context, setResult }) {
      if (typeof params.query !== 'string') return;
      const started = performance.now();
      const info = infoOf(params.query, params.operationName ?? undefined);
      if (info.operation !== 'query' || !info.tags) return;
      const principal = await principalOf(request, context);
      if (!principal.product || principal.isAdmin) return;
      const productId = principal.product.id;
      const tags = info.tags.map((tag) => tag(productId));
      const identity = `${params.operationName ?? ''}\n${JSON.stringify(params.variables ?? {})}\n${params.query}`;
      const key = responses.key(productId, identity);
      const { hit, gens } = await responses.lookup(key, tags);
      if (hit) {
        setResult(answer(hit));
        answered.set(request, hit);
        options.onHit?.(info.name ?? 'anonymous', performance.now() - started);
      } else {
        pending.set(params, { key, tags, gens });
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
