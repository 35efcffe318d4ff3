import { ForbiddenError, UnauthenticatedError } from '../errors.js';
import type { Product } from '../generated/prisma/client.js';
import { verifyConversationToken } from './conversation-tokens.js';
import { sha256 } from '../infra/hash.js';
import { findProductByKeyHash, keyKindOf, looksLikeProductKey, publishableSearchAllowed, secretsEqual, type KeyKind } from './products.js';
import type { Store } from './store.js';

export const ADMIN_TOKEN_PREFIX = 'adm_';

export interface Credentials {
  productKey?: string;
  adminToken?: string;
  /** `x-conversation-token` (graphql-ws: connectionParams.conversationToken): with a publishable key, the conversation it opens. */
  conversationToken?: string;
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
  /** The kind and hash of the product key sent (null without one): a publishable key may do only what schema/auth-scopes.ts opens to it. */
  key: { kind: KeyKind; hash: string } | null;
  /** The conversation a valid conversation token opens (publishable keys only), else null. */
  conversationId: string | null;
  /** When that token expires (ms since the epoch): a subscription it opened ends then. */
  tokenExpiresAt?: number;
}

/** What a principal may see, as a string: results shared between requests (dedup, events) are shared only by equals. */
export function principalKey(principal: Principal): string {
  const kind = principal.key?.kind === 'PUBLISHABLE' ? `pub:${principal.conversationId ?? '-'}` : 'full';
  return `${principal.product?.id ?? '-'}|${principal.isAdmin ? 'admin' : '-'}|${kind}`;
}

/**
 * `Authorization: Bearer pk_…` or `x-product-key` carry a product key;
 * `Authorization: Bearer adm_…` or `x-admin-token` the admin token.
 */
