import { z } from 'zod';
import type { PrismaClient } from '../infra/db.js';
import type { Prisma } from '../generated/prisma/client.js';
import { BadUserInputError } from '../errors.js';
import { limits, NO_NUL_MESSAGE, noNul, optionalText, parseInput, text } from './validation.js';

const startInput = z.object({
  sessionId: text(limits.sessionId),
  title: optionalText(limits.title),
});

type Query = { select?: Prisma.ConversationSelect; include?: Prisma.ConversationInclude };

export function startConversation(prisma: PrismaClient, productId: string, input: unknown, query: Query = {}) {
  const { sessionId, title } = parseInput(startInput, input);
  return prisma.conversation.create({ ...query, data: { productId, sessionId, title: title ?? null } });
}

/** Newest activity first; the id breaks ties so cursors are stable. */
export const conversationOrder: Prisma.ConversationOrderByWithRelationInput[] = [{ lastMessageAt: 'desc' }, { id: 'desc' }];

/** The `sessionId` filter argument; one PostgreSQL cannot compare (a NUL) is BAD_USER_INPUT, not an internal error. */
export function sessionFilter(sessionId: string | null | undefined): Prisma.ConversationWhereInput {
  if (sessionId == null) return {};
  if (!noNul(sessionId)) throw new BadUserInputError(`sessionId ${NO_NUL_MESSAGE}`, 'sessionId');
  return { sessionId };
}

export function conversationFilter(productId: string, sessionId: string | null | undefined): Prisma.ConversationWhereInput {
  return { productId, ...sessionFilter(sessionId) };
}
