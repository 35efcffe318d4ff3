import { z } from 'zod';

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
        ctx.addIssue({ code: 'custom', path: [i], message: `must be an origin, scheme://host[:port] with http or https (got ${JSON.stringify(value.slice(0, 80))})` });
        return z.NEVER;
      }
      if (!origins.includes(origin)) origins.push(origin);
    }
    return origins;
  })
  .refine((origins) => origins.length <= ORIGIN_LIMITS.origins, `must list at most ${ORIGIN_LIMITS.origins} origins`);
