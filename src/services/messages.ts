import { z } from 'zod';
import { NotFoundError } from '../errors.js';
import type { PrismaClient } from '../infra/db.js';
import type { Message, MessageRole } from '../generated/prisma/client.js';
import { tags, type Store } from './store.js';
import { uuidv7 } from './ids.js';
import { claimedBy, claimKeyCte, idempotencyKey, requestHash, type KeyRequest } from './idempotency.js';
import { limits, parseInput, text } from './validation.js';

const sendInput = z.object({ content: text(limits.messageContent), idempotencyKey });

export interface NewMessage {
  /** Set when the id was announced before the message was stored (ReplyDelta events of a streamed reply). */
  id?: string;
  role: MessageRole;
  content: string;
  /** The answer engine that wrote an ASSISTANT reply (`local`, `openai`). */
  engine?: string | null;
  model?: string | null;
  latencyMs?: number | null;
  cached?: boolean | null;
  sourceIds?: string[];
}

/** A USER message's idempotency key, and the id its reply will be stored under. */
export interface MessageClaim extends KeyRequest {
  replyId: string;
}

/**
 * Appends a message and announces it: cached reads of the conversation (and the
 * product's list and stats) are invalidated and MessageAdded is published, both
 * after the write has committed. `pending`: messages stored earlier in the same
 * conversation and not announced yet, announced first in the same round trip
 * (see deferAnnouncement).
 */
export async function appendMessage(
  store: Store,
  productId: string,
  conversationId: string,
  message: NewMessage,
  pending?: PendingAnnouncement,
): Promise<Message> {
  const row = await insertMessage(store.prisma, productId, conversationId, message);
  await announceMessages(store, productId, conversationId, [...(pending?.take() ?? []), row]);
  return row;
}

/** Bumps the conversation's tags and publishes MessageAdded for `rows`, in order — with Redis in the bump's one MULTI. */
async function announceMessages(store: Store, productId: string, conversationId: string, rows: Message[]): Promise<void> {
  if (!rows.length) return;
  const { cache, events } = store;
  const wire = rows.map((row) => events.wire.messageAdded(conversationId, row));
  const all = wire.every((event) => event !== undefined);
  const announced = await cache.invalidate([tags.conversations(productId), tags.conversation(productId, conversationId)], all ? wire : []);
  if (!announced) for (const row of rows) await events.messageAdded(conversationId, row);
}

/**
 * A stored message whose announcement waits for the next message of its
 * conversation: a question answered within moments is announced with its reply
 * in one round trip instead of two. `flush()` announces it on its own (when the
 * reply is slow or failed); `take()` hands it to the reply's announcement.
 * Whoever holds one must flush it in the end: until then other readers of the
 * conversation see the cached state from before it.
 */
export interface PendingAnnouncement {
  take(): Message[];
  flush(): Promise<void>;
}

export function deferAnnouncement(store: Store, productId: string, conversationId: string, row: Message | undefined): PendingAnnouncement {
  let rows = row ? [row] : [];
  let flushed: Promise<void> | undefined;
  const take = () => {
    const taken = rows;
    rows = [];
    return taken;
  };
  return {
    take,
    flush: () => (flushed ??= announceMessages(store, productId, conversationId, take())),
  };
}

/**
 * The write alone, in one statement: the conversation row is locked by the
 * UPDATE, its counters and last-message pointer move, and the message is
 * inserted with a createdAt strictly after the previous one, so message order
 * (and cursors built on it) never ties inside a conversation. Announces
 * nothing: for seeding inside a transaction, before anything is cached.
 */
export async function insertMessage(prisma: PrismaClient, productId: string, conversationId: string, message: NewMessage): Promise<Message> {
  const [row] = (await writeMessages(prisma, productId, conversationId, [message])) ?? [];
  if (!row) throw new NotFoundError('Conversation');
  return row;
}

/**
 * The statement of insertMessage and appendExchange: one message, or several
 * of one conversation in their order (1 ms apart). With a claim, the key is
 * claimed in it too (only for a conversation of this product, so a refused
 * write leaves no claim; its result is the first message) and nothing is
 * written when the key is taken: undefined then, as for a conversation that
 * is not there.
 */
