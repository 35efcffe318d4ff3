import type { Plugin } from 'graphql-yoga';

/**
 * Request headers Parley reads that a browser sends only once a preflight allowed them:
 * credentials, the conversation token, a request id, CSRF tokens, and JSON bodies' content type.
 */
export const CORS_REQUEST_HEADERS = [
  'authorization',
  'content-type',
  'x-product-key',
  'x-admin-token',
  'x-conversation-token',
  'x-request-id',
  'x-graphql-yoga-csrf',
  'apollo-require-preflight',
];

/** Response headers a page may read besides the safelisted ones: when to retry, and the id to report. */
export const CORS_EXPOSED_HEADERS = ['retry-after', 'x-request-id'];

export interface CorsOptions {
  /** Whether the actual request was refused for its origin (browser rules): its response carries no CORS headers. */
  refused: (request: Request, serverContext: Record<string, unknown>) => boolean;
  /** How long a browser may reuse a preflight's answer. @default 600 (seconds) */
  maxAgeS?: number;
}

/**
 * CORS by product. A preflight (OPTIONS) carries no Authorization header — a
 * browser never sends credentials on it — so it cannot tell which product a
 * request is for: every preflight is answered permissively (this origin, these
 * methods and headers). That grants nothing: Parley authenticates by header,
 * never by cookie, and what matters is decided on the actual request, whose
 * key and Origin the browser rules check (services/origins.ts). Its response
 * echoes the origin only when the request was not refused for it, so a page
 * at an origin its product does not allow gets a 403 it cannot even read.
 * No Access-Control-Allow-Credentials: no cookie is ever needed. Every answer
 * to a browser varies on Origin, so a cache never hands one page's answer to another.
 */
export function useCors({ refused, maxAgeS = 600 }: CorsOptions): Plugin {
  return {
    onRequest({ request, fetchAPI, endResponse }) {
      if (request.method !== 'OPTIONS') return;
      const origin = request.headers.get('origin');
      const headers: Record<string, string> = { 'content-length': '0', vary: 'Origin' };
      if (origin !== null && request.headers.has('access-control-request-method')) {
        Object.assign(headers, {
          'access-control-allow-origin': origin,
          'access-control-allow-methods': 'GET, POST, OPTIONS',
          'access-control-allow-headers': CORS_REQUEST_HEADERS.join(', '),
          'access-control-max-age': String(maxAgeS),
        });
      }
      // Safari waits for a body on a 204 without Content-Length.
      endResponse(new fetchAPI.Response(null, { status: 204, headers }));
    },
    onResponse({ request, response, serverContext }) {
      const origin = request.headers.get('origin');
      if (origin === null || request.method === 'OPTIONS') return;
      response.headers.append('vary', 'Origin');
      if (refused(request, serverContext)) return;
      response.headers.set('access-control-allow-origin', origin);
      response.headers.set('access-control-expose-headers', CORS_EXPOSED_HEADERS.join(', '));
    },
  };
}
