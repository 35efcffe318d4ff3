import { queryFromInfo } from '@pothos/plugin-prisma';
import { builder } from '../builder.js';
import { nodeId } from './exposed-columns.js';
import type { Conversation as ConversationRow, Message as MessageRow, Prisma } from '../generated/prisma/client.js';
import { conversationScopes, isPublishable, mayUseConversation, requireProduct } from '../services/auth.js';
import { currentSigner, issueConversationToken } from '../services/conversation-tokens.js';
import { idempotencyKey } from '../services/idempotency.js';
import { sha256 } from '../infra/hash.js';
import { listConversations, startConversation } from '../services/conversations.js';
import { messageOrder } from '../services/store.js';
import { conversationArgScopes, nodeUuid } from './ids.js';
import { IDEMPOTENCY_KEY, Message } from './message.js';
import { cursorPlace, keysetConnection, pageSize, placeCursor, refuseMixedDirections, type PageArgs } from './pages.js';

/** Where a connection's node rows are in its selection, for plugin-prisma's planner (as its relatedConnection says it). */
const MESSAGE_NODES = { getType: () => 'Message', paths: [[{ name: 'nodes' }], [{ name: 'edges' }, { name: 'node' }]] };

const NO_ROW = '00000000-0000-0000-0000-000000000000';

/**
 * A publishable key's idempotency keys live apart from the secret key's (and are hashed: the
 * length limit holds): one visitor cannot get a server's conversation, and its token, by replaying
 * its key. A key the validator refuses is left for it to refuse.
 */
function publishableIdempotencyKey<I extends { idempotencyKey?: string | null }>(input: I): I {
  const key = input.idempotencyKey;
  if (!key || !idempotencyKey.safeParse(key).success) return input;
  return { ...input, idempotencyKey: `pub:${sha256(key).slice(0, 40)}` };
}

const newestMessageFirst: Prisma.MessageOrderByWithRelationInput[] = [{ createdAt: 'desc' }, { id: 'desc' }];

/**
 * The query of a page of a conversation's messages: from the cursor's place
 * (createdAt, id) by keyset, nearest the cursor first. A cursor of the earlier
 * format (the row id alone) still pages with Prisma's cursor, which reads the
 * page in a statement of its own, and must be a message of this conversation:
 * another's would position the page.
 */
function messagePageQuery(args: PageArgs) {
  const place = cursorPlace(args);
  const { take, backwards } = pageSize(args);
  const orderBy = backwards ? newestMessageFirst : messageOrder;
  if (place === undefined) return { take, orderBy };
  if (!('at' in place)) {
    return { take, orderBy, cursor: { id: place.id }, skip: 1, where: { conversation: { messages: { some: { id: place.id } } } } };
  }
  const { at, id } = place;
  const where: Prisma.MessageWhereInput = backwards
    ? { createdAt: { lte: at }, OR: [{ createdAt: { lt: at } }, { id: { lt: id } }] }
    : { createdAt: { gte: at }, OR: [{ createdAt: { gt: at } }, { id: { gt: id } }] };
  return { take, orderBy, where };
}

