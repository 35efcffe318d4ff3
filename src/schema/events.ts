import { encodeGlobalID } from '@pothos/plugin-relay';
import { builder } from '../builder.js';
import { NotFoundError } from '../errors.js';
import {
  conversationEvents,
  onlyEvents,
  productFeedbackEvents,
  type ConversationEvent as Event,
  type FeedbackAddedEvent,
  type MessageAddedEvent,
  type ReplyDeltaEvent,
  type TypingChangedEvent,
} from '../services/events.js';
import { setUserTyping } from '../services/typing.js';
import { Conversation } from './conversation.js';
import { conversationArgScopes, parseGlobalId } from './ids.js';
import { cursorPlace, placeCursor } from './pages.js';
import { MessageRole } from './message.js';

// Events carry ids; each delivery reads the rows through that event's own loaders.
async function found<T>(row: Promise<T | null>, what: string): Promise<T> {
  const value = await row;
  if (value === null) throw new NotFoundError(what);
  return value;
}

const MessageAdded = builder.objectRef<MessageAddedEvent>('MessageAdded').implement({
  description: 'A message was stored (or is replayed: after the `after` cursor, or after a pub/sub outage).',
  fields: (t) => ({
    message: t.prismaField({ type: 'Message', resolve: (query, e, _a, ctx) => found(ctx.loaders.message(query, e.messageId), 'Message') }),
    cursor: t.string({
      description: 'The message’s cursor in `Conversation.messages`: the `after` to resume from it.',
      // From the event itself; an event of a node that did not send its place yet costs a look-up.
      resolve: async (e, _a, ctx) => {
        if (e.at) return placeCursor(e.at, e.messageId, e.conversationId);
        const row = await found(ctx.loaders.message({ select: { createdAt: true, conversationId: true } }, e.messageId), 'Message');
        return placeCursor(row.createdAt, e.messageId, row.conversationId);
      },
    }),
  }),
});

const ReplyDelta = builder.objectRef<ReplyDeltaEvent>('ReplyDelta').implement({
  description: 'A piece of an assistant reply while it is produced; MessageAdded follows once it is stored.',
  fields: (t) => ({
    messageId: t.id({ description: 'The id the reply is stored under.', resolve: (e) => encodeGlobalID('Message', e.messageId) }),
    delta: t.exposeString('delta', { description: 'Text to append to what came before.' }),
    done: t.exposeBoolean('done', { description: 'True on the last piece.' }),
  }),
});

const TypingChanged = builder.objectRef<TypingChangedEvent>('TypingChanged').implement({
  description: 'Someone started or stopped typing (ephemeral, never stored).',
  fields: (t) => ({
    conversationId: t.id({ resolve: (e) => encodeGlobalID('Conversation', e.conversationId) }),
    role: t.expose('role', { type: MessageRole }),
    isTyping: t.exposeBoolean('isTyping'),
  }),
});

const FeedbackAdded = builder.objectRef<FeedbackAddedEvent>('FeedbackAdded').implement({
  description: 'A reply was rated (or rated again).',
  fields: (t) => ({
    feedback: t.prismaField({ type: 'Feedback', resolve: (query, e, _a, ctx) => found(ctx.loaders.feedback(query, e.feedbackId), 'Feedback') }),
  }),
});

const ConversationEvent = builder.unionType('ConversationEvent', {
  types: [MessageAdded, ReplyDelta, TypingChanged, FeedbackAdded],
  resolveType: (event) =>
    ({ messageAdded: MessageAdded, replyDelta: ReplyDelta, typingChanged: TypingChanged, feedbackAdded: FeedbackAdded })[event.type],
});

const ConversationEventKind = builder.enumType('ConversationEventKind', {
  description: 'The kinds of ConversationEvent, for `conversationEvents(only:)`.',
  values: {
    MESSAGE_ADDED: { value: 'messageAdded' },
    REPLY_DELTA: { value: 'replyDelta' },
    TYPING_CHANGED: { value: 'typingChanged' },
    FEEDBACK_ADDED: { value: 'feedbackAdded' },
  } as const,
});

builder.subscriptionFields((t) => ({
  conversationEvents: t.withAuth(conversationArgScopes('conversationId')).field({
    type: ConversationEvent,
    description:
      'Live events of one conversation. With `after` (a cursor of `Conversation.messages`, or `MessageAdded.cursor`), ' +
      'every message stored after it is delivered first, then live events: no gap, no duplicate. After a pub/sub ' +
      'outage the messages and ratings stored meanwhile come, in order and once, before further live events; ' +
      'typing and reply pieces of that time are lost.',
    args: {
      // Not t.arg.globalID: plugin-relay would decode it again for every event delivered (a typing event's execution: 8 → 15 µs).
      conversationId: t.arg.id({ required: true }),
      after: t.arg.string(),
      only: t.arg({
        type: [ConversationEventKind],
        description: 'Deliver only events of these kinds (replayed ones too); every kind when omitted.',
      }),
    },
    skipTypeScopes: true,
    subscribe: async (_root, args, ctx) => {
      const product = ctx.product;
      const conversationId = parseGlobalId(String(args.conversationId), ['Conversation'], 'conversationId');
      const sources = { prisma: ctx.prisma, pubsub: ctx.deps.pubsub, replays: ctx.deps.replays };
      // The replay looks the cursor's row up among this conversation's messages, whichever format the cursor has.
      const events = await conversationEvents(sources, product.id, conversationId, cursorPlace({ after: args.after })?.id);
      return args.only ? onlyEvents(events, new Set<Event['type']>(args.only)) : events;
    },
    resolve: (event) => event,
  }),
  productFeedback: t.withAuth({ product: true }).prismaField({
    type: 'Feedback',
    description: "Every feedback on the calling product's replies, for dashboards; after a pub/sub outage, what was rated meanwhile comes first.",
    subscribe: (_root, _args, ctx) =>
      productFeedbackEvents({ prisma: ctx.prisma, pubsub: ctx.deps.pubsub, replays: ctx.deps.replays }, ctx.product.id),
    resolve: (query, event, _args, ctx) => found(ctx.loaders.feedback(query, (event as FeedbackAddedEvent).feedbackId), 'Feedback'),
  }),
}));

const SetTypingInput = builder.inputType('SetTypingInput', {
  fields: (t) => ({ conversationId: t.globalID({ for: Conversation, required: true }), isTyping: t.boolean({ required: true }) }),
});

builder.mutationField('setTyping', (t) =>
  t.withAuth(conversationArgScopes('input.conversationId')).boolean({
    description:
      "The widget's user is (not) typing: broadcast to the conversation's subscribers when it changes, never stored. " +
      'Send true again within PARLEY_TYPING_TTL_MS to keep it; without a refresh it ends by itself. ' +
      'False when live events are unavailable (Redis unreachable).',
    args: { input: t.arg({ type: SetTypingInput, required: true }) },
    skipTypeScopes: true,
    resolve: (_root, { input }, ctx) => setUserTyping(ctx.prisma, ctx.deps.typing, ctx.product.id, input.conversationId.id, input.isTyping),
  }),
);
