import { encodeGlobalID } from '@pothos/plugin-relay';
import type { PrismaClient } from '../../src/infra/db.js';
import { insertMessage } from '../../src/services/messages.js';

export const gid = (type: string, id: string) => encodeGlobalID(type, id);

export interface SeededConversation {
  id: string;
  messageIds: string[];
}

/**
 * Conversations with alternating USER/ASSISTANT messages, written through the
 * same service as the API (so counters and lastMessage are right); every
 * `feedbackEvery`-th assistant reply gets a rating.
 */
export async function seedConversations(
  prisma: PrismaClient,
  productId: string,
  { conversations = 3, messages = 4, feedbackEvery = 2, sessionId = 'session-1' } = {},
): Promise<SeededConversation[]> {
  const out: SeededConversation[] = [];
  for (let c = 0; c < conversations; c++) {
    const conversation = await prisma.conversation.create({
      data: { productId, sessionId, title: `Conversation ${c}` },
    });
    const messageIds: string[] = [];
    let replies = 0;
    for (let m = 0; m < messages; m++) {
      const role = m % 2 === 0 ? 'USER' : 'ASSISTANT';
      const message = await insertMessage(prisma, productId, conversation.id, {
        role,
        content: `${role === 'USER' ? 'Question' : 'Answer'} ${m} of conversation ${c}`,
      });
      messageIds.push(message.id);
      if (role === 'ASSISTANT' && feedbackEvery > 0 && replies++ % feedbackEvery === 0) {
        await prisma.feedback.create({
          data: { messageId: message.id, conversationId: conversation.id, productId, rating: m % 4 === 1 ? 'UP' : 'DOWN' },
        });
      }
    }
    out.push({ id: conversation.id, messageIds });
  }
  return out;
}
