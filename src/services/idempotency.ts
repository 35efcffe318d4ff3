import { z } from 'zod';
import { BadUserInputError, ConflictError } from '../errors.js';
import type { PrismaClient } from '../infra/db.js';
import { sha256 } from '../infra/hash.js';

/**
 * Client idempotency keys (issue 13 point 11). A write that carries a key
 * claims (product, key) in the same SQL statement as the write itself — a CTE
 * `INSERT … ON CONFLICT DO UPDATE … WHERE expired` that the write depends on —
 * so the claim and the write commit together or not at all, copies sent at
 * the same moment queue on the primary key and only one writes, and a retry
 * on any node finds the claim in PostgreSQL. A write without a key runs the
 * same statements as before.
 */

export type IdempotentOperation = 'sendMessage' | 'startConversation' | 'submitFeedback';

/** How long a key matches; a key reused later writes anew (Stripe keeps them 24 h as well). */
export const KEY_LIFETIME = "interval '1 day'";

/** 1–100 visible ASCII characters: a UUID, a ULID or base64 fit; spaces and control characters are refused. */
export const idempotencyKey = z
  .string()
  .regex(/^[\x21-\x7e]{1,100}$/, 'must be 1-100 printable ASCII characters without spaces')
  .nullish();

/** The first request's claim, as a retry reads it. */
export interface KeyClaim {
  operation: IdempotentOperation;
  requestHash: string;
  resultId: string;
  replyId: string | null;
}

/** A key and what the request asks for, as `claimKeyCte` writes it. */
export interface KeyRequest {
  key: string;
  operation: IdempotentOperation;
  requestHash: string;
}

/** The same request content always hashes the same: the operation and its normalised inputs, in order. */
export function requestHash(operation: IdempotentOperation, ...parts: (string | null | undefined)[]): string {
  return sha256(JSON.stringify([operation, ...parts.map((p) => p ?? null)]), 'base64url');
}

/**
 * `k AS (…)`: claims the key and returns one row, or none when a claim less
 * than a day old exists (an older one is overwritten). Parameters are numbered
 * by the caller's statement; `when` (SQL) may hold the claim back, e.g. until
 * the conversation is known to exist, so a refused write leaves no claim.
 */
export function claimKeyCte(
  p: { productId: number; key: number; operation: number; hash: number; resultId: number; replyId?: number },
  when = 'true',
): string {
  return `k AS (
       INSERT INTO "IdempotencyKey" ("productId", key, operation, "requestHash", "resultId", "replyId", "createdAt")
       SELECT $${p.productId}::uuid, $${p.key}, $${p.operation}, $${p.hash}, $${p.resultId}::uuid, ${p.replyId ? `$${p.replyId}::uuid` : 'NULL'}, now()
        WHERE ${when}
       ON CONFLICT ("productId", key) DO UPDATE
          SET operation = EXCLUDED.operation, "requestHash" = EXCLUDED."requestHash", "resultId" = EXCLUDED."resultId",
              "replyId" = EXCLUDED."replyId", "createdAt" = EXCLUDED."createdAt"
        WHERE "IdempotencyKey"."createdAt" < now() - ${KEY_LIFETIME}
       RETURNING 1)`;
}

/**
 * The live claim of a key that a write found taken, checked against this
 * request: the same key with another operation or other content is
 * BAD_USER_INPUT (a client bug worth hearing about, as Stripe answers it).
 * Undefined when there is none (the write was refused for another reason).
 */
export async function claimedBy(prisma: PrismaClient, productId: string, request: KeyRequest): Promise<KeyClaim | undefined> {
  const [claim] = await prisma.$queryRawUnsafe<KeyClaim[]>(
    `SELECT operation, "requestHash", "resultId"::text AS "resultId", "replyId"::text AS "replyId"
       FROM "IdempotencyKey"
      WHERE "productId" = $1::uuid AND key = $2 AND "createdAt" >= now() - ${KEY_LIFETIME}`,
    productId,
    request.key,
  );
  if (!claim) return undefined;
  if (claim.operation !== request.operation || claim.requestHash !== request.requestHash) {
    throw new BadUserInputError(
      `input.idempotencyKey was used for another request (${claim.operation}) in the last 24 hours: send a new key for new content`,
      'input.idempotencyKey',
    );
  }
  return claim;
}

/** Deletes claims that no longer match. Cheap (the createdAt index) and harmless when several nodes run it at once. */
export async function sweepExpiredKeys(prisma: PrismaClient): Promise<number> {
  return prisma.$executeRawUnsafe(`DELETE FROM "IdempotencyKey" WHERE "createdAt" < now() - ${KEY_LIFETIME}`);
}

/**
 * A write found its key taken but no live claim: the claim expired between the
 * two statements (a day to the millisecond). Not worth a second attempt here.
 */
export function unclaimable(): never {
  throw new ConflictError('input.idempotencyKey changed hands while this request ran; send it again', { field: 'input.idempotencyKey' });
}
