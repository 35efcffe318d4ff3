import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { formatPrismaCursor, parsePrismaCursor } from '@pothos/plugin-prisma';
import { GraphQLError, GraphQLScalarType } from 'graphql';
import { createSchema } from 'graphql-yoga';
import type { PrismaClient } from '../../src/infra/db.js';
import type { Conversation, Message, Product } from '../../src/generated/prisma/client.js';
import { composeLocalAnswer, LOCAL_MODEL } from '../../src/services/answers/local-engine.js';
import { rankKnowledge } from '../../src/services/knowledge.js';

/**
 * The honest "before": Parley's schema (the same schema.graphql) implemented
 * the way most teams start — one Prisma call per field, no DataLoaders, no
 * cache, no dedup, no batching of their own. Prisma's built-in batching of
 * findUnique calls made in the same tick stays on, as every Prisma user gets
 * it. Only what the bench documents use is implemented (connections with
 * first/after and last/before); the answers are the same as Parley's, global
 * ids and cursors included.
 */

export interface BaselineContext {
  prisma: PrismaClient;
  product: Product | null;
}

const typeDefs = readFileSync(new URL('../../schema.graphql', import.meta.url), 'utf8');

const toGlobalId = (type: string, id: string) => Buffer.from(`${type}:${id}`).toString('base64');

function fromGlobalId(globalId: string, type: string): string {
  const [decodedType, id] = Buffer.from(globalId, 'base64').toString('utf8').split(':');
  if (decodedType !== type || !id) throw new GraphQLError(`not a ${type} id`, { extensions: { code: 'BAD_USER_INPUT' } });
  return id;
}

function requireProduct(ctx: BaselineContext): Product {
  if (!ctx.product) throw new GraphQLError('a product key is required', { extensions: { code: 'UNAUTHENTICATED' } });
  return ctx.product;
}

export async function productForRequest(prisma: PrismaClient, request: Request): Promise<Product | null> {
  const key = /^Bearer\s+(\S+)$/i.exec(request.headers.get('authorization') ?? '')?.[1];
  if (!key) return null;
  const product = await prisma.product.findUnique({ where: { keyHash: createHash('sha256').update(key).digest('hex') } });
  if (!product) throw new GraphQLError('invalid product key', { extensions: { code: 'UNAUTHENTICATED', http: { status: 401 } } });
  return product;
}

interface PageArgs {
  first?: number | null;
  after?: string | null;
  last?: number | null;
  before?: string | null;
}

/** The row id of a cursor: the id alone, or the id inside a Parley conversations cursor ([lastMessageAt, id, productId]). */
function cursorRowId(value: unknown): string {
  return String(Array.isArray(value) ? value[1] : value);
}

/**
 * Relay connection over `take: ±(size + 1)` rows from the cursor's row, forwards
 * with first/after, backwards with last/before. Cursors are plugin-prisma's
 * encoding of the row id, as Parley's are, so a cursor works on both servers.
 */
async function connection<T extends { id: string }>(
  args: PageArgs,
  load: (page: { take: number; cursor?: { id: string }; skip?: number }) => Promise<T[]>,
) {
  const backwards = args.last != null || args.before != null;
  const size = Math.min((backwards ? args.last : args.first) ?? 20, 100);
  const raw = backwards ? args.before : args.after;
  const cursor = raw ? cursorRowId(parsePrismaCursor(raw)) : undefined;
  // A negative take reads backwards from the cursor; Prisma still returns the rows in the order asked for.
  const rows = await load({ take: backwards ? -(size + 1) : size + 1, ...(cursor ? { cursor: { id: cursor }, skip: 1 } : {}) });
  const more = rows.length > size;
  const nodes = backwards ? rows.slice(more ? 1 : 0) : rows.slice(0, size);
  const edges = nodes.map((node) => ({ node, cursor: formatPrismaCursor(node, 'id') }));
  return {
    edges,
    nodes,
    pageInfo: {
      hasNextPage: backwards ? Boolean(cursor) : more,
      hasPreviousPage: backwards ? more : Boolean(cursor),
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? null,
    },
  };
}

const globalId = (type: string) => (row: { id: string }) => toGlobalId(type, row.id);

