import { z } from 'zod';
import { BadUserInputError, NotFoundError } from '../errors.js';
import type { PrismaClient } from '../infra/db.js';
import type { Prisma, Rating } from '../generated/prisma/client.js';
import { limits, parseInput, text } from './validation.js';

const submitInput = z.object({
  rating: z.enum(['UP', 'DOWN']),
  comment: text(limits.comment).nullish(),
});

type Query = { select?: Prisma.FeedbackSelect; include?: Prisma.FeedbackInclude };

/**
 * Rates an assistant reply. One rating per message: submitting again replaces
 * it (a user who changes their mind), so stats count each answer once.
 */
export async function submitFeedback(
  prisma: PrismaClient,
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
  const fields = { rating, comment: comment ?? null };
  return prisma.feedback.upsert({
    ...query,
    where: { messageId },
    create: { ...fields, messageId, conversationId: message.conversationId, productId },
    update: { ...fields, createdAt: new Date() },
  });
}
