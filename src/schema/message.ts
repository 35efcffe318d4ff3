import { MessageRole as MessageRoleValues } from '../generated/prisma/enums.js';
import { builder } from '../builder.js';
import { requireProduct } from '../services/auth.js';
import { sendUserMessage } from '../services/messages.js';
import { nodeUuid, parseGlobalId } from './ids.js';

export const MessageRole = builder.enumType(MessageRoleValues, { name: 'MessageRole' });

export const Message = builder.prismaNode('Message', {
  id: { field: 'id' },
  select: { id: true },
  nullable: true,
  findUnique: (id, ctx) => ({ id: nodeUuid(id, 'Message'), conversation: { productId: requireProduct(ctx).id } }),
  fields: (t) => ({
    role: t.expose('role', { type: MessageRole }),
    content: t.exposeString('content'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    conversation: t.relation('conversation'),
    feedback: t.relation('feedback', { nullable: true }),
  }),
});

const SendMessageInput = builder.inputType('SendMessageInput', {
  fields: (t) => ({ conversationId: t.id({ required: true }), content: t.string({ required: true }) }),
});

const SendMessagePayload = builder
  .objectRef<{ messageId: string; replyId: string | null }>('SendMessagePayload')
  .implement({
    fields: (t) => ({
      message: t.prismaField({
        type: 'Message',
        description: 'The stored USER message.',
        resolve: (query, payload, _args, ctx) =>
          ctx.prisma.message.findUniqueOrThrow({ ...query, relationLoadStrategy: 'join', where: { id: payload.messageId } }),
      }),
      reply: t.prismaField({
        type: 'Message',
        nullable: true,
        description: 'The ASSISTANT reply, once an answer engine produces one.',
        resolve: (query, payload, _args, ctx) =>
          payload.replyId
            ? ctx.prisma.message.findUnique({ ...query, relationLoadStrategy: 'join', where: { id: payload.replyId } })
            : null,
      }),
    }),
  });

builder.mutationField('sendMessage', (t) =>
  t.field({
    type: SendMessagePayload,
    description: 'Stores a USER message; counters and lastMessage move in the same statement.',
    args: { input: t.arg({ type: SendMessageInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const product = requireProduct(ctx);
      const conversationId = parseGlobalId(String(input.conversationId), 'Conversation', 'input.conversationId');
      const message = await sendUserMessage(ctx, product.id, conversationId, input);
      return { messageId: message.id, replyId: null };
    },
  }),
);
