import { BadUserInputError, NotFoundError } from '../errors.js';
import type { PrismaClient } from '../infra/db.js';
import type { Logger } from '../infra/log.js';
import type { EventStream } from '../infra/pubsub/index.js';
import { readFromPrimary } from '../infra/read-routing.js';
import type { Prisma } from '../generated/prisma/client.js';
import { CatchUpStream, type Replays, type StoredKind, type StoredPlace } from './event-replay.js';
import { messageOrder } from './store.js';
import type { ConversationEvent, FeedbackAddedEvent, LiveEvents, MessageAddedEvent, ParleyEvents, ParleyPubSub, Stored } from './types.js';

// The event types and LiveEvents live in types.ts (store.ts and typing.ts need them without this module).
export type * from './types.js';

export function createLiveEvents(pubsub: ParleyPubSub, log: Logger): LiveEvents {
  const send = async <K extends keyof ParleyEvents>(topic: K, id: string, event: ParleyEvents[K]) => {
    try {
      await pubsub.publish(topic, id, event);
      return true;
    } catch (error) {
      log.warn('live event not published', { topic, type: event.type, error: (error as Error).message });
      return false;
    }
  };
  const messageAdded = (conversationId: string, m: Stored): MessageAddedEvent => ({
    type: 'messageAdded',
    messageId: m.id,
    conversationId,
    at: new Date(m.createdAt).toISOString(),
  });
  return {
    messageAdded: (conversationId, message) => send('conversation', conversationId, messageAdded(conversationId, message)),
    replyDelta: (conversationId, messageId, delta, done) => send('conversation', conversationId, { type: 'replyDelta', messageId, delta, done }),
    typingChanged: (conversationId, role, isTyping) =>
      send('conversation', conversationId, { type: 'typingChanged', conversationId, role, isTyping }),
    wire: {
      messageAdded: (conversationId, message) => pubsub.wire('conversation', conversationId, messageAdded(conversationId, message)),
      typingChanged: (conversationId, role, isTyping) =>
        pubsub.wire('conversation', conversationId, { type: 'typingChanged', conversationId, role, isTyping }),
    },
    feedbackAdded: async (productId, conversationId, feedback) => {
      const event = { type: 'feedbackAdded', feedbackId: feedback.id, at: new Date(feedback.createdAt).toISOString() } as const;
      const [a, b] = await Promise.all([send('conversation', conversationId, event), send('product', productId, event)]);
      return a && b;
    },
  };
}

export interface EventSources {
  prisma: PrismaClient;
  pubsub: ParleyPubSub;
  /** This node's replays: their reads bounded, their events shared. */
  replays: Replays;
}

/**
 * The events of one of the product's conversations. With `afterMessageId`, every
 * message stored after it comes first, then live events; after a GAP in the
 * live stream (see event-replay.ts) the messages and ratings stored meanwhile
 * come before further live events. The channel is subscribed before anything
 * is read, so a message committed meanwhile is read, or live, or both — and
 * then delivered once.
 */
export async function conversationEvents(
  { prisma, pubsub, replays }: EventSources,
  productId: string,
  conversationId: string,
  afterMessageId?: string,
  pageSize = 100,
): Promise<AsyncIterableIterator<ConversationEvent>> {
  const conversation = await prisma.conversation.findFirst({ where: { id: conversationId, productId }, select: { id: true } });
  if (!conversation) throw new NotFoundError('Conversation');
  let after: StoredPlace | undefined;
  if (afterMessageId !== undefined) {
    const row = await prisma.message.findFirst({ where: { id: afterMessageId, conversationId }, select: { id: true, createdAt: true } });
    // Missing and another conversation's message read the same.
    if (!row) throw new BadUserInputError('after is not a cursor of this conversation’s messages', 'after');
    after = { id: row.id, at: row.createdAt };
  }
  const live = await subscribed(pubsub.subscribe('conversation', conversationId));
  try {
    // Read once subscribed, on the primary: the last message then is where a replay after a GAP may start.
    const [start] = await readFromPrimary(
      () => prisma.$queryRaw<{ now: Date; lastMessageId: string | null; lastMessageAt: Date }[]>`
        SELECT now() AS now, "lastMessageId"::text AS "lastMessageId", "lastMessageAt" FROM "Conversation" WHERE id = ${conversationId}::uuid`,
    );
    if (!start) throw new NotFoundError('Conversation');
    const last = start.lastMessageId ? { id: start.lastMessageId, at: start.lastMessageAt } : undefined;
    const messages: StoredKind<ConversationEvent> = {
      name: 'message',
      placeOf: (e) => (e.type === 'messageAdded' ? placed(e.messageId, e.at) : undefined),
      read: async (from, take) =>
        placesOf(await prisma.message.findMany({ where: { conversationId, ...afterPlace(from) }, orderBy: messageOrder, take, select: PLACE })),
      event: (row) => ({ type: 'messageAdded', messageId: row.id, conversationId, at: row.at.toISOString() }),
      floor: after ?? last,
    };
    const feedback: StoredKind<ConversationEvent> = feedbackKind(prisma, { conversationId });
    return new CatchUpStream(live, { kinds: [messages, feedback], since: start.now, replayFrom: after, replays, pageSize });
  } catch (error) {
    await live.return();
    throw error;
  }
}

