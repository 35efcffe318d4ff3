import { builder } from '../builder.js';
import type { Conversation as ConversationRow } from '../generated/prisma/client.js';
import { requireProduct } from '../services/auth.js';
import { listConversations, startConversation } from '../services/conversations.js';
import { messageOrder } from '../services/messages.js';
import { queryFromInfo } from '@pothos/plugin-prisma';
import { resolveCursorConnection } from '@pothos/plugin-relay';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../services/validation.js';
import { conversationCursor, conversationCursorPlace, cursorUuid, nodeUuid, parseGlobalId, refuseMixedDirections } from './ids.js';

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
  // A connection of its own rather than t.prismaConnection: plugin-prisma pages with Prisma's `cursor`, which
  // reads the messages, feedback and lastMessage of a cursor page in separate statements (see listConversations).
  conversations: t.connection({
    type: Conversation,
    description: "The calling product's conversations, most recent activity first.",
    args: { sessionId: t.arg.string() },
    resolve: async (_root, args, ctx, info) => {
      const productId = requireProduct(ctx).id;
      refuseMixedDirections(args);
      const from = conversationCursorPlace(args, productId);
      const query = await queryFromInfo({
        context: ctx,
        info,
        typeName: 'Conversation',
        select: { id: true, lastMessageAt: true },
        paths: [['nodes'], ['edges', 'node']],
        awaitSelections: true,
      });
      const connection = await resolveCursorConnection<Promise<ConversationRow[]>>(
        { args, defaultSize: DEFAULT_PAGE_SIZE, maxSize: MAX_PAGE_SIZE, toCursor: (row) => conversationCursor(row, productId) },
        async ({ limit, inverted }): Promise<ConversationRow[]> =>
          from === 'elsewhere'
            ? []
            : await listConversations(ctx, productId, { sessionId: args.sessionId, page: { take: limit, towardsNewer: inverted, from } }, query),
      );
      // An empty page has no cursors (resolveCursorConnection would echo the argument's).
      if (connection.edges.length === 0) Object.assign(connection.pageInfo, { startCursor: null, endCursor: null });
      return connection;
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

