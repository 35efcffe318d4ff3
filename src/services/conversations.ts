import { z } from 'zod';
import type { PrismaClient } from '../infra/db.js';
import type { Prisma } from '../generated/prisma/client.js';
import { limits, parseInput, text } from './validation.js';

const startInput = z.object({
  sessionId: text(limits.sessionId),
  title: text(limits.title).nullish(),
});

type Query = { select?: Prisma.ConversationSelect; include?: Prisma.ConversationInclude };

export function startConversation(prisma: PrismaClient, productId: string, input: unknown, query: Query = {}) {
  const { sessionId, title } = parseInput(startInput, input);
  return prisma.conversation.create({ ...query, data: { productId, sessionId, title: title ?? null } });
}

/** Newest activity first; the id breaks ties so cursors are stable. */
export const conversationOrder: Prisma.ConversationOrderByWithRelationInput[] = [{ lastMessageAt: 'desc' }, { id: 'desc' }];

export function conversationFilter(productId: string, sessionId: string | null | undefined): Prisma.ConversationWhereInput {
  return sessionId == null ? { productId } : { productId, sessionId };
}
