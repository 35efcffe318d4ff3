import { builder } from '../builder.js';
import { requireProduct } from '../services/auth.js';
import { listConversations, startConversation } from '../services/conversations.js';
import { messageOrder } from '../services/messages.js';
import { cursorUuid, nodeUuid, parseGlobalId } from './ids.js';

export const Conversation = builder.prismaNode('Conversation', {
  id: { field: 'id' },
  select: { id: true },
  nullable: true,
  findUnique: (id, ctx) => ({ id: nodeUuid(id, 'Conversation'), productId: requireProduct(ctx).id }),
  fields: (t) => ({
    sessionId: t.exposeString('sessionId', { description: 'Chosen by the widget, e.g. one per browser session.' }),
    title: t.exposeString('title', { nullable: true }),
    messageCount: t.exposeInt('messageCount'),
    lastMessageAt: t.expose('lastMessageAt', { type: 'DateTime' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastMessage: t.relation('lastMessage', { nullable: true }),
    messages: t.relatedConnection('messages', {
      cursor: 'id',
      description: 'Oldest to newest; page forwards with first/after, backwards with last/before.',
      // A cursor must be a message of this conversation: another's would position the page.
      query: (args) => {
        const id = cursorUuid(args);
        return { where: id === undefined ? {} : { conversation: { messages: { some: { id } } } }, orderBy: messageOrder };
      },
    }),
  }),
});

const StartConversationInput = builder.inputType('StartConversationInput', {
  fields: (t) => ({ sessionId: t.string({ required: true }), title: t.string() }),
});

builder.queryFields((t) => ({
  conversation: t.prismaField({
    type: 'Conversation',
    nullable: true,
    args: { id: t.arg.id({ required: true }) },
    resolve: (query, _root, args, ctx) => {
      const product = requireProduct(ctx);
      const id = parseGlobalId(String(args.id), 'Conversation', 'id');
      return ctx.prisma.conversation.findFirst({ ...query, relationLoadStrategy: 'join', where: { id, productId: product.id } });
    },
  }),
  conversations: t.prismaConnection({
    type: 'Conversation',
    cursor: 'id',
    description: "The calling product's conversations, most recent activity first.",
    args: { sessionId: t.arg.string() },
    resolve: (query, _root, args, ctx) => {
      return listConversations(ctx, requireProduct(ctx).id, { sessionId: args.sessionId, cursorId: cursorUuid(args) }, query);
    },
  }),
}));

builder.mutationField('startConversation', (t) =>
  t.prismaField({
    type: 'Conversation',
    args: { input: t.arg({ type: StartConversationInput, required: true }) },
    resolve: (query, _root, { input }, ctx) => startConversation(ctx, requireProduct(ctx).id, input, query),
  }),
);

