import { builder } from '../builder.js';
import { nodeId } from './exposed-columns.js';
import { requireAdmin, requireProduct } from '../services/auth.js';
import { conversationOrder, sessionFilter } from '../services/conversations.js';
import { createProduct, readViewer, rotateProductKey, type ProductStats as Stats } from '../services/products.js';
import { AnswerStats } from './answers.js';
import { cursorUuid, nodeUuid, parseGlobalId } from './ids.js';

const NO_ROW = '00000000-0000-0000-0000-000000000000';

/**
 * Keeps rows only when the page's cursor row is one of the same product's:
 * another product's row would position the page (an existence and ordering
 * oracle) where a missing row gives an empty page. See cursorUuid.
 */
function ownCursor<W>(args: object, owned: (id: string) => W): W | Record<string, never> {
  const id = cursorUuid(args);
  return id === undefined ? {} : owned(id);
}

export const ProductStats = builder.objectRef<Stats>('ProductStats');

ProductStats.implement({
  fields: (t) => ({
    conversationCount: t.exposeInt('conversationCount'),
    messageCount: t.exposeInt('messageCount'),
    feedbackUp: t.exposeInt('feedbackUp'),
    feedbackDown: t.exposeInt('feedbackDown'),
    answers: t.field({ type: AnswerStats, resolve: (stats, _args, ctx) => ctx.loaders.productAnswerStats.load(stats.productId) }),
  }),
});

export const Product = builder.prismaNode('Product', {
  id: nodeId('id'),
  select: { id: true },
  nullable: true,
  // A product sees only itself; the admin sees every product; no credentials at all is UNAUTHENTICATED,
  // as for every other node type. The uuid is checked first, for the admin too (else Prisma fails on it).
  findUnique: (id, ctx) => {
    const uuid = nodeUuid(id, 'Product').toLowerCase();
    return { id: ctx.isAdmin || requireProduct(ctx).id === uuid ? uuid : NO_ROW };
  },
  fields: (t) => ({
    name: t.exposeString('name'),
    keyPrefix: t.exposeString('keyPrefix', { description: 'The first characters of the key, to tell keys apart.' }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    metadata: t.expose('metadata', { type: 'JSON', description: 'Free-form settings of the product.' }),
    knowledge: t.relatedConnection('knowledge', {
      cursor: 'id',
      query: (args) => ({
        where: ownCursor(args, (id) => ({ product: { knowledge: { some: { id } } } })),
        orderBy: [{ updatedAt: 'desc' }, { id: 'desc' }],
      }),
    }),
    conversations: t.relatedConnection('conversations', {
      cursor: 'id',
      args: { sessionId: t.arg.string() },
      query: (args) => ({
        where: {
          AND: [
            sessionFilter(args.sessionId),
            ownCursor(args, (id) => ({ product: { conversations: { some: { id } } } })),
          ],
        },
        orderBy: conversationOrder,
      }),
    }),
    stats: t.field({
      type: ProductStats,
      description: 'Counts for dashboards, computed in one aggregate statement (batched across products).',
      resolve: (product, _args, ctx) => ctx.loaders.productStats.load(product.id),
    }),
  }),
});

const ProductKeyPayload = builder.objectRef<{ key: string; productId: string }>('ProductKeyPayload').implement({
  description: 'The key is shown once: only its hash is stored.',
  fields: (t) => ({
    key: t.exposeString('key'),
    product: t.prismaField({
      type: 'Product',
      resolve: (query, payload, _args, ctx) =>
        ctx.prisma.product.findUniqueOrThrow({ ...query, where: { id: payload.productId } }),
    }),
  }),
});

builder.queryFields((t) => ({
  viewer: t.prismaField({
    type: 'Product',
    description: 'The product whose key authenticates the request.',
    resolve: (query, _root, _args, ctx) =>
      readViewer(ctx, requireProduct(ctx).id, query),
  }),
  products: t.prismaConnection({
    type: 'Product',
    cursor: 'id',
    description: 'Admin: every product, oldest first.',
    resolve: (query, _root, _args, ctx) => {
      requireAdmin(ctx);
      return ctx.prisma.product.findMany({ ...query, relationLoadStrategy: 'join', orderBy: { id: 'asc' } });
    },
  }),
}));

const CreateProductInput = builder.inputType('CreateProductInput', {
  fields: (t) => ({ name: t.string({ required: true }) }),
});

builder.mutationFields((t) => ({
  createProduct: t.field({
    type: ProductKeyPayload,
    description: 'Admin: creates a product and returns its key (shown once).',
    args: { input: t.arg({ type: CreateProductInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      requireAdmin(ctx);
      const { product, key } = await createProduct(ctx.prisma, input);
      return { key, productId: product.id };
    },
  }),
  rotateProductKey: t.field({
    type: ProductKeyPayload,
    description: 'Admin: issues a new key; the old one stops working at once.',
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      requireAdmin(ctx);
      const { product, key } = await rotateProductKey(ctx, parseGlobalId(String(args.id), 'Product', 'id'));
      return { key, productId: product.id };
    },
  }),
}));
