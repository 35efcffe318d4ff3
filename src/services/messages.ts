import { z } from 'zod';
import { NotFoundError } from '../errors.js';
import type { PrismaClient } from '../infra/db.js';
import type { Message, MessageRole, Prisma } from '../generated/prisma/client.js';
import { tags, type Store } from './store.js';
import { uuidv7 } from './ids.js';
import { limits, parseInput, text } from './validation.js';

/** Oldest to newest; the id breaks ties so cursors are stable. */
export const messageOrder: Prisma.MessageOrderByWithRelationInput[] = [{ createdAt: 'asc' }, { id: 'asc' }];

const sendInput = z.object({ content: text(limits.messageContent) });

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

/**
 * Appends a message and announces it: cached reads of the conversation (and the
 * product's list and stats) are invalidated and MessageAdded is published, both
 * after the write has committed.
 */
export async function appendMessage(
  { prisma, cache, events }: Store,
  productId: string,
  conversationId: string,
  message: NewMessage,
): Promise<Message> {
  const row = await insertMessage(prisma, productId, conversationId, message);
  const event = events.wire.messageAdded(conversationId, row);
  // With Redis the event goes in the bump's MULTI: one round trip for both.
  const announced = await cache.invalidate([tags.conversations(productId), tags.conversation(conversationId)], event ? [event] : []);
  if (!announced) await events.messageAdded(conversationId, row);
  return row;
}

/**
 * The write alone, in one statement: the conversation row is locked by the
 * UPDATE, its counters and last-message pointer move, and the message is
 * inserted with a createdAt strictly after the previous one, so message order
 * (and cursors built on it) never ties inside a conversation. Announces
 * nothing: for seeding inside a transaction, before anything is cached.
 */
export async function insertMessage(
  prisma: PrismaClient,
  productId: string,
  conversationId: string,
  message: NewMessage,
): Promise<Message> {
  const id = message.id ?? uuidv7();
  const rows = await prisma.$queryRawUnsafe<Message[]>(
    `WITH c AS (
       UPDATE "Conversation"
          SET "messageCount" = "messageCount" + 1,
              "lastMessageAt" = GREATEST(now(), "lastMessageAt" + interval '1 millisecond'),
              "lastMessageId" = $3::uuid
        WHERE id = $1::uuid AND "productId" = $2::uuid
        RETURNING id, "lastMessageAt")
     INSERT INTO "Message" (id, "conversationId", role, content, "createdAt", engine, model, "latencyMs", cached, "sourceIds")
     SELECT $3::uuid, c.id, $4::"MessageRole", $5, c."lastMessageAt", $10, $6, $7, $8, $9::uuid[] FROM c
     RETURNING id::text AS id, "conversationId"::text AS "conversationId", role::text AS role, content, "createdAt",
               engine, model, "latencyMs", cached, "sourceIds"::text[] AS "sourceIds"`,
    conversationId,
    productId,
    id,
    message.role,
    message.content,
    message.model ?? null,
    message.latencyMs ?? null,
    message.cached ?? null,
    message.sourceIds ?? [],
    message.engine ?? null,
  );
  const row = rows[0];
  if (!row) throw new NotFoundError('Conversation');
  return row;
}

export function sendUserMessage(store: Store, productId: string, conversationId: string, input: unknown) {
  const { content } = parseInput(sendInput, input);
  return appendMessage(store, productId, conversationId, { role: 'USER', content });
}
