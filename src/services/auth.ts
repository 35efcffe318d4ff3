import { ForbiddenError, UnauthenticatedError } from '../errors.js';
import type { PrismaClient } from '../infra/db.js';
import type { Product } from '../generated/prisma/client.js';
import { findProductByKey, looksLikeProductKey, secretsEqual } from './products.js';

export const ADMIN_TOKEN_PREFIX = 'adm_';

export interface Credentials {
  productKey?: string;
  adminToken?: string;
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
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(headers.get('authorization') ?? '')?.[1];
  const productKey = headers.get('x-product-key')?.trim();
  const adminToken = headers.get('x-admin-token')?.trim();
  if (bearer?.startsWith(ADMIN_TOKEN_PREFIX)) out.adminToken = bearer;
  else if (bearer) out.productKey = bearer;
  if (productKey) out.productKey = productKey;
  if (adminToken) out.adminToken = adminToken;
  return out;
}

/** A key that is present but wrong fails the whole request: a silent anonymous fallback hides misconfiguration. */
export async function authenticate(
  prisma: PrismaClient,
  adminToken: string,
  credentials: Credentials,
): Promise<Principal> {
  let isAdmin = false;
  if (credentials.adminToken !== undefined) {
    if (!secretsEqual(credentials.adminToken, adminToken)) throw new UnauthenticatedError('invalid admin token');
    isAdmin = true;
  }
  let product: Product | null = null;
  if (credentials.productKey !== undefined) {
    product = looksLikeProductKey(credentials.productKey) ? await findProductByKey(prisma, credentials.productKey) : null;
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
