import { encodeGlobalID } from '@pothos/plugin-relay';
import { builder } from '../builder.js';
import { nodeId } from './exposed-columns.js';
import { isPublishable, requireProduct } from '../services/auth.js';
import {
  addKnowledge,
  addKnowledgeBatch,
  deleteKnowledge,
  searchKnowledge,
  updateKnowledge,
  type KnowledgeHit as Hit,
} from '../services/knowledge.js';
import { nodeUuid } from './ids.js';

const NO_ROW = '00000000-0000-0000-0000-000000000000';

export const KnowledgeEntry = builder.prismaNode('KnowledgeEntry', {
  id: nodeId('id'),
  select: { id: true },
  nullable: true,
  // A publishable key reads entries only as the sources of its conversation's replies (or hits, if the product allows): never by id.
  findUnique: (id, ctx) => ({ id: isPublishable(ctx) ? NO_ROW : nodeUuid(id, 'KnowledgeEntry'), productId: requireProduct(ctx).id }),
  fields: (t) => ({
    title: t.exposeString('title'),
    content: t.exposeString('content'),
    tags: t.exposeStringList('tags'),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    updatedAt: t.expose('updatedAt', { type: 'DateTime' }),
  }),
});

const KnowledgeHit = builder.objectRef<Hit>('KnowledgeHit').implement({
  fields: (t) => ({
    // The ranking statement returned whole rows: they answer any scalar selection as they are.
    // (A plain t.field would leave Pothos without a record of what the row holds, and it would
    // read every hit's entry again, by id, on each request — cached hits included.)
    entry: t.prismaField({
      type: 'KnowledgeEntry',
      resolve: (query, hit, _args, ctx) =>
        rowAnswers(hit.entry, query)
          ? hit.entry
          : ctx.prisma.knowledgeEntry.findUniqueOrThrow({ ...query, where: { id: hit.entry.id, productId: hit.entry.productId } }),
    }),
    score: t.exposeFloat('score', { description: 'PostgreSQL ts_rank of the entry for the query; higher is better.' }),
  }),
});

const KnowledgeInput = builder.inputType('KnowledgeInput', {
  fields: (t) => ({
    title: t.string({ required: true }),
    content: t.string({ required: true }),
    tags: t.stringList(),
  }),
});

const UpdateKnowledgeInput = builder.inputType('UpdateKnowledgeInput', {
  fields: (t) => ({
    id: t.globalID({ for: KnowledgeEntry, required: true }),
    title: t.string(),
    content: t.string(),
    tags: t.stringList(),
  }),
});

const AddKnowledgeBatchInput = builder.inputType('AddKnowledgeBatchInput', {
  fields: (t) => ({ entries: t.field({ type: [KnowledgeInput], required: true }) }),
});

builder.queryField('searchKnowledge', (t) =>
  // Open to the publishable key only where the admin set publishableSearch on the product.
  t.withAuth({ $all: { product: true, $any: { fullAccess: true, publishableSearch: true } } }).field({
    type: [KnowledgeHit],
    description: "Full-text search over the calling product's knowledge, best match first.",
    args: { query: t.arg.string({ required: true }), first: t.arg.int({ defaultValue: 5 }) },
    skipTypeScopes: true,
    resolve: (_root, args, ctx) => searchKnowledge(ctx, ctx.deps.knowledgeSearch, ctx.product.id, args),
  }),
);

builder.mutationFields((t) => ({
  addKnowledge: t.withAuth({ product: true }).prismaField({
    type: 'KnowledgeEntry',
    args: { input: t.arg({ type: KnowledgeInput, required: true }) },
    resolve: (query, _root, { input }, ctx) => addKnowledge(ctx, ctx.product.id, input, query),
  }),
  addKnowledgeBatch: t.withAuth({ product: true }).field({
    type: [KnowledgeEntry],
    description: 'Adds up to 100 entries in one transaction: all or none.',
    args: { input: t.arg({ type: AddKnowledgeBatchInput, required: true }) },
    resolve: (_root, { input }, ctx) => addKnowledgeBatch(ctx, ctx.product.id, input),
  }),
  updateKnowledge: t.withAuth({ product: true }).field({
    type: KnowledgeEntry,
    nullable: false,
    args: { input: t.arg({ type: UpdateKnowledgeInput, required: true }) },
    resolve: (_root, { input }, ctx) => updateKnowledge(ctx, ctx.product.id, input.id.id, { ...input, id: undefined }),
  }),
  deleteKnowledge: t.withAuth({ product: true }).id({
    description: 'Deletes an entry and returns its id.',
    args: { id: t.arg.globalID({ for: KnowledgeEntry, required: true }) },
    resolve: async (_root, { id }, ctx) => {
      await deleteKnowledge(ctx, ctx.product.id, id.id);
      return encodeGlobalID(id.typename, id.id);
    },
  }),
}));

/** True when `row` already holds every field a Pothos query selects (scalars only; relations need a read). */
function rowAnswers(row: object, query: { select?: Record<string, unknown>; include?: Record<string, unknown> }): boolean {
  if (query.include && Object.keys(query.include).length) return false;
  if (!query.select) return false;
  return Object.entries(query.select).every(([field, selected]) => selected === true && field in row);
}
