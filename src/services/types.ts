import type { MessageRole } from '../generated/prisma/client.js';
import type { PubSub, WireEvent } from '../infra/pubsub/index.js';

/**
 * Live events. Payloads are compact — ids and deltas — and every node resolves
 * them through fresh loaders when it delivers them, so a subscriber always sees
 * the rows as they are, and a payload never carries data of its own to trust.
 */
/** `at` is the message's createdAt (ISO): its place in the conversation, for the event's cursor and the replay. */
export type MessageAddedEvent = { type: 'messageAdded'; messageId: string; conversationId: string; at: string };
/** A piece of a streamed assistant reply; `messageId` is the id the reply will be stored under. */
export type ReplyDeltaEvent = { type: 'replyDelta'; messageId: string; delta: string; done: boolean };
export type TypingChangedEvent = { type: 'typingChanged'; conversationId: string; role: MessageRole; isTyping: boolean };
/** `at` is the rating's createdAt (ISO), which a new rating of the same reply moves. */
export type FeedbackAddedEvent = { type: 'feedbackAdded'; feedbackId: string; at: string };
export type ConversationEvent = MessageAddedEvent | ReplyDeltaEvent | TypingChangedEvent | FeedbackAddedEvent;

/** Channels: one per conversation, one per product (its feedback, for dashboards). */
export type ParleyEvents = {
  conversation: ConversationEvent;
  product: FeedbackAddedEvent;
};
export type ParleyPubSub = PubSub<ParleyEvents>;

/** A stored row an event announces. */
export type Stored = { id: string; createdAt: Date };

/**
 * What services call after a write has committed. A publish never fails the
 * write it announces: when Redis is unreachable the event is logged and lost
 * (resolves false); open subscriptions replay stored ones once Redis is back.
 */
export interface LiveEvents {
  messageAdded(conversationId: string, message: Stored): Promise<boolean>;
  replyDelta(conversationId: string, messageId: string, delta: string, done: boolean): Promise<boolean>;
  typingChanged(conversationId: string, role: MessageRole, isTyping: boolean): Promise<boolean>;
  feedbackAdded(productId: string, conversationId: string, feedback: Stored): Promise<boolean>;
  /**
   * The same events as PUBLISHes a caller sends with its own Redis commands (the
   * cache bump of the write, the typing script); undefined in-process. Whoever
   * takes one publishes it, or falls back to the method above.
   */
  wire: {
    messageAdded(conversationId: string, message: Stored): WireEvent | undefined;
    typingChanged(conversationId: string, role: MessageRole, isTyping: boolean): WireEvent | undefined;
  };
}
