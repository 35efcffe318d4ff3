import { z } from 'zod';
import { cachePolicy } from '../infra/cache/index.js';
import { selectionTags } from './products.js';
import { tags, type Store } from './store.js';
import type { Conversation, Prisma } from '../generated/prisma/client.js';
import { BadUserInputError } from '../errors.js';
import { uuidv7 } from './ids.js';
import { claimedBy, claimKeyCte, idempotencyKey, requestHash, unclaimable } from './idempotency.js';
import { limits, NO_NUL_MESSAGE, noNul, optionalText, parseInput, text } from './validation.js';

const startInput = z.object({
  sessionId: text(limits.sessionId),
  title: optionalText(limits.title),
  idempotencyKey,
});

type Query = { select?: Prisma.ConversationSelect; include?: Prisma.ConversationInclude };

export async function startConversation({ prisma, cache }: Store, productId: string, input: unknown, query: Query = {}) {
  const { sessionId, title, idempotencyKey: key } = parseInput(startInput, input);
  if (!key) {
    const conversation = await prisma.conversation.create({ ...query, data: { productId, sessionId, title: title ?? null } });
    await cache.invalidate([tags.conversations(productId)]);
    return conversation;
  }
  // With a key: the claim and the row in one statement, then the selection read by id (one statement more).
  const request = { key, operation: 'startConversation' as const, requestHash: requestHash('startConversation', sessionId, title) };
  const created = await prisma.$queryRawUnsafe<{ id: string }[]>(
    `WITH ${claimKeyCte({ productId: 1, resultId: 2, key: 5, operation: 6, hash: 7 })}
     INSERT INTO "Conversation" (id, "productId", "sessionId", title) SELECT $2::uuid, $1::uuid, $3, $4 FROM k
     RETURNING id::text AS id`,
    productId,
    uuidv7(),
    sessionId,
    title ?? null,
    request.key,
    request.operation,
    request.requestHash,
  );
  let id = created[0]?.id;
  if (id) await cache.invalidate([tags.conversations(productId)]);
  else id = (await claimedBy(prisma, productId, request))?.resultId ?? unclaimable();
  return prisma.conversation.findFirstOrThrow({ ...query, where: { id, productId } });
}

/** The first page (no cursor) of a conversation list, per selection, until the product's conversations change. */
const firstPagePolicy = cachePolicy<{ productId: string; sessionId: string | null; query: object; take: number; towardsNewer: boolean }>({
  name: 'conversationsFirstPage',
  ttlMs: 30_000,
  scope: (a) => a.productId,
  key: (a) => [a.sessionId, a.query, a.take, a.towardsNewer],
  tags: (a) => selectionTags(a.productId, { conversations: a.query }),
});

/** A row's place in `conversationOrder`. */
export interface ConversationPosition {
  lastMessageAt: Date;
  id: string;
}

export interface ConversationPage {
  /** Rows to read: the page and one more, to tell whether there is another page. */
  take: number;
  /** Read towards newer activity (a `last`/`before` page), nearest the cursor first; else towards older. */
  towardsNewer: boolean;
  /** The row the page starts next to: its place, or only its id (a cursor issued before cursors carried the place). */
  from?: ConversationPosition | { id: string };
}

/**
 * A page of a product's conversations, newest activity first (nearest the
 * cursor first when reading towards newer activity). A page starts from the
 * cursor's place in the order (keyset), not from Prisma's `cursor`: Prisma
 * reads relations with separate statements whenever `cursor` is given, so a
 * cursor page with its messages, feedback and lastMessage was five statements
 * where this is one. A cursor holding only an id costs one more statement to
 * find the row's place, among this product's rows only: another product's row
 * gives an empty page, as a missing one does.
 */
export async function listConversations(
  { prisma, cache }: Store,
  productId: string,
  { sessionId, page }: { sessionId?: string | null | undefined; page: ConversationPage },
  query: Query,
): Promise<Conversation[]> {
  const filter = conversationFilter(productId, sessionId);
  const read = (where: Prisma.ConversationWhereInput): Promise<Conversation[]> =>
    prisma.conversation.findMany({
      ...query,
      relationLoadStrategy: 'join',
      where,
      orderBy: page.towardsNewer ? oldestActivityFirst : conversationOrder,
      take: page.take,
    });
  if (!page.from) {
    const key = { productId, sessionId: sessionId ?? null, query, take: page.take, towardsNewer: page.towardsNewer };
    return cache.get(firstPagePolicy, key, () => read(filter));
  }
  const from =
    'lastMessageAt' in page.from
      ? page.from
      : await prisma.conversation.findFirst({ where: { id: page.from.id, productId }, select: { id: true, lastMessageAt: true } });
  if (!from) return [];
  return read({ AND: [filter, beyond(from, page.towardsNewer)] });
}

/** The rows after `from` in the order read: strictly older activity, or strictly newer; the id breaks ties. */
function beyond({ lastMessageAt, id }: ConversationPosition, towardsNewer: boolean): Prisma.ConversationWhereInput {
  // The inclusive bound alone can use the (productId, lastMessageAt) index; the OR drops the ties already read.
  return towardsNewer
    ? { lastMessageAt: { gte: lastMessageAt }, OR: [{ lastMessageAt: { gt: lastMessageAt } }, { id: { gt: id } }] }
    : { lastMessageAt: { lte: lastMessageAt }, OR: [{ lastMessageAt: { lt: lastMessageAt } }, { id: { lt: id } }] };
}

const oldestActivityFirst: Prisma.ConversationOrderByWithRelationInput[] = [{ lastMessageAt: 'asc' }, { id: 'asc' }];

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
