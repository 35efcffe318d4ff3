import { tags } from '../services/store.js';

/**
 * What a cached response depends on, by the GraphQL types its selection
 * reaches: each type names the tags whose bumps change what it shows. A write
 * bumps these same tags (services/store.ts), so a response cached whole is
 * dropped exactly when a resolver cache of the same data would be.
 *
 * `false` marks a type whose data no tag covers: a query that reaches one is
 * never cached whole. test/unit/response-tags.test.ts fails when a type of the
 * schema is missing here, so a new type cannot be cached by accident.
 */
export type TagOfProduct = (productId: string) => string;

const product = [tags.product];
const conversations = [tags.conversations];
const feedback = [tags.feedback];
const knowledge = [tags.knowledge];
const structure: TagOfProduct[] = [];

export const RESPONSE_TAGS: Readonly<Record<string, readonly TagOfProduct[] | false>> = {
  Query: structure,
  PageInfo: structure,
  Product: product,
  // Counters of conversations, messages and ratings; provider trouble has no tag (its cache policy's TTL bounds it).
  ProductStats: [tags.conversations, tags.feedback],
  AnswerStats: [tags.conversations, tags.feedback],
  AnswerModelStats: [tags.conversations, tags.feedback],
  Conversation: conversations,
  QueryConversationsConnection: conversations,
  QueryConversationsConnectionEdge: conversations,
  ProductConversationsConnection: conversations,
  ProductConversationsConnectionEdge: conversations,
  Message: conversations,
  ConversationMessagesConnection: conversations,
  ConversationMessagesConnectionEdge: conversations,
  Feedback: feedback,
  KnowledgeEntry: knowledge,
  KnowledgeHit: knowledge,
  ProductKnowledgeConnection: knowledge,
  ProductKnowledgeConnectionEdge: knowledge,
  // Admin and per-node data, never cached whole (admin requests are not cached at all).
  CacheStat: false,
  QueryProductsConnection: false,
  QueryProductsConnectionEdge: false,
  // Only reachable from mutations and subscriptions, which are never cached.
  Mutation: false,
  Subscription: false,
  SendMessagePayload: false,
  ProductKeyPayload: false,
  MessageAdded: false,
  ReplyDelta: false,
  TypingChanged: false,
  FeedbackAdded: false,
};
