import { cachePolicy } from '../../infra/cache/index.js';
import { tags, type Store } from '../store.js';
import { normalizeQuestion } from './question.js';

/**
 * What an answer knows of the conversation before its question: the recent
 * turns (for the provider's prompt), and whether the question depends on them
 * (a follow-up, for retrieval and the answer cache's key).
 */

/** One earlier message of the conversation, as the prompt carries it. */
export interface Turn {
  id: string;
  role: 'USER' | 'ASSISTANT';
  content: string;
}

/** Messages read back for the context: enough for a token budget of a few hundred tokens. */
const RECENT_MESSAGES = 8;

/** The last messages of a conversation, newest first; dropped by every message written to it. */
const recentPolicy = cachePolicy<{ productId: string; conversationId: string }>({
  name: 'conversationContext',
  ttlMs: 10 * 60_000,
  scope: (a) => a.productId,
  key: (a) => a.conversationId,
  tags: (a) => [tags.conversation(a.productId, a.conversationId)],
});

/**
 * The conversation's turns before the question, oldest first, within `budgetTokens` (≈ 4 characters a
 * token; the newest turns are kept). `questionId`: the question itself when it is stored already.
 * Only the product's own conversation is read: another product's id gives no turns.
 */
export async function recentTurns(
  { prisma, cache }: Store,
  productId: string,
  conversationId: string,
  budgetTokens: number,
  questionId?: string,
): Promise<Turn[]> {
  if (budgetTokens <= 0) return [];
  const recent = await cache.get(recentPolicy, { productId, conversationId }, () =>
    prisma.message.findMany({
      where: { conversationId, conversation: { productId } },
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: RECENT_MESSAGES,
      select: { id: true, role: true, content: true },
    }),
  );
  const turns: Turn[] = [];
  let budget = budgetTokens * 4;
  for (const message of recent) {
    if (message.id === questionId || message.role === 'SYSTEM') continue;
    budget -= message.content.length;
    if (budget < 0) break;
    turns.push({ id: message.id, role: message.role, content: message.content });
  }
  return turns.reverse();
}

/** Opening words that continue the previous question ("and how long does it take?", "what about Canada?"). */
const CONTINUES = /^(and|but|also|so|then|or|plus|what about|how about|what if|same for|in that case)\b/;
/** Words that point back to something said before. ("there" is left out: "is there …" asks afresh.) */
const POINTS_BACK = /\b(it|its|itself|that|this|these|those|they|them|their|theirs|he|she|him|her|his|hers|one|ones|same|such|else|former|latter)\b/;
/** Words that carry no topic of their own. */
const TOPICLESS = new Set(
  'a an and are can could did do does for from how i if in is me my of on or our should the to was we what when where which who why will with would you your much many long often soon about more other'.split(
    ' ',
  ),
);

/**
 * Whether a question depends on the turns before it: it continues the previous one, points back to
 * something said, or names no topic of its own ("why?", "how much?"). Generous on purpose: a
 * standalone question taken for a follow-up only loses answer-cache sharing, while a follow-up taken
 * for a standalone question would be answered (and cached) as if asked alone.
 */
export function isFollowUp(question: string): boolean {
  const normal = normalizeQuestion(question);
  if (CONTINUES.test(normal) || POINTS_BACK.test(normal)) return true;
  return normal.split(' ').filter((word) => !TOPICLESS.has(word)).length < 1;
}

/** The user's question before this one, if the turns hold one: what a follow-up follows. */
export function previousQuestion(turns: readonly Turn[]): string | undefined {
  return turns.findLast((turn) => turn.role === 'USER')?.content;
}

/**
 * What retrieval searches for a follow-up: the user's previous question too ("Do you ship to Canada?"
 * then "and how long does it take?" searches both).
 */
export function followUpRetrieval(question: string, turns: readonly Turn[]): string {
  const previous = previousQuestion(turns);
  return previous ? `${previous}\n${question}` : question;
}

/**
 * A follow-up's passages, those that cover most of what the two questions ask first (then by rank):
 * ts_rank alone lets the previous question's words outweigh the follow-up's — "and how long does it
 * take?" after "Do you ship to Canada?" would find the shipping entry again, not the delivery times.
 */
export function byCoverage<H extends { matched: number; score: number }>(passages: readonly H[]): H[] {
  return [...passages].sort((a, b) => b.matched - a.matched || b.score - a.score);
}
