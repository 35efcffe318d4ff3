import { Rating as RatingValues } from '../generated/prisma/enums.js';
import { builder } from '../builder.js';
import { nodeId } from './exposed-columns.js';
import { conversationScopes, FULL_ACCESS, isPublishable, openConversations, requireProduct } from '../services/auth.js';
import { submitFeedback } from '../services/feedback.js';
import { nodeUuid } from './ids.js';
import { IDEMPOTENCY_KEY, Message } from './message.js';

const NO_ROW = '00000000-0000-0000-0000-000000000000';

export const Rating = builder.enumType(RatingValues, { name: 'Rating' });

export const Feedback = builder.prismaNode('Feedback', {
  id: nodeId('id'),
  select: { id: true, conversationId: true },
  nullable: true,
  findUnique: (id, ctx) => ({
    id: nodeUuid(id, 'Feedback'),
    productId: requireProduct(ctx).id,
    ...(isPublishable(ctx) ? { conversationId: { in: openConversations(ctx) } } : {}),
  }),
  authScopes: (feedback, ctx) => conversationScopes(ctx, feedback.conversationId),
  fields: (t) => ({
    rating: t.expose('rating', { type: Rating }),
    comment: t.exposeString('comment', { nullable: true }),
    createdAt: t.expose('createdAt', { type: 'DateTime' }),
    message: t.relation('message'),
  }),
});

const SubmitFeedbackInput = builder.inputType('SubmitFeedbackInput', {
  fields: (t) => ({
    messageId: t.globalID({ for: Message, required: true }),
    rating: t.field({ type: Rating, required: true }),
    comment: t.string(),
    idempotencyKey: t.string({ description: IDEMPOTENCY_KEY }),
  }),
});

builder.mutationField('submitFeedback', (t) =>
  // A publishable key rates replies of its token's conversation only: another's message is NOT_FOUND, as a missing one.
  t.withAuth({ $all: { product: true, $any: { ...FULL_ACCESS, conversationToken: true } } }).prismaField({
    type: 'Feedback',
    description: 'Rates an assistant reply; rating the same reply again replaces the earlier rating.',
    args: { input: t.arg({ type: SubmitFeedbackInput, required: true }) },
    skipTypeScopes: true,
    resolve: (query, _root, { input }, ctx) =>
      submitFeedback(ctx, ctx.product.id, input.messageId.id, input, query, isPublishable(ctx) ? (ctx.conversationId ?? NO_ROW) : undefined),
  }),
);
