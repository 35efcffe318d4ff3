import { z } from 'zod';
import { ForbiddenError } from '../errors.js';
import { cachePolicy } from '../infra/cache/index.js';
import { tags, type Store } from './store.js';

/**
 * Browser rules of a product (issue 16): which web pages may use its keys.
 *
 * They bind browsers, not scripts: a browser always sends the Origin of the
 * page that makes a request and a page cannot change it, while a server or
 * curl sends none (or any). So an allowed-origins list stops other sites from
 * using a product's publishable key in their visitors' browsers, and a secret
 * key pasted into a page stops working there; the per-visitor rate limits are
 * what bound a script that copied the publishable key.
 */

/** Most origins a product lists; longest origin accepted. */
export const ORIGIN_LIMITS = { origins: 50, length: 253 } as const;

/**
 * `scheme://host[:port]` as a browser serialises it in its Origin header
 * (lowercase, punycode, no default port), so a request's Origin is compared
 * as a string. Only http and https: a page's origin; a trailing `/` is
 * forgiven, a path, query, fragment, user or wildcard (`*.shop.example`:
 * list each site) is not.
 */
export function normaliseOrigin(value: string): string | null {
  const trimmed = value.trim().replace(/\/$/, '');
  if (!/^https?:\/\/[^/?#@\s]+$/i.test(trimmed) || trimmed.length > ORIGIN_LIMITS.length) return null;
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    return null;
  }
  // A host name (letters, digits, hyphens; IDNs in punycode) or an IP address: no wildcard, no empty label.
  const host = url.hostname;
  if (!/^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$/.test(host) && !/^\[[0-9a-f:.]+\]$/.test(host)) return null;
  return url.origin;
}

/** An `allowedOrigins` input: each origin normalised, duplicates dropped, the list bounded. */
export const allowedOriginsInput = z
  .array(z.string())
  .transform((values, ctx) => {
    const origins: string[] = [];
    for (const [i, value] of values.entries()) {
      const origin = normaliseOrigin(value);
      if (origin === null) {
        ctx.addIssue({
          code: 'custom',
          path: [i],
          message: `must be an origin, scheme://host[:port] with http or https (got ${JSON.stringify(value.slice(0, 80))})`,
        });
        return z.NEVER;
      }
      if (!origins.includes(origin)) origins.push(origin);
    }
    return origins;
  })
  .refine((origins) => origins.length <= ORIGIN_LIMITS.origins, `must list at most ${ORIGIN_LIMITS.origins} origins`);

/** Where a request from a browser comes from; null without an Origin header (a server, curl). */
export interface BrowserOrigin {
  /** The Origin header as sent (`null` for an opaque origin: a sandboxed frame, a file). */
  origin: string;
  /** The page is Parley's own (GraphiQL): its origin names this server. */
  sameOrigin: boolean;
}

/**
 * The Origin header of a request and whether it names this server: the page's
 * host and port are one of `ownHosts` (the Host the request was sent to, and
 * behind a trusted proxy the host it forwarded). The scheme is not compared: a
 * proxy in front may terminate TLS, and a page whose origin has this host was
 * served by whoever serves this host.
 */
export function browserOrigin(origin: string | null | undefined, ownHosts: readonly (string | null | undefined)[]): BrowserOrigin | null {
  if (origin === null || origin === undefined || origin === '') return null;
  let host: string | undefined;
  try {
    host = new URL(origin).host.toLowerCase();
  } catch {
    host = undefined;
  }
  const sameOrigin = Boolean(host) && ownHosts.some((own) => own?.trim().toLowerCase() === host);
  return { origin, sameOrigin };
}

export interface BrowserRules {
  allowedOrigins: string[];
  secretKeyInBrowser: boolean;
}

/** A product's browser rules, until the admin changes them (updateProduct bumps the product's tag). */
const browserRulesPolicy = cachePolicy<string>({
  name: 'browserRules',
  ttlMs: 5 * 60_000,
  scope: (productId) => productId,
  tags: (productId) => [tags.product(productId)],
});

export function readBrowserRules({ prisma, cache }: Store, productId: string): Promise<BrowserRules> {
  return cache.get(browserRulesPolicy, productId, async () => {
    const row = await prisma.product.findUnique({ where: { id: productId }, select: { allowedOrigins: true, secretKeyInBrowser: true } });
    return { allowedOrigins: row?.allowedOrigins ?? [], secretKeyInBrowser: row?.secretKeyInBrowser === true };
  });
}

/** Close reasons of a socket refused for its origin (a close frame's reason is at most 123 bytes). */
export const ORIGIN_REFUSED = 'Forbidden: origin not allowed';
export const SECRET_KEY_IN_BROWSER = 'Forbidden: a secret key must not be used in a web page';

/** Refused by a product's browser rules: FORBIDDEN (403), with `reason` for clients and sockets. */
export class BrowserRuleError extends ForbiddenError {
  constructor(
    message: string,
    readonly closeReason: string,
  ) {
    super(message, { reason: closeReason === ORIGIN_REFUSED ? 'ORIGIN_NOT_ALLOWED' : 'SECRET_KEY_IN_BROWSER' });
  }
}

/**
 * Throws when a product key is used from a web page its product does not allow:
 * - a publishable key, from an origin not in a non-empty `allowedOrigins`;
 * - a secret key, from any page but Parley's own (GraphiQL) unless `secretKeyInBrowser`,
 *   and then from the allowed origins only (any while the list is empty).
 * No Origin (servers), the admin token and requests without a key are not concerned.
 * Nothing is read for a request without an Origin or from Parley's own page.
 */
export async function checkBrowserUse(
  store: Store,
  // What it reads of a Principal (services/auth.ts, which imports this module through products.ts).
  principal: { product: { id: string } | null; key: { kind: string } | null },
  browser: BrowserOrigin | null,
): Promise<void> {
  if (!browser || !principal.product || !principal.key) return;
  const secret = principal.key.kind === 'SECRET';
  if (secret && browser.sameOrigin) return;
  const rules = await readBrowserRules(store, principal.product.id);
  if (secret && !rules.secretKeyInBrowser) {
    throw new BrowserRuleError(
      'A secret key must not be used in a web page: anyone who opens the page can read it. Use the publishable key ' +
        '(pk_pub_…) in pages and keep the secret key on your server, or let the admin allow it (updateProduct secretKeyInBrowser).',
      SECRET_KEY_IN_BROWSER,
    );
  }
  if (rules.allowedOrigins.length && !rules.allowedOrigins.includes(browser.origin)) {
    throw new BrowserRuleError(
      `This product's keys may not be used from ${browser.origin.slice(0, 100)}: it is not one of its allowed origins.`,
      ORIGIN_REFUSED,
    );
  }
}