export const Conversation = builder.prismaNode('Conversation', {
  id: nodeId('id'),
  select: { id: true },
  nullable: true,
  // A publishable key finds only the conversation its token opens: any other is as missing as another product's.
  findUnique: (id, ctx) => {
    const uuid = nodeUuid(id, 'Conversation');
    return { id: mayUseConversation(ctx, uuid) ? uuid : NO_ROW, productId: requireProduct(ctx).id };
  },
  authScopes: (conversation, ctx) => conversationScopes(ctx, conversation.id),
  fields: (t) => ({
    conversationToken: t.withAuth({ product: true }).string({
      nullable: true,
      description:
        'Only in the response of startConversation (null elsewhere): the token that opens this conversation, and no other, to the ' +
        "product's publishable key — send it as the x-conversation-token header (graphql-ws: connectionParams.conversationToken). " +
        'It expires after PARLEY_CONVERSATION_TOKEN_TTL_DAYS and when the publishable key is rotated.',
      resolve: async (conversation, _args, ctx) => {
        if (!ctx.startedConversations.has(conversation.id)) return null;
        const signer = isPublishable(ctx) ? ctx.product : await currentSigner(ctx, ctx.product.id);
        return issueConversationToken(signer, conversation.id, ctx.deps.config.conversationTokenTtlMs);
      },
    }),
    sessionId: t.exposeString('sessionId', { description: 'Chosen by the widget, e.g. one per browser session.' }),
    title: t.exposeString('title', { nullable: true }),
    messageCount: t.exposeInt('messageCount'),
    lastMessageAt: t.expose('lastMessageAt', { type: 'DateTime' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    lastMessage: t.relation('lastMessage', { nullable: true }),
    // A connection of its own rather than t.relatedConnection, which pages with Prisma's `cursor` and so
    // reads a cursor page apart from its conversation (see listConversations). `select` hands the page's
    // query to plugin-prisma, which reads it in the statement of the conversation(s) it belongs to.
    messages: t.connection({
      type: Message,
      description: 'Oldest to newest; page forwards with first/after, backwards with last/before.',
      select: (args, _ctx, nestedSelection) => {
        refuseMixedDirections(args);
        // plugin-prisma's nestedSelection takes where the nodes are (its relatedConnection passes the same) though
        // its type names only a plain path.
        const nested = nestedSelection(messagePageQuery(args), MESSAGE_NODES as never) as { select?: object };
        // Each row's place makes its cursor.
        return { messages: nested.select ? { ...nested, select: { ...nested.select, id: true, createdAt: true } } : nested };
      },
      resolve: (conversation, args) => {
        const place = cursorPlace(args);
        // A cursor issued for another conversation's messages gives an empty page, as a missing row's does.
        const elsewhere = place !== undefined && 'at' in place && place.owner !== conversation.id;
        const rows = elsewhere ? [] : (conversation.messages as MessageRow[]);
        return keysetConnection(args, (m: MessageRow) => placeCursor(m.createdAt, m.id, conversation.id), rows);
      },
    }),
  }),
});

const StartConversationInput = builder.inputType('StartConversationInput', {
  fields: (t) => ({ sessionId: t.string({ required: true }), title: t.string(), idempotencyKey: t.string({ description: IDEMPOTENCY_KEY }) }),
});

builder.queryFields((t) => ({
  conversation: t.withAuth(conversationArgScopes('id')).prismaField({
    type: 'Conversation',
    nullable: true,
    args: { id: t.arg.globalID({ for: Conversation, required: true }) },
    skipTypeScopes: true,
    resolve: (query, _root, { id }, ctx) =>
      ctx.prisma.conversation.findFirst({ ...query, relationLoadStrategy: 'join', where: { id: id.id, productId: ctx.product.id } }),
  }),
  // A connection of its own rather than t.prismaConnection: plugin-prisma pages with Prisma's `cursor`, which
  // reads the messages, feedback and lastMessage of a cursor page in separate statements (see listConversations).
  conversations: t.withAuth({ product: true }).connection({
    type: Conversation,
    description: "The calling product's conversations, most recent activity first.",
    args: { sessionId: t.arg.string() },
    resolve: async (_root, args, ctx, info) => {
      const productId = ctx.product.id;
      refuseMixedDirections(args);
      const place = cursorPlace(args);
      const from = place && 'at' in place ? (place.owner === productId ? { lastMessageAt: place.at, id: place.id } : 'elsewhere') : place;
      const query = await queryFromInfo({
        context: ctx,
        info,
        typeName: 'Conversation',
        select: { id: true, lastMessageAt: true },
        paths: [['nodes'], ['edges', 'node']],
        awaitSelections: true,
      });
      const { take, backwards } = pageSize(args);
      const rows =
        from === 'elsewhere'
          ? []
          : listConversations(ctx, productId, { sessionId: args.sessionId, page: { take, towardsNewer: backwards, from } }, query);
      return keysetConnection(args, (row: ConversationRow) => placeCursor(row.lastMessageAt, row.id, productId), rows);
    },
  }),
}));

builder.mutationField('startConversation', (t) =>
  // Open to either kind of key (the publishable one too).
  t.withAuth({ product: true }).prismaField({
    type: 'Conversation',
    description: 'Open to the publishable key: its conversationToken then opens this conversation to it.',
    args: { input: t.arg({ type: StartConversationInput, required: true }) },
    skipTypeScopes: true,
    resolve: async (query, _root, { input }, ctx) => {
      const conversation = await startConversation(ctx, ctx.product.id, isPublishable(ctx) ? publishableIdempotencyKey(input) : input, query);
      ctx.startedConversations.add(conversation.id);
      return conversation;
    },
  }),
);
