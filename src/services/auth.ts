import { ForbiddenError, UnauthenticatedError } from '../errors.js';
import type { Product } from '../generated/prisma/client.js';
import { findProductByKeyCached, looksLikeProductKey, secretsEqual } from './products.js';
import type { Store } from './store.js';

export const ADMIN_TOKEN_PREFIX = 'adm_';

export interface Credentials {
  productKey?: string;
  adminToken?: string;
  /**
   * Why the credentials sent cannot be used, when they cannot: two different
   * values for one credential (Bearer and the x-… header), or a `Bearer`
   * header that is not one token. Refused as a whole, never one part picked.
   */
  invalid?: string;
}

export interface Principal {
  product: Product | null;
  isAdmin: boolean;
}

/**
 * `Authorization: Bearer pk_…` or `x-product-key` carry a product key;
 * `Authorization: Bearer adm_…` or `x-admin-token` the admin token.
 */
export function credentialsFromHeaders(headers: Headers): Credentials {
  const out: Credentials = {};
  const authorization = headers.get('authorization') ?? '';
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
  // Other schemes (Basic from a proxy in front) are not Parley's and are ignored; a Bearer
  // that is empty, has spaces or is repeated ("Bearer a, Bearer b") is a bad credential.
  if (bearer === undefined && /^\s*Bearer(\s|$)/i.test(authorization)) out.invalid = 'malformed Authorization: Bearer header';
  const productKey = headers.get('x-product-key')?.trim();
  const adminToken = headers.get('x-admin-token')?.trim();
  if (bearer?.startsWith(ADMIN_TOKEN_PREFIX)) out.adminToken = bearer;
  else if (bearer) out.productKey = bearer;
  // A second, different value must not silently replace the first: a wrong key is never ignored.
  const conflicting = 'conflicting credentials: send at most one product key and one admin token';
  if (productKey) {
    if (out.productKey !== undefined && out.productKey !== productKey) out.invalid ??= conflicting;
    out.productKey = productKey;
  }
  if (adminToken) {
    if (out.adminToken !== undefined && out.adminToken !== adminToken) out.invalid ??= conflicting;
    out.adminToken = adminToken;
  }
  return out;
}

/** A key that is present but wrong fails the whole request: a silent anonymous fallback hides misconfiguration. */
export async function authenticate(
  store: Store,
  adminToken: string,
  credentials: Credentials,
): Promise<Principal> {
  if (credentials.invalid !== undefined) throw new UnauthenticatedError(credentials.invalid);
  let isAdmin = false;
  if (credentials.adminToken !== undefined) {
    if (!secretsEqual(credentials.adminToken, adminToken)) throw new UnauthenticatedError('invalid admin token');
    isAdmin = true;
  }
  let product: Product | null = null;
  if (credentials.productKey !== undefined) {
    product = looksLikeProductKey(credentials.productKey) ? await findProductByKeyCached(store, credentials.productKey) : null;
    if (!product) throw new UnauthenticatedError('invalid product key');
  }
  return { product, isAdmin };
}

export function requireProduct(principal: Principal): Product {
  if (!principal.product) {
    throw new UnauthenticatedError('a product key is required (Authorization: Bearer pk_live_…)');
  }
  return principal.product;
}

export function requireAdmin(principal: Principal): void {
  if (!principal.isAdmin) throw new ForbiddenError('this field requires the admin token');
}