async function writeMessages(
  prisma: PrismaClient,
  productId: string,
  conversationId: string,
  messages: readonly NewMessage[],
  claim?: MessageClaim,
): Promise<Message[] | undefined> {
  const ids = messages.map((m) => m.id ?? uuidv7());
  const last = messages.length - 1;
  const PER = 8;
  const at = (i: number, n: number) => `$${3 + i * PER + n}`;
  const params = messages.flatMap((m, i) => [
    ids[i]!,
    m.role,
    m.content,
    m.model ?? null,
    m.latencyMs ?? null,
    m.cached ?? null,
    m.sourceIds ?? [],
    m.engine ?? null,
  ]);
  const k = 3 + messages.length * PER;
  const claimed = claim
    ? `${claimKeyCte(
        { productId: 2, resultId: 3, key: k, operation: k + 1, hash: k + 2, replyId: k + 3 },
        `EXISTS (SELECT 1 FROM "Conversation" WHERE id = $1::uuid AND "productId" = $2::uuid)`,
      )},`
    : '';
  const rows = await prisma.$queryRawUnsafe<Message[]>(
    `WITH ${claimed} c AS (
       UPDATE "Conversation"
          SET "messageCount" = "messageCount" + ${messages.length},
              "lastMessageAt" = GREATEST(now(), "lastMessageAt" + interval '1 millisecond')${last ? ` + interval '${last} milliseconds'` : ''},
              "lastMessageId" = ${at(last, 0)}::uuid
        WHERE id = $1::uuid AND "productId" = $2::uuid${claim ? ' AND EXISTS (SELECT 1 FROM k)' : ''}
        RETURNING id, "lastMessageAt")
     INSERT INTO "Message" (id, "conversationId", role, content, "createdAt", engine, model, "latencyMs", cached, "sourceIds")
     ${messages
       .map(
         (_, i) =>
           `SELECT ${at(i, 0)}::uuid, c.id, ${at(i, 1)}::"MessageRole", ${at(i, 2)}, c."lastMessageAt"${i < last ? ` - interval '${last - i} milliseconds'` : ''}, ` +
           `${at(i, 7)}, ${at(i, 3)}, ${at(i, 4)}::integer, ${at(i, 5)}::boolean, ${at(i, 6)}::uuid[] FROM c`,
       )
       .join(' UNION ALL ')}
     RETURNING id::text AS id, "conversationId"::text AS "conversationId", role::text AS role, content, "createdAt",
               engine, model, "latencyMs", cached, "sourceIds"::text[] AS "sourceIds"`,
    conversationId,
    productId,
    ...params,
    ...(claim ? [claim.key, claim.operation, claim.requestHash, claim.replyId] : []),
  );
  if (rows.length !== messages.length) return undefined;
  // RETURNING promises no order: the messages' own.
  return ids.map((id) => rows.find((row) => row.id === id)!);
}

/**
 * A question and its reply, stored in one statement and announced in one round
 * trip: for an answer known before the question is stored (the local engine's).
 * With a claim (the question's idempotency key), undefined when the key was
 * taken or the conversation is not this product's: nothing was written.
 */
export async function appendExchange(
  store: Store,
  productId: string,
  conversationId: string,
  question: NewMessage,
  reply: NewMessage,
  claim?: MessageClaim,
): Promise<{ message: Message; reply: Message } | undefined> {
  const rows = await writeMessages(store.prisma, productId, conversationId, [question, reply], claim);
  if (!rows) return undefined;
  await announceMessages(store, productId, conversationId, rows);
  return { message: rows[0]!, reply: rows[1]! };
}

export interface SentMessage {
  message: Message;
  /** With an idempotency key: the id the reply is stored under, chosen when the key was first claimed. */
  replyId?: string;
  /** True when an earlier request with the same key stored the message: this one wrote nothing. */
  replayed: boolean;
  /** The message's announcement: made already, unless deferred (then the caller must see it made). */
  announcement: PendingAnnouncement;
}

/** sendMessage's input: the question, and its idempotency key as a claim request (when sent). */
export function parseSend(conversationId: string, input: unknown): { content: string; request: KeyRequest | undefined } {
  const { content, idempotencyKey: key } = parseInput(sendInput, input);
  return {
    content,
    request: key ? { key, operation: 'sendMessage', requestHash: requestHash('sendMessage', conversationId, content) } : undefined,
  };
}

/**
 * Stores a USER message. With `idempotencyKey`, a retry within a day (on any
 * node, or at the same moment) returns the message the first request stored.
 * `defer`: the message is not announced yet (see deferAnnouncement). `taken`:
 * a statement of this request already wrote nothing (the key was taken, or no
 * such conversation): the first request's message is looked up, not written.
 */
export async function sendUserMessage(
  store: Store,
  productId: string,
  conversationId: string,
  input: unknown,
  options: { defer?: boolean; taken?: boolean } = {},
): Promise<SentMessage> {
  const { content, request } = parseSend(conversationId, input);
  const message = { role: 'USER' as const, content };
  const replyId = request ? uuidv7() : undefined;
  const [row] = options.taken
    ? []
    : ((await writeMessages(store.prisma, productId, conversationId, [message], request && { ...request, replyId: replyId! })) ?? []);
  if (row) {
    const announcement = deferAnnouncement(store, productId, conversationId, row);
    if (!options.defer) await announcement.flush();
    return { message: row, ...(replyId ? { replyId } : {}), replayed: false, announcement };
  }
  const claim = request && (await claimedBy(store.prisma, productId, request));
  const first = claim && (await findMessage(store.prisma, productId, claim.resultId));
  if (!first) throw new NotFoundError('Conversation');
  return {
    message: first,
    replyId: claim.replyId ?? undefined,
    replayed: true,
    announcement: deferAnnouncement(store, productId, conversationId, undefined),
  };
}

/** A message of this product by id (the stored reply of an earlier request, for one). */
export function findMessage(prisma: PrismaClient, productId: string, id: string): Promise<Message | null> {
  return prisma.message.findFirst({ where: { id, conversation: { productId } } });
}
