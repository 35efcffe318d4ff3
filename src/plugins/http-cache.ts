import type { Plugin } from 'graphql-yoga';
import { weakEtag } from '../infra/cache/response-cache.js';

export interface HttpCacheOptions {
  /** Cache-Control max-age of a successful GET result, in seconds. @default 0 (always revalidate) */
  maxAgeS?: number;
}

/**
 * Queries over GET are cacheable by the client that asked (never by shared
 * caches: results depend on the caller's key): a successful result gets
 * `Cache-Control: private, max-age=N`, `Vary` on the credential headers (the conversation token's too), and a
 * weak ETag of its JSON, so a client revalidating with If-None-Match gets an
 * empty 304 while the result has not changed. A result with errors, and every
 * POST, is `no-store`. Streams (SSE) are left alone.
 *
 * Must run before compression: the ETag names the JSON, whatever encoding
 * carries it (hence weak).
 */
export function useHttpCache(options: HttpCacheOptions = {}): Plugin {
  const { applyCaching } = httpCaching(options);
  return {
    async onResponse({ request, response, setResponse, fetchAPI }) {
      const type = response.headers.get('content-type') ?? '';
      if (!/json/.test(type) || response.headers.has('cache-control')) return;
      if (request.method !== 'GET' || response.status !== 200) {
        response.headers.set('cache-control', 'no-store');
        return;
      }
      // A response from the response cache comes with the ETag of its stored bytes (and never with errors).
      const stored = response.headers.get('etag');
      if (stored) {
        applyCaching(response.headers, stored);
        if (ifNoneMatches(request.headers.get('if-none-match'), stored)) setResponse(notModified(fetchAPI, new fetchAPI.Headers(response.headers)));
        return;
      }
      const headers = new fetchAPI.Headers(response.headers);
      // The copy can lose Yoga's Content-Type (written as 'Content-Type' in a plain record), and a string body
      // then defaults to text/plain: clients (urql) warn on it, strict ones reject it. Set it again.
      headers.set('content-type', type);
      const body = await response.text();
      if (hasErrors(body)) {
        headers.set('cache-control', 'no-store');
        setResponse(new fetchAPI.Response(body, { status: response.status, headers }));
        return;
      }
      const etag = weakEtag(body);
      applyCaching(headers, etag);
      if (ifNoneMatches(request.headers.get('if-none-match'), etag)) {
        setResponse(notModified(fetchAPI, headers));
        return;
      }
      setResponse(new fetchAPI.Response(body, { status: response.status, headers }));
    },
  };
}

/** The headers of a successful GET result with this ETag (also written by http/cached-responses.ts). */
export function httpCaching({ maxAgeS = 0 }: HttpCacheOptions) {
  const cacheControl = maxAgeS > 0 ? `private, max-age=${maxAgeS}` : 'private, max-age=0, must-revalidate';
  const vary = 'authorization, x-product-key, x-admin-token, x-conversation-token';
  return {
    cacheControl,
    vary,
    applyCaching(headers: Headers, etag: string): void {
      headers.set('etag', etag);
      headers.set('cache-control', cacheControl);
      headers.append('vary', vary);
    },
  };
}

function notModified(fetchAPI: { Response: typeof Response }, headers: Headers): Response {
  headers.delete('content-type');
  headers.delete('content-length');
  return new fetchAPI.Response(null, { status: 304, headers });
}

/** A GraphQL JSON result with a top-level `errors` (the only place it can be, as the first key Yoga writes or later). */
function hasErrors(body: string): boolean {
  if (!body.includes('"errors"')) return false;
  try {
    return Array.isArray((JSON.parse(body) as { errors?: unknown }).errors);
  } catch {
    return true;
  }
}

/** If-None-Match: `*` or a list of (weak or strong) tags, compared weakly (RFC 9110 §13.1.2). */
export function ifNoneMatches(header: string | null | undefined, etag: string): boolean {
  if (!header) return false;
  const bare = (tag: string) => tag.trim().replace(/^W\//, '');
  const ours = bare(etag);
  return header.split(',').some((tag) => tag.trim() === '*' || bare(tag) === ours);
}