/**
 * Only the events of these kinds (a subscriber that asked for messages alone).
 * Filtered after the catch-up: the replay still places every stored event.
 * return() goes straight to the source, ending a next() that waits there.
 */
export function onlyEvents<E extends { type: string }>(events: AsyncIterableIterator<E>, kinds: ReadonlySet<E['type']>): AsyncIterableIterator<E> {
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      for (;;) {
        const next = await events.next();
        if (next.done || kinds.has(next.value.type)) return next;
      }
    },
    return: async () => (await events.return?.()) ?? { done: true, value: undefined },
    throw: async (error?: unknown) => (await events.throw?.(error)) ?? { done: true, value: undefined },
  };
}

/** Every feedback of the product, for dashboards; after a GAP, what was rated meanwhile comes first. */
export async function productFeedbackEvents(
  { prisma, pubsub, replays }: EventSources,
  productId: string,
): Promise<AsyncIterableIterator<FeedbackAddedEvent>> {
  const live = await subscribed(pubsub.subscribe('product', productId));
  try {
    const [start] = await readFromPrimary(() => prisma.$queryRaw<{ now: Date }[]>`SELECT now() AS now`);
    return new CatchUpStream(live, { kinds: [feedbackKind(prisma, { productId })], since: start!.now, replays });
  } catch (error) {
    await live.return();
    throw error;
  }
}

const PLACE = { id: true, createdAt: true } as const;
const feedbackOrder: Prisma.FeedbackOrderByWithRelationInput[] = [{ createdAt: 'asc' }, { id: 'asc' }];

/** Ratings in a conversation or a product; on a conversation's stream it also sees the other events (method parameters are bivariant). */
function feedbackKind(prisma: PrismaClient, scope: { conversationId: string } | { productId: string }): StoredKind<FeedbackAddedEvent> {
  return {
    name: 'feedback',
    placeOf: (e) => (e.type === 'feedbackAdded' ? placed(e.feedbackId, e.at) : undefined),
    read: async (from, take) =>
      placesOf(await prisma.feedback.findMany({ where: { ...scope, ...afterPlace(from) }, orderBy: feedbackOrder, take, select: PLACE })),
    event: (row) => ({ type: 'feedbackAdded', feedbackId: row.id, at: row.at.toISOString() }),
  };
}

/** Rows after a place in (createdAt, id) order. */
function afterPlace(from: StoredPlace) {
  return { OR: [{ createdAt: { gt: from.at } }, { createdAt: from.at, id: { gt: from.id } }] };
}

function placesOf(rows: { id: string; createdAt: Date }[]): StoredPlace[] {
  return rows.map((row) => ({ id: row.id, at: row.createdAt }));
}

/** An event's stored place; none for an event without one (published by a node before events carried it). */
function placed(id: string, at: string | undefined): StoredPlace | undefined {
  return typeof at === 'string' ? { id, at: new Date(at) } : undefined;
}

async function subscribed<T>(stream: EventStream<T>): Promise<EventStream<T>> {
  try {
    await stream.ready;
    return stream;
  } catch (error) {
    await stream.return();
    throw error;
  }
}
