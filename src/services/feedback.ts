import { z } from 'zod';
import { BadUserInputError, NotFoundError } from '../errors.js';
import type { Prisma, Rating } from '../generated/prisma/client.js';
import { tags, type Store } from './store.js';
import { uuidv7 } from './ids.js';
import { claimedBy, claimKeyCte, idempotencyKey, requestHash, unclaimable } from './idempotency.js';
import { limits, optionalText, parseInput } from './validation.js';

const submitInput = z.object({
  rating: z.enum(['UP', 'DOWN']),
  comment: optionalText(limits.comment),
  idempotencyKey,
});

type Query = { select?: Prisma.FeedbackSelect; include?: Prisma.FeedbackInclude };

/**
 * Rates an assistant reply. One rating per message: submitting again replaces
 * it (a user who changes their mind), so stats count each answer once.
 */
export async function submitFeedback(
  { prisma, cache, events }: Store,
  productId: string,
  messageId: string,
  input: unknown,
  query: Query = {},
  /** Set: only a reply of this conversation can be rated (a publishable key's token); another is NOT_FOUND. */
  conversationId?: string,
) {
  const {
    rating,
    comment,
    idempotencyKey: key,
  } = parseInput(submitInput, input) as { rating: Rating; comment?: string | null; idempotencyKey?: string | null };
  const message = await prisma.message.findFirst({
    where: { id: messageId, conversation: { productId }, ...(conversationId ? { conversationId } : {}) },
    select: { role: true, conversationId: true },
  });
  if (!message) throw new NotFoundError('Message');
  if (message.role !== 'ASSISTANT') {
    throw new BadUserInputError('input.messageId only assistant replies can be rated', 'input.messageId');
  }
  // With a key, the claim is made in the same statement and the rating is written only if it was free;
  // the claim's result is the rated message, whose one Feedback row keeps its id when replaced.
  const request = key
    ? { key, operation: 'submitFeedback' as const, requestHash: requestHash('submitFeedback', messageId, rating, comment) }
    : undefined;
  // One atomic INSERT … ON CONFLICT: Prisma's upsert (a SELECT, then an INSERT
  // or UPDATE) lets two concurrent ratings of one reply both try to INSERT, and
  // the loser failed on the unique messageId as an INTERNAL_SERVER_ERROR.
  const [row] = await prisma.$queryRawUnsafe<{ id: string; createdAt: Date }[]>(
    `${request ? `WITH ${claimKeyCte({ productId: 4, resultId: 2, key: 7, operation: 8, hash: 9 })}` : ''}
     INSERT INTO "Feedback" (id, "messageId", "conversationId", "productId", rating, comment, "createdAt")
     SELECT $1::uuid, $2::uuid, $3::uuid, $4::uuid, $5::"Rating", $6, now() ${request ? 'FROM k WHERE true' : ''}
     ON CONFLICT ("messageId") DO UPDATE
        SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, "createdAt" = EXCLUDED."createdAt"
     RETURNING id::text AS id, "createdAt"`,
    uuidv7(),
    messageId,
    message.conversationId,
    productId,
    rating,
    comment ?? null,
    ...(request ? [request.key, request.operation, request.requestHash] : []),
  );
  if (!row) {
    // A retry: the first request's rating, not written again.
    const claim = (await claimedBy(prisma, productId, request!)) ?? unclaimable();
    return prisma.feedback.findFirstOrThrow({ ...query, where: { messageId: claim.resultId, productId } });
  }
  await cache.invalidate([tags.feedback(productId), tags.conversation(productId, message.conversationId)]);
  await events.feedbackAdded(productId, message.conversationId, row!);
  return prisma.feedback.findUniqueOrThrow({ ...query, where: { id: row!.id } });
}
