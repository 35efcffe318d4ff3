import { z } from 'zod';
import { cachePolicy } from '../infra/cache/index.js';
import { selectionTags } from './products.js';
import { tags, type Store } from './store.js';
import type { Prisma } from '../generated/prisma/client.js';
import { BadUserInputError } from '../errors.js';
import { limits, NO_NUL_MESSAGE, noNul, optionalText, parseInput, text } from './validation.js';

const startInput = z.object({
  sessionId: text(limits.sessionId),
  title: optionalText(limits.title),
});

type Query = { select?: Prisma.ConversationSelect; include?: Prisma.ConversationInclude };

export async function startConversation({ prisma, cache }: Store, productId: string, input: unknown, query: Query = {}) {
  const { sessionId, title } = parseInput(startInput, input);
  const conversation = await prisma.conversation.create({ ...query, data: { productId, sessionId, title: title ?? null } });
  await cache.invalidate([tags.conversations(productId)]);
  return conversation;
}

/** The first page (no cursor) of a conversation list, per selection, until the product's conversations change. */
const firstPagePolicy = cachePolicy<{ productId: string; sessionId: string | null; query: object }>({
  name: 'conversationsFirstPage',
  ttlMs: 30_000,
  scope: (a) => a.productId,
  key: (a) => [a.sessionId, a.query],
  tags: (a) => selectionTags(a.productId, { conversations: a.query }),
});

/**
 * Conversations of a product, newest activity first. A cursor must be one of
 * this product's conversations: another's would position the page (Prisma finds
 * a cursor row by id alone), where a missing one gives an empty page.
 */
export function listConversations(
  { prisma, cache }: Store,
  productId: string,
  { sessionId, cursorId }: { sessionId?: string | null; cursorId?: string | undefined },
  query: Prisma.ConversationFindManyArgs,
) {
  const filter = conversationFilter(productId, sessionId);
  const read = () =>
    prisma.conversation.findMany({
      ...query,
      relationLoadStrategy: 'join',
      where: cursorId === undefined ? filter : { AND: [filter, { product: { conversations: { some: { id: cursorId } } } }] },
      orderBy: conversationOrder,
    });
  if (cursorId !== undefined) return read();
  return cache.get(firstPagePolicy, { productId, sessionId: sessionId ?? null, query }, read);
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
