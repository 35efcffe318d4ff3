import { LRUCache } from 'lru-cache';
import { RateLimitedError } from '../errors.js';
import type { Limiter, LimiterStore } from '../infra/rate-limiter.js';
import type { Principal } from './auth.js';

/**
 * Who may send how much. A product key's traffic — all of a site's widgets —
 * is limited per product, whichever addresses it comes from (many visitors
 * share an office or carrier NAT). A publishable key's requests are first
 * limited per visitor — per product and client IP, and per conversation when
 * a conversation token comes with them — so one abusive page or script is
 * refused before it spends the product's budget (a request refused per visitor
 * is not counted for the product). Unauthenticated requests are limited per
 * client IP. An IP that keeps sending wrong keys or tokens is refused for the
 * rest of the window, before its credentials cost a database lookup. The
 * admin token is not limited. Limits of 0 are off.
 *
 * Per-key limits spend budgets leased from Redis (no Redis call on most
 * requests, see LeasedLimiter). The wrong-credentials count is read in Redis
 * only for an address this node has not seen clean in the last
 * `cleanAddressTrustMs`: an address with no failures on record is trusted that
 * long, so a flood of wrong keys from it through another node is refused here
 * at most that much later.
 */
export interface RateLimitPolicy {
  /** Requests per minute per product key. */
  productPerMinute: number;
  /** Requests per minute per IP without credentials. */
  anonymousPerMinute: number;
  /** Publishable-key requests per minute per product and client IP. @default 0 (off) */
  visitorIpPerMinute?: number;
  /** Publishable-key requests per minute per conversation token's conversation. @default 0 (off) */
  visitorConversationPerMinute?: number;
  /** Wrong keys or tokens per IP per window before that IP's credentials are refused. */
  badCredentialsPerIp: number;
  badCredentialsWindowSeconds: number;
  /** How long an address found with no wrong credentials on record is not looked up again. @default 1000 */
  cleanAddressTrustMs?: number;
}

export interface RateLimits {
  /** Refuses a request with credentials from an IP that sent too many wrong ones. */
  checkCredentialsAllowed(ip: string | undefined): Promise<void>;
  /** Counts a wrong key or token sent from `ip`. */
  badCredentials(ip: string | undefined): Promise<void>;
  /** Counts one request (or graphql-ws operation) of an authenticated principal or an anonymous IP. */
  request(principal: Principal, ip: string | undefined): Promise<void>;
}

export function createRateLimits(store: LimiterStore, policy: RateLimitPolicy, onLimited?: (reason: string) => void): RateLimits {
  const leased = (name: string, points: number) => (points > 0 ? store.leased({ name, points, durationSeconds: 60 }) : undefined);
  const product = leased('product', policy.productPerMinute);
  const anonymous = leased('ip', policy.anonymousPerMinute);
  const visitorIp = leased('visitor_ip', policy.visitorIpPerMinute ?? 0);
  const visitorConversation = leased('visitor_conversation', policy.visitorConversationPerMinute ?? 0);
  const badKeys =
    policy.badCredentialsPerIp > 0
      ? store.limiter({ name: 'badcred', points: policy.badCredentialsPerIp, durationSeconds: policy.badCredentialsWindowSeconds })
      : undefined;
  const trustMs = policy.cleanAddressTrustMs ?? 1_000;
  // Addresses found with no wrong credentials on record, until when they are not looked up again.
  const clean = trustMs > 0 ? new LRUCache<string, true>({ max: 100_000, ttl: trustMs, ttlAutopurge: false }) : undefined;

  const consume = async (limiter: Limiter | undefined, key: string, reason: string, message: string) => {
    if (!limiter) return;
    const refusedForMs = await limiter.consume(key);
    if (refusedForMs === null) return;
    onLimited?.(reason);
    throw new RateLimitedError(message, refusedForMs);
  };

  return {
    async checkCredentialsAllowed(ip) {
      if (!badKeys || !ip || clean?.has(ip)) return;
      const state = await badKeys.get(ip).catch(() => undefined);
      // null: nothing on record (undefined: the store failed, ask again next time).
      if (state === null) clean?.set(ip, true);
      if (state && state.consumedPoints >= policy.badCredentialsPerIp) {
        onLimited?.('bad_credentials');
        throw new RateLimitedError('too many wrong keys or tokens from this address', state.msBeforeNext);
      }
    },
    async badCredentials(ip) {
      if (!badKeys || !ip) return;
      clean?.delete(ip);
      // The refusal comes with the next request (checkCredentialsAllowed); this one fails as UNAUTHENTICATED.
      await badKeys.penalty(ip).catch(() => {});
    },
    async request(principal, ip) {
      if (principal.product) {
        if (principal.key?.kind === 'PUBLISHABLE') {
          // Each visitor's own budgets first (together: one wait for Redis, not two): what they refuse
          // never reaches, nor spends, the product's.
          await Promise.all([
            ip
              ? consume(visitorIp, `${principal.product.id}:${ip}`, 'visitor_ip', 'too many requests from this address for this product')
              : undefined,
            principal.conversationId
              ? consume(visitorConversation, principal.conversationId, 'visitor_conversation', 'too many requests for this conversation')
              : undefined,
          ]);
        }
        return consume(product, principal.product.id, 'product', 'too many requests for this product key');
      }
      // The admin token is trusted; an anonymous request is limited per IP when there is one (a socket).
      if (principal.isAdmin || !ip) return;
      return consume(anonymous, ip, 'anonymous_ip', 'too many requests without a key from this address');
    },
  };
}

/**
 * A budget of `perSecond` messages in each second, for one graphql-ws socket
 * (sockets live on one node, so the count stays in the process). Returns
 * whether the next message is within it. 0 = unlimited.
 */
export function messageBudget(perSecond: number, now: () => number = Date.now): () => boolean {
  if (perSecond <= 0) return () => true;
  let windowStart = now();
  let used = 0;
  return () => {
    const t = now();
    if (t - windowStart >= 1_000) {
      windowStart = t;
      used = 0;
    }
    used += 1;
    return used <= perSecond;
  };
}
