import { randomUUID } from 'node:crypto';
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { withRequestId } from '../infra/log.js';
import { preferredEncoding } from '../plugins/compression.js';
import { httpCaching, ifNoneMatches } from '../plugins/http-cache.js';
import { isSaneRequestId } from '../plugins/request-id.js';
import {
  isJson,
  plainParams,
  regularMediaType,
  type EarlyLookup,
  type HeaderReader,
  type PlainParams,
  type ResponseLookups,
} from '../plugins/response-cache.js';
import type { Principal } from '../services/auth.js';

export interface CachedResponsesOptions {
  lookups: ResponseLookups;
  /** The request's principal (authenticated and rate limited once per request: Yoga's context reuses it). */
  principalOf: (headers: HeaderReader, req: IncomingMessage) => Promise<Principal>;
  /** PARLEY_MAX_BODY_BYTES: a larger body is Yoga's to refuse (413). */
  maxBodyBytes: number;
  /** PARLEY_HTTP_GET_MAX_AGE_S, as the HTTP cache plugin applies it. */
  getMaxAgeS: number;
  /** PARLEY_COMPRESSION_MIN_BYTES: a compressible hit is handed to Yoga, whose compression plugin keeps the compressed copies. */
  compressionMinBytes: number;
}

/**
 * Response-cache hits answered by the HTTP server, before Yoga: the stored bytes
 * written to node's response as they are. Measured on `viewer { name }` hits under
 * load (`npx tsx bench/run.ts --scenarios viewerName --parley-node-args="--cpu-prof"`):
 * Yoga's server adapter (a fetch Request and Headers built from node's request,
 * its plugin hooks, a fetch Response copied back to node's) cost more CPU per hit
 * than the lookup itself, one Redis MGET included; answered here, a hit cost
 * 0.22 ms of CPU instead of 0.29.
 *
 * Only the plain case is taken: a GET or a JSON POST with a Content-Length
 * within the body limit, plain GraphQL parameters, no Origin (a browser's
 * request: CORS answers by product there), a media type Yoga would answer with.
 * The same headers are written as Yoga's plugins write on a hit (request id,
 * ETag, Cache-Control and Vary, a 304 for a matching If-None-Match; see the
 * test that compares both). Whatever it does not answer itself — a miss, a
 * request that is not cacheable, a hit to compress — is handed to Yoga with
 * what was read and looked up, so nothing is read, authenticated or counted
 * twice: the body as node's `req.body` (which Yoga's server adapter reads
 * instead of the stream; see handBody), the lookup through `lookups.handOver`, the request id
 * as the `x-request-id` header Yoga's request-id plugin keeps.
 */
export function cachedResponses(options: CachedResponsesOptions) {
  const { lookups, principalOf, maxBodyBytes, compressionMinBytes } = options;
  const caching = httpCaching({ maxAgeS: options.getMaxAgeS });

  /** The early lookup of a request this server may answer; null when there is nothing to look up (Yoga's, as it is). */
  async function lookUp(req: IncomingMessage, headers: HeaderReader): Promise<EarlyLookup | null> {
    const mediaType = regularMediaType(headers.get('accept'));
    if (!mediaType) return null;
    const started = performance.now();
    let params: PlainParams | undefined;
    if (req.method === 'GET') {
      const query = req.url!.indexOf('?');
      params = query < 0 ? undefined : plainParams(new URLSearchParams(req.url!.slice(query + 1)));
    } else {
      const body = await readBody(req);
      handBody(req, body);
      params = plainParams(body.toString('utf8'));
    }
    return lookups.early(params, mediaType, started, headers, () => principalOf(headers, req));
  }

  /**
   * Answers a cached response, or hands the request to `yoga` (with what was read and looked up).
   * A request for another path, or not plain, goes to `yoga` at once.
   */
  return (req: IncomingMessage, res: ServerResponse, path: string, yoga: () => unknown): void => {
    if (path !== lookups.endpoint || !takes(req, maxBodyBytes)) return void yoga();
    const headers = nodeHeaders(req);
    const sent = headers.get('x-request-id');
    const requestId = sent && isSaneRequestId(sent) ? sent : randomUUID();
    // What was looked up (null: nothing to look up) goes with the request; undefined: Yoga looks at it afresh.
    const handOver = (early: EarlyLookup | null | undefined) => {
      if (early !== undefined) lookups.handOver(req, early);
      if (requestId !== sent) req.headers['x-request-id'] = requestId;
      yoga();
    };
    withRequestId(requestId, () => lookUp(req, headers)).then(
      (early) => {
        const hit = early?.found?.hit;
        if (!early || !hit) return handOver(early);
        // Compressed copies are kept by the compression plugin: Yoga answers a hit it compresses.
        if (hit.bytes.byteLength >= compressionMinBytes && compressionMinBytes > 0 && preferredEncoding(headers.get('accept-encoding')))
          return handOver(early);
        const out: OutgoingHttpHeaders = { 'x-request-id': requestId, etag: hit.etag };
        if (req.method === 'GET') {
          out['cache-control'] = caching.cacheControl;
          out.vary = caching.vary;
          if (ifNoneMatches(headers.get('if-none-match'), hit.etag)) {
            res.writeHead(304, out).end();
            lookups.answered(early.found!, early.started, 'server');
            return;
          }
        } else out['cache-control'] = 'no-store';
        out['content-type'] = `${early.mediaType}; charset=utf-8`;
        out['content-length'] = hit.bytes.byteLength;
        res.writeHead(200, out).end(hit.bytes);
        lookups.answered(early.found!, early.started, 'server');
      },
      // Reading the body failed (the client went away): Yoga's adapter sees the same request.
      () => handOver(undefined),
    );
  };
}

/** A request this server may answer: GET, or a JSON POST whose Content-Length is within the limit; none from a browser page. */
function takes(req: IncomingMessage, maxBodyBytes: number): boolean {
  if (req.headers.origin !== undefined) return false;
  if (req.method === 'GET') return true;
  if (req.method !== 'POST' || !isJson(req.headers['content-type'] ?? null)) return false;
  const length = req.headers['content-length'];
  return length !== undefined && Number(length) <= maxBodyBytes;
}

/**
 * Gives Yoga's server adapter the body this server read: it takes a request's `body`, when set and
 * with own keys, instead of reading the (consumed) stream. As an async iterable of the bytes: a string
 * or Buffer would do, but the adapter counts their keys (Object.keys), one per byte — measured 16 µs
 * for a 300-byte body and ~1 s for 1 MB; this object has one.
 */
function handBody(req: IncomingMessage, body: Buffer): void {
  (req as IncomingMessage & { body?: object }).body = {
    readByParley: true,
    async *[Symbol.asyncIterator]() {
      yield body;
    },
  };
}

/** node's request headers read as a fetch Headers' `get` reads them (repeated headers joined by a comma). */
function nodeHeaders(req: IncomingMessage): HeaderReader {
  return {
    get: (name) => {
      const value = req.headers[name];
      return value === undefined ? null : Array.isArray(value) ? value.join(', ') : value;
    },
  };
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
