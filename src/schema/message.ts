import type { ObjectRef } from '@pothos/core';
import { getRefFromModel } from '@pothos/plugin-prisma';
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { Message as MessageRow } from '../generated/prisma/client.js';
import { MessageRole as MessageRoleValues } from '../generated/prisma/enums.js';
import { builder } from '../builder.js';
import { nodeId } from './exposed-columns.js';
import { DatabaseUnavailableError } from '../errors.js';
import { isDatabaseUnavailable } from '../infra/db.js';
import { conversationScopes, isPublishable, openConversations, requireProduct } from '../services/auth.js';
import { parseSend, sendUserMessage } from '../services/messages.js';
import { uuidv7 } from '../services/ids.js';
import { conversationArgScopes, nodeUuid } from './ids.js';
import './knowledge.js';

export const IDEMPOTENCY_KEY =
  'Optional, 1-100 printable ASCII characters without spaces (e.g. a UUID made by the client per action). Sent again within 24 hours, ' +
  "on any node, it returns the first request's result instead of writing again; with other content it is BAD_USER_INPUT. " +
  'Keys are per product.';

export const MessageRole = builder.enumType(MessageRoleValues, { name: 'MessageRole' });

export const Message = builder.prismaNode('Message', {
  id: nodeId('id'),
  // sourceIds (a few uuids, empty for most messages) rides along so `sources` can be a
  // selection-aware prismaField batched by a loader instead of a per-row fallback query.
  // conversationId: the scope check of every message (a publishable key sees those of its conversation only).
  select: { id: true, sourceIds: true, conversationId: true },
  nullable: true,
  findUnique: (id, ctx) => ({
    id: nodeUuid(id, 'Message'),
    conversation: { productId: requireProduct(ctx).id },
    ...(isPublishable(ctx) ? { conversationId: { in: openConversations(ctx) } } : {}),
  }),
  authScopes: (message, ctx) => conversationScopes(ctx, message.conversationId),
  fields: (t) => ({
    role: t.expose('role', { type: MessageRole }),
    content: t.exposeString('content'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    conversation: t.relation('conversation'),
    feedback: t.relation('feedback', { nullable: true }),
    model: t.exposeString('model', { nullable: true, description: 'ASSISTANT replies: the model that wrote it (`local-fts` for the local engine).' }),
    latencyMs: t.exposeInt('latencyMs', {
      nullable: true,
      description: 'ASSISTANT replies: milliseconds to produce the answer (storing it not included).',
    }),
    cached: t.exposeBoolean('cached', {
      nullable: true,
      description:
        'ASSISTANT replies: true when the answer was not generated for this question but reused (answer cache, or an identical question answered at the same moment).',
    }),
    sources: t.prismaField({
      type: ['KnowledgeEntry'],
      description:
        'ASSISTANT replies: the knowledge entries the answer was grounded on, best first (an entry deleted since is left out). Empty for other messages.',
      // The entries of every reply of the request are read in one statement.
      resolve: async (query, message, _args, ctx) =>
        (await ctx.loaders.knowledgeEntries(query, message.sourceIds)).filter((e) => ctx.isAdmin || e.productId === ctx.product?.id),
    }),
  }),
});

// conversation.ts imports this file: the Conversation node by its Prisma model's ref (an object's), not by conversation.ts's export.
const ConversationNode = getRefFromModel('Conversation', builder) as ObjectRef<typeof builder.$inferSchemaTypes, unknown>;

const SendMessageInput = builder.inputType('SendMessageInput', {
  fields: (t) => ({
    conversationId: t.globalID({ for: ConversationNode, required: true }),
    content: t.string({ required: true }),
    stream: t.boolean({
      defaultValue: false,
      description: 'Return at once (reply: null); the reply arrives on conversationEvents as ReplyDelta pieces under replyId, then MessageAdded.',
    }),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY }),
  }),
});

/**
 * `replyId` is set once the reply is announced; `stored` once it is written; `replyError` when producing it failed.
 * `rows`: the messages as their INSERT … RETURNING gave them, so the payload reads no row again (relations
 * selected on them are loaded by plugin-prisma's fallback, as for any parent without them).
 */
type Payload = {
  messageId: string;
  replyId: string | null;
  stored: boolean;
  replyError?: unknown;
  rows?: { message: MessageRow; reply?: MessageRow };
};

