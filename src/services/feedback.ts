import { z } from 'zod';
import { BadUserInputError, NotFoundError } from '../errors.js';
import type { Prisma, Rating } from '../generated/prisma/client.js';
import { tags, type Store } from './store.js';
import { uuidv7 } from './ids.js';
import { limits, optionalText, parseInput } from './validation.js';

const submitInput = z.object({
  rating: z.enum(['UP', 'DOWN']),
  comment: optionalText(limits.comment),
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
) {
  const { rating, comment } = parseInput(submitInput, input) as { rating: Rating; comment?: string | null };
  const message = await prisma.message.findFirst({
    where: { id: messageId, conversation: { productId } },
    select: { role: true, conversationId: true },
  });
  if (!message) throw new NotFoundError('Message');
  if (message.role !== 'ASSISTANT') {
    throw new BadUserInputError('input.messageId only assistant replies can be rated', 'input.messageId');
  }
  // One atomic INSERT … ON CONFLICT: Prisma's upsert (a SELECT, then an INSERT
  // or UPDATE) lets two concurrent ratings of one reply both try to INSERT, and
  // the loser failed on the unique messageId as an INTERNAL_SERVER_ERROR.
  const [row] = await prisma.$queryRawUnsafe<{ id: string; createdAt: Date }[]>(
    `INSERT INTO "Feedback" (id, "messageId", "conversationId", "productId", rating, comment, "createdAt")
     VALUES ($1::uuid, $2::uuid, $3::uuid, $4::uuid, $5::"Rating", $6, now())
     ON CONFLICT ("messageId") DO UPDATE
        SET rating = EXCLUDED.rating, comment = EXCLUDED.comment, "createdAt" = EXCLUDED."createdAt"
     RETURNING id::text AS id, "createdAt"`,
    uuidv7(),
    messageId,
    message.conversationId,
    productId,
    rating,
    comment ?? null,
  );
  await cache.invalidate([tags.feedback(productId), tags.conversation(message.conversationId)]);
  await events.feedbackAdded(productId, message.conversationId, row!);
  return prisma.feedback.findUniqueOrThrow({ ...query, where: { id: row!.id } });
}
