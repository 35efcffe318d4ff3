import { useCSRFPrevention } from '@graphql-yoga/plugin-csrf-prevention';
import { GraphQLError } from 'graphql';
import type { Plugin } from 'graphql-yoga';

/**
 * Headers a browser sends only after a CORS preflight, and that Parley reads
 * (credentials) or accepts as a CSRF token.
 */
export const CSRF_HEADERS = ['authorization', 'x-product-key', 'x-admin-token', 'x-graphql-yoga-csrf', 'apollo-require-preflight'];

/**
 * A "simple" browser request — a GET, or a POST of a form or text/plain, which
 * a browser makes from any page without a CORS preflight — is refused with 403
 * and `extensions.code: CSRF_PREVENTED` unless it carries one of `headers`.
 * Parley authenticates by header, not cookie, so this closes the last way a
 * page could make a visitor's browser run an operation (an anonymous one).
 * JSON posts are always preflighted and pass.
 * @default headers CSRF_HEADERS
 */
export function useCsrfPrevention({ headers = CSRF_HEADERS }: { headers?: string[] } = {}): Plugin {
  const yogas = useCSRFPrevention({ requestHeaders: headers });
  return {
    onRequestParse(payload) {
      try {
        return yogas.onRequestParse!(payload);
      } catch (error) {
        if (error instanceof GraphQLError) Object.assign(error.extensions, { code: 'CSRF_PREVENTED' });
        throw error;
      }
    },
  };
}