const SendMessagePayload = builder.objectRef<Payload>('SendMessagePayload').implement({
  fields: (t) => ({
    message: t.prismaField({
      type: 'Message',
      description: 'The stored USER message.',
      resolve: (query, payload, _args, ctx) =>
        payload.rows?.message ?? ctx.prisma.message.findUniqueOrThrow({ ...query, relationLoadStrategy: 'join', where: { id: payload.messageId } }),
    }),
    reply: t.prismaField({
      type: 'Message',
      nullable: true,
      description: 'The ASSISTANT reply; null with stream: true (it arrives on conversationEvents).',
      resolve: (query, payload, _args, ctx) => {
        if (payload.replyError) throw replyFailure(payload.replyError);
        if (!payload.stored || !payload.replyId) return null;
        return payload.rows?.reply ?? ctx.prisma.message.findUnique({ ...query, relationLoadStrategy: 'join', where: { id: payload.replyId } });
      },
    }),
    replyId: t.id({
      nullable: true,
      description: 'The id the reply is stored under — with stream: true, the messageId of its ReplyDelta events before it is stored.',
      resolve: (payload) => (payload.replyId ? encodeGlobalID('Message', payload.replyId) : null),
    }),
  }),
});

builder.mutationField('sendMessage', (t) =>
  t.withAuth(conversationArgScopes('input.conversationId')).field({
    type: SendMessagePayload,
    description:
      'Stores a USER message (counters and lastMessage move in the same statement) and produces the ASSISTANT reply: ' +
      'in the payload, or with stream: true as ReplyDelta events then MessageAdded. With the local engine (not streamed) ' +
      'the answer comes first and both messages are stored in one statement: an answer that fails stores nothing.',
    args: { input: t.arg({ type: SendMessageInput, required: true }) },
    skipTypeScopes: true,
    resolve: async (_root, { input }, ctx): Promise<Payload> => {
      const product = ctx.product;
      const conversationId = input.conversationId.id;
      const answers = ctx.deps.answers;
      // The local engine answers at once: the answer, then the question and the reply in one
      // statement. When that wrote nothing (the key was taken, no such conversation), the path
      // below replays the first request or says NOT_FOUND, without writing again.
      const answersFirst = !input.stream && answers.answersFirst;
      if (answersFirst) {
        const { content, request } = parseSend(conversationId, input);
        const stored = await answers.exchange(product, conversationId, content, request && { ...request, replyId: uuidv7() });
        if (stored) return { messageId: stored.message.id, replyId: stored.reply.id, stored: true, rows: stored };
      }
      // Not streamed, the question is announced with its reply when that comes within the typing
      // delay (one Redis round trip, not two): the sender gets both in this response anyway.
      const defer = !input.stream && ctx.deps.config.answers.typingDelayMs > 0;
      const { message, replyId, replayed, announcement } = await sendUserMessage(ctx, product.id, conversationId, input, {
        defer,
        taken: answersFirst,
      });
      if (input.stream) {
        // A retry of a streamed send starts no second reply: the first request's is on its way (or stored).
        if (replayed) return { messageId: message.id, replyId: replyId ?? null, stored: false, rows: { message } };
        return {
          messageId: message.id,
          replyId: answers.replyInBackground(product, conversationId, message, replyId),
          stored: false,
          rows: { message },
        };
      }
      // The USER message is stored whatever happens to the reply: a failed reply is an error on `reply` only.
      const reply = replyId
        ? answers.replyOnce(product, conversationId, message, replyId, replayed, announcement)
        : answers.reply(product, conversationId, message, { stream: false, pending: announcement });
      return reply
        .finally(() => announcement.flush())
        .then(
          (reply) => ({ messageId: message.id, replyId: reply.id, stored: true, rows: { message, reply } }),
          (replyError: unknown) => ({ messageId: message.id, replyId: null, stored: false, replyError, rows: { message } }),
        );
    },
  }),
);

/**
 * The message is stored at this point, so a reply that failed because the
 * database was unavailable (pool exhausted under load, server restarting) says
 * so and how to get the reply without storing the message twice, instead of a
 * bare error a client would answer by sending the message again.
 */
function replyFailure(error: unknown): unknown {
  if (!isDatabaseUnavailable(error)) return error;
  return new DatabaseUnavailableError(
    'Your message was stored, but its reply could not be: the database is unavailable right now. ' +
      'Send it again with the same idempotencyKey after retryAfter seconds to get the reply without storing the message twice.',
    { retryAfter: 1, messageStored: true },
  );
}
