import { BadUserInputError, NotFoundError } from '../errors.js';
import type { PrismaClient } from '../infra/db.js';
import type { Logger } from '../infra/log.js';
import type { EventStream, PubSub, WireEvent } from '../infra/pubsub/index.js';
import type { MessageRole } from '../generated/prisma/client.js';
import { messageOrder } from './messages.js';

/**
 * Live events. Payloads are compact — ids and deltas — and every node resolves
 * them through fresh loaders when it delivers them, so a subscriber always sees
 * the rows as they are, and a payload never carries data of its own to trust.
 */
export type MessageAddedEvent = { type: 'messageAdded'; messageId: string };
/** A piece of a streamed assistant reply; `messageId` is the id the reply will be stored under. */
export type ReplyDeltaEvent = { type: 'replyDelta'; messageId: string; delta: string; done: boolean };
export type TypingChangedEvent = { type: 'typingChanged'; conversationId: string; role: MessageRole; isTyping: boolean };
export type FeedbackAddedEvent = { type: 'feedbackAdded'; feedbackId: string };
export type ConversationEvent = MessageAddedEvent | ReplyDeltaEvent | TypingChangedEvent | FeedbackAddedEvent;

/** Channels: one per conversation, one per product (its feedback, for dashboards). */
export type ParleyEvents = {
  conversation: ConversationEvent;
  product: FeedbackAddedEvent;
};
export type ParleyPubSub = PubSub<ParleyEvents>;

/**
 * What services call after a write has committed. A publish never fails the
 * write it announces: when Redis is unreachable the event is logged and lost
 * (resolves false), and clients catch up on messages with the `after` cursor.
 */
export interface LiveEvents {
  messageAdded(conversationId: string, messageId: string): Promise<boolean>;
  replyDelta(conversationId: string, messageId: string, delta: string, done: boolean): Promise<boolean>;
  typingChanged(conversationId: string, role: MessageRole, isTyping: boolean): Promise<boolean>;
  feedbackAdded(productId: string, conversationId: string, feedbackId: string): Promise<boolean>;
  /**
   * The same events as PUBLISHes a caller sends with its own Redis commands (the
   * cache bump of the write, the typing script); undefined in-process. Whoever
   * takes one publishes it, or falls back to the method above.
   */
  wire: {
    messageAdded(conversationId: string, messageId: string): WireEvent | undefined;
    typingChanged(conversationId: string, role: MessageRole, isTyping: boolean): WireEvent | undefined;
  };
}

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
  return {
    messageAdded: (conversationId, messageId) => send('conversation', conversationId, { type: 'messageAdded', messageId }),
    replyDelta: (conversationId, messageId, delta, done) =>
      send('conversation', conversationId, { type: 'replyDelta', messageId, delta, done }),
    typingChanged: (conversationId, role, isTyping) =>
      send('conversation', conversationId, { type: 'typingChanged', conversationId, role, isTyping }),
    wire: {
      messageAdded: (conversationId, messageId) => pubsub.wire('conversation', conversationId, { type: 'messageAdded', messageId }),
      typingChanged: (conversationId, role, isTyping) =>
        pubsub.wire('conversation', conversationId, { type: 'typingChanged', conversationId, role, isTyping }),
    },
    feedbackAdded: async (productId, conversationId, feedbackId) => {
      const event = { type: 'feedbackAdded', feedbackId } as const;
      const [a, b] = await Promise.all([send('conversation', conversationId, event), send('product', productId, event)]);
      return a && b;
    },
  };
}

export interface EventSources {
  prisma: PrismaClient;
  pubsub: ParleyPubSub;
}

/**
 * The events of one of the product's conversations. With `afterMessageId`, every
 * message stored after it comes first, then live events: the channel is
 * subscribed before the replay is read, so a message committed meanwhile is in
 * the replay, or live, or both — and then delivered once (by id).
 */
export async function conversationEvents(
  { prisma, pubsub }: EventSources,
  productId: string,
  conversationId: string,
  afterMessageId?: string,
  pageSize = 100,
): Promise<AsyncIterableIterator<ConversationEvent>> {
  const conversation = await prisma.conversation.findFirst({ where: { id: conversationId, productId }, select: { id: true } });
  if (!conversation) throw new NotFoundError('Conversation');
  let cursor: ReplayPosition | undefined;
  if (afterMessageId !== undefined) {
    cursor = (await prisma.message.findFirst({ where: { id: afterMessageId, conversationId }, select: { id: true, createdAt: true } })) ?? undefined;
    // Missing and another conversation's message read the same.
    if (!cursor) throw new BadUserInputError('after is not a cursor of this conversation’s messages', 'after');
  }
  const live = await subscribed(pubsub.subscribe('conversation', conversationId));
  return cursor ? new ReplayThenLive(prisma, conversationId, cursor, live, pageSize) : live;
}

/** Every feedback of the product, for dashboards. */
export function productFeedbackEvents(pubsub: ParleyPubSub, productId: string): Promise<EventStream<FeedbackAddedEvent>> {
  return subscribed(pubsub.subscribe('product', productId));
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

type ReplayPosition = { id: string; createdAt: Date };

class ReplayThenLive implements AsyncIterableIterator<ConversationEvent> {
  private page: ReplayPosition[] = [];
  /** The last message replayed; undefined once the replay has caught up. */
  private position: ReplayPosition | undefined;
  /** Replayed ids whose live event may still come. */
  private readonly replayed = new Set<string>();
  private closed = false;

  constructor(
    private readonly prisma: PrismaClient,
    private readonly conversationId: string,
    after: ReplayPosition,
    private readonly live: EventStream<ConversationEvent>,
    private readonly pageSize: number,
  ) {
    this.position = after;
  }

  async next(): Promise<IteratorResult<ConversationEvent, undefined>> {
    while (this.position && !this.closed) {
      if (!this.page.length) this.page = await this.readPage(this.position);
      const row = this.page.shift();
      if (!row || this.closed) {
        this.position = undefined;
        break;
      }
      this.position = row;
      this.replayed.add(row.id);
      return { value: { type: 'messageAdded', messageId: row.id }, done: false };
    }
    for (;;) {
      const result = await this.live.next();
      if (result.done || result.value.type !== 'messageAdded' || !this.replayed.delete(result.value.messageId)) return result;
    }
  }

  async return(): Promise<IteratorReturnResult<undefined>> {
    this.closed = true;
    this.page = [];
    return this.live.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private readPage(after: ReplayPosition): Promise<ReplayPosition[]> {
    return this.prisma.message.findMany({
      where: {
        conversationId: this.conversationId,
        OR: [{ createdAt: { gt: after.createdAt } }, { createdAt: after.createdAt, id: { gt: after.id } }],
      },
      orderBy: messageOrder,
      take: this.pageSize,
      select: { id: true, createdAt: true },
    });
  }
}