export function credentialsFromHeaders(headers: Pick<Headers, 'get'>): Credentials {
  const out: Credentials = {};
  const authorization = headers.get('authorization') ?? '';
  const bearer = /^Bearer\s+(\S+)\s*$/i.exec(authorization)?.[1];
  // Other schemes (Basic from a proxy in front) are not Parley's and are ignored; a Bearer
  // that is empty, has spaces or is repeated ("Bearer a, Bearer b") is a bad credential.
  if (bearer === undefined && /^\s*Bearer(\s|$)/i.test(authorization)) out.invalid = 'malformed Authorization: Bearer header';
  const productKey = headers.get('x-product-key')?.trim();
  const adminToken = headers.get('x-admin-token')?.trim();
  const conversationToken = headers.get('x-conversation-token')?.trim();
  if (conversationToken) out.conversationToken = conversationToken;
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

/**
 * A key that is present but wrong fails the whole request: a silent anonymous fallback hides misconfiguration.
 * The same for a conversation token: it must be valid and go with the publishable key of its product.
 */
export async function authenticate(store: Store, adminToken: string, credentials: Credentials): Promise<Principal> {
  if (credentials.invalid !== undefined) throw new UnauthenticatedError(credentials.invalid);
  let isAdmin = false;
  if (credentials.adminToken !== undefined) {
    if (!secretsEqual(credentials.adminToken, adminToken)) throw new UnauthenticatedError('invalid admin token');
    isAdmin = true;
  }
  let product: Product | null = null;
  let key: Principal['key'] = null;
  if (credentials.productKey !== undefined) {
    const hash = sha256(credentials.productKey);
    product = looksLikeProductKey(credentials.productKey) ? await findProductByKeyHash(store, hash) : null;
    const kind = product && keyKindOf(product, hash);
    if (!product || !kind) throw new UnauthenticatedError('invalid product key');
    key = { kind, hash };
  }
  let conversationId: string | null = null;
  let tokenExpiresAt: number | undefined;
  if (credentials.conversationToken !== undefined) {
    // With a secret key (or the admin token) a token would open nothing more: refused rather than ignored.
    if (!product || key?.kind !== 'PUBLISHABLE') {
      throw new UnauthenticatedError('a conversation token is sent with the publishable key of its product');
    }
    ({ conversationId, expiresAt: tokenExpiresAt } = verifyConversationToken(product, credentials.conversationToken));
  }
  return { product, isAdmin, key, conversationId, ...(tokenExpiresAt !== undefined ? { tokenExpiresAt } : {}) };
}

/** The errors of a refused `product` or `admin` scope (see unauthorizedError in builder.ts). */
export const productKeyRequired = () => new UnauthenticatedError('a product key is required (Authorization: Bearer sk_live_…)');
export const adminTokenRequired = () => new ForbiddenError('this field requires the admin token');

/**
 * The product of a row lookup by node id. Fields say `product: true` in their
 * scopes instead; a node lookup is shared by every principal (the admin token
 * finds products by id) and filters rows itself.
 */
export function requireProduct(principal: Principal): Product {
  if (!principal.product) throw productKeyRequired();
  return principal.product;
}

/**
 * The scopes of @pothos/plugin-scope-auth (builder.ts; rules in schema/*.ts).
 * Root fields need `fullAccess` unless they say otherwise, so a field added
 * later is closed to publishable keys until it is opened on purpose.
 */
export interface AuthScopes {
  /** A product key of either kind: the request acts for a product (without one: UNAUTHENTICATED). */
  product: boolean;
  /** The admin token (else FORBIDDEN). */
  admin: boolean;
  /** Not limited to a publishable key: a secret key, the admin token, or no credentials (fields then refuse those themselves, as always). */
  fullAccess: boolean;
  /** A publishable key, with or without a conversation token. */
  publishableKey: boolean;
  /** A publishable key with a valid conversation token. */
  conversationToken: boolean;
  /** A publishable key whose conversation token opens this conversation, or that started it in this request. */
  conversation: string;
  /** A publishable key of a product whose admin opened searchKnowledge to it. */
  publishableSearch: boolean;
}

/** What scope-auth needs of a request's context. */
export interface ScopeContext extends Principal, Store {
  /** Conversations this request started: their startConversation result reads them before any token exists. */
  startedConversations: ReadonlySet<string>;
}

export function isPublishable(principal: Principal): boolean {
  return principal.key?.kind === 'PUBLISHABLE';
}

export function authScopes(ctx: ScopeContext) {
  const publishable = isPublishable(ctx);
  return {
    product: ctx.product !== null,
    admin: ctx.isAdmin,
    fullAccess: !publishable,
    publishableKey: publishable,
    conversationToken: publishable && ctx.conversationId !== null,
    conversation: (conversationId: string) => publishable && openConversations(ctx).includes(conversationId),
    publishableSearch: () => publishable && publishableSearchAllowed(ctx, ctx.product!.id),
  };
}

/**
 * Scopes of a row of one conversation: anyone with full access, or a publishable key that has that
 * conversation open. Full access is `true`, which scope-auth settles without evaluating a scope map:
 * this runs for every Conversation, Message and Feedback object of a response.
 */
export function conversationScopes(ctx: Principal, conversationId: string): true | { conversation: string } {
  return isPublishable(ctx) ? { conversation: conversationId } : true;
}

export const FULL_ACCESS = { fullAccess: true } as const;

/**
 * The scopes of a root field about one conversation: a product key, and for a
 * publishable key that conversation open. (Unlike conversationScopes, which
 * object types run per row, this always names the product scope: it narrows
 * the resolver's context to one with a product.)
 */
export function conversationFieldScopes(ctx: Principal, conversationId: string): { product: true } | { conversation: string } {
  return isPublishable(ctx) ? { conversation: conversationId } : { product: true };
}

/** The conversations a publishable key may use in this request: its token's, and those it started. */
export function openConversations(ctx: ScopeContext): string[] {
  return [...(ctx.conversationId ? [ctx.conversationId] : []), ...ctx.startedConversations];
}

/** Whether this principal may use a conversation named by id (a publishable key: only an open one). */
export function mayUseConversation(ctx: ScopeContext, conversationId: string): boolean {
  return !isPublishable(ctx) || openConversations(ctx).includes(conversationId);
}
