import { createHmac, timingSafeEqual } from 'node:crypto';
import { UnauthenticatedError } from '../errors.js';
import type { Product } from '../generated/prisma/client.js';
import { cachePolicy } from '../infra/cache/index.js';
import { tags, type Store } from './store.js';

/**
 * Conversation tokens: what proves, with a publishable key, that the client
 * started a conversation. `ct_` + base64url of the conversation's uuid (16
 * bytes), its expiry (uint32, seconds since the epoch) and an HMAC-SHA256 of
 * both under the product's own secret (Product.conversationTokenSecret, in the
 * database: every node checks a token without shared configuration). The
 * product's id is in the MAC input too, so a token is nothing to another product
 * even if two secrets were equal. Opaque to clients; nothing in it is secret
 * but the MAC.
 */
export const CONVERSATION_TOKEN_PREFIX = 'ct_';

const VERSION = 'parley-conversation-token-v1';
const UUID_BYTES = 16;
const EXPIRY_BYTES = 4;
const MAC_BYTES = 32;
const BODY_BYTES = UUID_BYTES + EXPIRY_BYTES;
const TOKEN_LENGTH = CONVERSATION_TOKEN_PREFIX.length + Math.ceil(((BODY_BYTES + MAC_BYTES) * 4) / 3);

type Signer = Pick<Product, 'id' | 'conversationTokenSecret'>;

function mac(product: Signer, body: Buffer): Buffer {
  return createHmac('sha256', Buffer.from(product.conversationTokenSecret, 'hex')).update(VERSION).update(product.id).update(body).digest();
}

/**
 * The product's current signing secret, for issuing. A publishable key's own lookup is dropped when
 * that key (and with it the secret) is rotated, so its row is current; a secret key's lookup is not,
 * so a token it issues is signed with the secret read here, until the product changes.
 */
const signerPolicy = cachePolicy<string>({
  name: 'conversationTokenSigner',
  ttlMs: 5 * 60_000,
  scope: (productId) => productId,
  tags: (productId) => [tags.product(productId)],
});

export function currentSigner({ prisma, cache }: Store, productId: string): Promise<Signer> {
  return cache.get(signerPolicy, productId, () =>
    prisma.product.findUniqueOrThrow({ where: { id: productId }, select: { id: true, conversationTokenSecret: true } }),
  );
}

/** A token that opens `conversationId` of `product` until `now + ttlMs`. */
export function issueConversationToken(product: Signer, conversationId: string, ttlMs: number, now = Date.now()): string {
  const body = Buffer.alloc(BODY_BYTES);
  Buffer.from(conversationId.replace(/-/g, ''), 'hex').copy(body, 0);
  body.writeUInt32BE(Math.min(0xffff_ffff, Math.floor((now + ttlMs) / 1000)), UUID_BYTES);
  return CONVERSATION_TOKEN_PREFIX + Buffer.concat([body, mac(product, body)]).toString('base64url');
}

/**
 * The conversation a token opens, or UNAUTHENTICATED when it is malformed,
 * signed by anyone but this product (forged, tampered, another product's, or
 * from before its publishable key was rotated) or expired. The MAC is compared
 * in constant time and before the expiry is looked at.
 */
export function verifyConversationToken(product: Signer, token: string, now = Date.now()): { conversationId: string; expiresAt: number } {
  const refused = (why: string) => new UnauthenticatedError(`invalid conversation token: ${why}`);
  if (!token.startsWith(CONVERSATION_TOKEN_PREFIX) || token.length !== TOKEN_LENGTH) throw refused('malformed');
  const raw = Buffer.from(token.slice(CONVERSATION_TOKEN_PREFIX.length), 'base64url');
  // base64url decoding skips what is not base64url: a re-encoding that differs is not this token.
  if (raw.length !== BODY_BYTES + MAC_BYTES || raw.toString('base64url') !== token.slice(CONVERSATION_TOKEN_PREFIX.length)) {
    throw refused('malformed');
  }
  const body = raw.subarray(0, BODY_BYTES);
  if (!timingSafeEqual(raw.subarray(BODY_BYTES), mac(product, body))) throw refused('not signed for this product');
  const expiresAt = body.readUInt32BE(UUID_BYTES) * 1000;
  if (expiresAt <= now) throw refused('expired: start a new conversation');
  const hex = body.subarray(0, UUID_BYTES).toString('hex');
  return { conversationId: `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`, expiresAt };
}