export const baselineSchema = createSchema<BaselineContext>({
  typeDefs,
  resolvers: {
    DateTime: new GraphQLScalarType({
      name: 'DateTime',
      serialize: (value) => (value instanceof Date ? value : new Date(String(value))).toISOString(),
    }),
    JSON: new GraphQLScalarType({ name: 'JSON', serialize: (value) => value }),
    Query: {
      viewer: (_root, _args, ctx) => requireProduct(ctx),
      conversation: (_root, args: { id: string }, ctx) =>
        ctx.prisma.conversation.findFirst({ where: { id: fromGlobalId(args.id, 'Conversation'), productId: requireProduct(ctx).id } }),
      conversations: (_root, args: PageArgs & { sessionId?: string | null }, ctx) =>
        // The cursor's row is found by id alone: like Parley, a cursor of another product would position the page.
        connection(args, (page) =>
          ctx.prisma.conversation.findMany({
            where: { productId: requireProduct(ctx).id, ...(args.sessionId ? { sessionId: args.sessionId } : {}) },
            orderBy: [{ lastMessageAt: 'desc' }, { id: 'desc' }],
            ...page,
          }),
        ),
      searchKnowledge: async (_root, args: { query: string; first: number }, ctx) => {
        const rows = await ctx.prisma.$queryRawUnsafe<
          { id: string; title: string; content: string; tags: string[]; createdAt: Date; updatedAt: Date; score: number }[]
        >(
          `SELECT id::text AS id, title, content, tags, "createdAt", "updatedAt",
                  ts_rank("searchVector", q)::float8 AS score
             FROM "KnowledgeEntry",
                  (SELECT to_tsquery('simple', string_agg(quote_literal(lexeme), ' | ')) AS q
                     FROM unnest(tsvector_to_array(to_tsvector('english', $2))) AS lexeme) AS query
            WHERE "productId" = $1::uuid AND "searchVector" @@ q
            ORDER BY score DESC, "updatedAt" DESC
            LIMIT $3`,
          requireProduct(ctx).id,
          args.query,
          args.first,
        );
        return rows.map(({ score, ...entry }) => ({ score, entry }));
      },
    },
    Mutation: {
      sendMessage: async (_root, { input }: { input: { conversationId: string; content: string } }, ctx) => {
        const product = requireProduct(ctx);
        const conversationId = fromGlobalId(input.conversationId, 'Conversation');
        const conversation = await ctx.prisma.conversation.findFirst({ where: { id: conversationId, productId: product.id } });
        if (!conversation) throw new GraphQLError('Conversation not found', { extensions: { code: 'NOT_FOUND' } });
        const message = await ctx.prisma.message.create({ data: { conversationId, role: 'USER', content: input.content } });
        await ctx.prisma.conversation.update({
          where: { id: conversationId },
          data: { messageCount: { increment: 1 }, lastMessageAt: message.createdAt, lastMessageId: message.id },
        });
        // The reply as a first version would write it: the same ranking and the same local-engine
        // answer as Parley's, but searched for every question (no answer cache, no batching).
        const started = performance.now();
        const answer = composeLocalAnswer(input.content, await rankKnowledge(ctx.prisma, product.id, input.content, 4));
        const reply = await ctx.prisma.message.create({
          data: {
            conversationId,
            role: 'ASSISTANT',
            content: answer.content,
            engine: 'local',
            model: LOCAL_MODEL,
            cached: false,
            latencyMs: Math.round(performance.now() - started),
            sourceIds: answer.sourceIds,
          },
        });
        await ctx.prisma.conversation.update({
          where: { id: conversationId },
          data: { messageCount: { increment: 1 }, lastMessageAt: reply.createdAt, lastMessageId: reply.id },
        });
        return { message, reply };
      },
    },
    Product: {
      id: globalId('Product'),
      stats: (product: Product) => ({ productId: product.id }),
      knowledge: (product: Product, args: PageArgs, ctx) =>
        connection(args, (page) =>
          ctx.prisma.knowledgeEntry.findMany({ where: { productId: product.id }, orderBy: [{ updatedAt: 'desc' }, { id: 'desc' }], ...page }),
        ),
    },
    ProductStats: {
      conversationCount: ({ productId }: { productId: string }, _args, ctx) => ctx.prisma.conversation.count({ where: { productId } }),
      messageCount: async ({ productId }: { productId: string }, _args, ctx) =>
        (await ctx.prisma.conversation.aggregate({ where: { productId }, _sum: { messageCount: true } }))._sum.messageCount ?? 0,
      feedbackUp: ({ productId }: { productId: string }, _args, ctx) => ctx.prisma.feedback.count({ where: { productId, rating: 'UP' } }),
      feedbackDown: ({ productId }: { productId: string }, _args, ctx) => ctx.prisma.feedback.count({ where: { productId, rating: 'DOWN' } }),
    },
    KnowledgeEntry: { id: globalId('KnowledgeEntry') },
    Conversation: {
      id: globalId('Conversation'),
      messages: (conversation: Conversation, args: PageArgs, ctx) =>
        connection(args, (page) =>
          ctx.prisma.message.findMany({ where: { conversationId: conversation.id }, orderBy: [{ createdAt: 'asc' }, { id: 'asc' }], ...page }),
        ),
      lastMessage: (conversation: Conversation, _args, ctx) =>
        conversation.lastMessageId ? ctx.prisma.message.findUnique({ where: { id: conversation.lastMessageId } }) : null,
    },
    Message: {
      id: globalId('Message'),
      feedback: (message: Message, _args, ctx) => ctx.prisma.feedback.findUnique({ where: { messageId: message.id } }),
      conversation: (message: Message, _args, ctx) => ctx.prisma.conversation.findUnique({ where: { id: message.conversationId } }),
    },
    Feedback: { id: globalId('Feedback') },
  },
});
