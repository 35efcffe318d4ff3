import { builder } from '../builder.js';
import { nodeId } from './exposed-columns.js';
import { FULL_ACCESS, isPublishable, requireProduct } from '../services/auth.js';
import { conversationOrder, sessionFilter } from '../services/conversations.js';
import { ORIGIN_LIMITS } from '../services/origins.js';
import {
  createProduct,
  readViewer,
  rotateProductKey,
  updateProduct,
  type KeyKind as Kind,
  type ProductStats as Stats,
} from '../services/products.js';
import { AnswerStats } from './answers.js';
import { cursorUuid, nodeUuid } from './ids.js';

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
  authScopes: FULL_ACCESS,
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
  // A publishable key never reads its product (names, key prefixes, stats, every conversation).
  findUnique: (id, ctx) => {
    const uuid = nodeUuid(id, 'Product').toLowerCase();
    return { id: ctx.isAdmin || (requireProduct(ctx).id === uuid && !isPublishable(ctx)) ? uuid : NO_ROW };
  },
  authScopes: FULL_ACCESS,
  fields: (t) => ({
    name: t.exposeString('name'),
    keyPrefix: t.exposeString('keyPrefix', { description: 'The first characters of the secret key, to tell keys apart.' }),
    publishableKeyPrefix: t.exposeString('publishableKeyPrefix', {
      nullable: true,
      description: 'The first characters of the publishable key; null until the admin issues one (rotateProductKey kind: PUBLISHABLE).',
    }),
    publishableSearch: t.exposeBoolean('publishableSearch', { description: 'Whether searchKnowledge is open to the publishable key.' }),
    allowedOrigins: t.exposeStringList('allowedOrigins', {
      description: 'Web pages (origins) whose browsers may use the keys; empty: the publishable key from any origin.',
    }),
    secretKeyInBrowser: t.exposeBoolean('secretKeyInBrowser', {
      description: 'Whether the secret key is accepted from web pages (at the allowed origins); GraphiQL served by Parley always may.',
    }),
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
          AND: [sessionFilter(args.sessionId), ownCursor(args, (id) => ({ product: { conversations: { some: { id } } } }))],
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

export const KeyKind = builder.enumType('KeyKind', {
  values: {
    SECRET: { description: 'For servers and dashboards: all of the product. Keys issued before publishable keys (pk_live_…) are secret keys.' },
    PUBLISHABLE: { description: 'Safe in a web page: starts conversations and, with a conversation token, uses that one conversation.' },
  } as const,
});

const ProductKeyPayload = builder.objectRef<{ key: string; kind: Kind; publishableKey?: string; productId: string }>('ProductKeyPayload').implement({
  description: 'Keys are shown once: only their hashes are stored.',
  fields: (t) => ({
    key: t.exposeString('key', { description: 'The key issued: createProduct, the secret key; rotateProductKey, the key of the kind rotated.' }),
    kind: t.field({ type: KeyKind, resolve: (payload) => payload.kind }),
    publishableKey: t.string({
      nullable: true,
      description: 'createProduct: the publishable key (pk_pub_…), for web pages. Null from rotateProductKey.',
      resolve: (payload) => payload.publishableKey ?? null,
    }),
    product: t.prismaField({
      type: 'Product',
      resolve: (query, payload, _args, ctx) => ctx.prisma.product.findUniqueOrThrow({ ...query, where: { id: payload.productId } }),
    }),
  }),
});

builder.queryFields((t) => ({
  viewer: t.withAuth({ product: true }).prismaField({
    type: 'Product',
    description: 'The product whose key authenticates the request.',
    resolve: (query, _root, _args, ctx) => readViewer(ctx, ctx.product.id, query),
  }),
  products: t.withAuth({ admin: true }).prismaConnection({
    type: 'Product',
    cursor: 'id',
    description: 'Admin: every product, oldest first.',
    resolve: (query, _root, _args, ctx) => ctx.prisma.product.findMany({ ...query, relationLoadStrategy: 'join', orderBy: { id: 'asc' } }),
  }),
}));

const CreateProductInput = builder.inputType('CreateProductInput', {
  fields: (t) => ({ name: t.string({ required: true }) }),
});

const UpdateProductInput = builder.inputType('UpdateProductInput', {
  fields: (t) => ({
    id: t.globalID({ for: Product, required: true }),
    name: t.string(),
    publishableSearch: t.boolean({ description: 'Open searchKnowledge to the publishable key (default false).' }),
    allowedOrigins: t.stringList({
      description: `Replaces the web pages whose browsers may use the keys: origins as scheme://host[:port] (http or https), at most ${ORIGIN_LIMITS.origins}; [] = any origin for the publishable key.`,
    }),
    secretKeyInBrowser: t.boolean({ description: 'Accept the secret key from web pages (at the allowed origins); default false.' }),
  }),
});

builder.mutationFields((t) => ({
  createProduct: t.withAuth({ admin: true }).field({
    type: ProductKeyPayload,
    description: 'Admin: creates a product and returns its secret and publishable keys (shown once).',
    args: { input: t.arg({ type: CreateProductInput, required: true }) },
    resolve: async (_root, { input }, ctx) => {
      const { product, key, publishableKey } = await createProduct(ctx.prisma, input);
      return { key, kind: 'SECRET' as const, publishableKey, productId: product.id };
    },
  }),
  rotateProductKey: t.withAuth({ admin: true }).field({
    type: ProductKeyPayload,
    description:
      'Admin: issues a new key of one kind (default SECRET); the old one stops working at once, and what it opened ' +
      '(sockets, subscriptions) ends. A new publishable key also ends every conversation token issued before.',
    args: { id: t.arg.globalID({ for: Product, required: true }), kind: t.arg({ type: KeyKind, defaultValue: 'SECRET', required: true }) },
    resolve: async (_root, args, ctx) => {
      const { product, key } = await rotateProductKey(ctx, args.id.id, args.kind);
      return { key, kind: args.kind, productId: product.id };
    },
  }),
  updateProduct: t.withAuth({ admin: true }).prismaField({
    type: 'Product',
    description: "Admin: a product's name and settings; a setting left out keeps its value.",
    args: { input: t.arg({ type: UpdateProductInput, required: true }) },
    resolve: async (query, _root, { input }, ctx) => {
      const { id } = input.id;
      await updateProduct(ctx, id, {
        name: input.name ?? undefined,
        publishableSearch: input.publishableSearch ?? undefined,
        allowedOrigins: input.allowedOrigins ?? undefined,
        secretKeyInBrowser: input.secretKeyInBrowser ?? undefined,
      });
      return ctx.prisma.product.findUniqueOrThrow({ ...query, where: { id } });
    },
  }),
}));
