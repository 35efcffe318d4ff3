import { cachePolicy } from '../infra/cache/index.js';
import { tags, type Store } from './store.js';
import type { ConversationPage, ConversationPosition } from './conversations.js';
import type { Database } from '../infra/db.js';

/**
 * A page of a product's conversations with what a query selects beneath them
 * (their messages page with each message's feedback, their last message), read
 * in one SQL statement that returns the tree as JSON, the way PostGraphile reads
 * a nested query. plugins/planned-reads.ts asks for it when a query selects
 * nothing else; it answers the same rows the schema's resolvers read through
 * Prisma (conversations.ts), without Prisma's query planning and row
 * mapping, which were the largest costs of a cursor page after garbage
 * collection (see the closing note of the fast-reads issue).
 */

/** Columns of a message (and of its feedback, when selected) that a query reads. */
export interface MessageColumns {
  columns: readonly MessageColumn[];
  feedback?: readonly FeedbackColumn[] | undefined;
}

export const MESSAGE_COLUMNS = ['id', 'createdAt', 'role', 'content', 'model', 'latencyMs', 'cached'] as const;
export const FEEDBACK_COLUMNS = ['id', 'rating', 'comment', 'createdAt'] as const;
export const CONVERSATION_COLUMNS = ['id', 'lastMessageAt', 'sessionId', 'title', 'messageCount', 'createdAt'] as const;
export type MessageColumn = (typeof MESSAGE_COLUMNS)[number];
export type FeedbackColumn = (typeof FEEDBACK_COLUMNS)[number];
export type ConversationColumn = (typeof CONVERSATION_COLUMNS)[number];

/** What of the tree a query reads: which columns, which relations. */
export interface TreeShape {
  columns: readonly ConversationColumn[];
  lastMessage?: MessageColumns | undefined;
  messages?: (MessageColumns & { page: MessagePage }) | undefined;
}

/** A page of each conversation's messages: from a place by keyset, oldest first unless backwards. */
export interface MessagePage {
  take: number;
  backwards: boolean;
  /** Where the page starts; `owner` is the conversation whose cursor it is (another's gets no rows). */
  from?: { at: Date; id: string; owner: string } | undefined;
}

/**
 * Rows as the statement gives them, relations nested as JSON. Times are ISO
 * strings inside the JSON, and Dates or strings (from the L2 cache) outside it.
 */
export interface FeedbackRow {
  id: string;
  rating?: string;
  comment?: string | null;
  createdAt?: string;
}
export interface MessageRow {
  id: string;
  createdAt: string;
  role?: string;
  content?: string;
  model?: string | null;
  latencyMs?: number | null;
  cached?: boolean | null;
  feedback?: FeedbackRow | null;
}
export interface ConversationRow {
  id: string;
  lastMessageAt: string | Date;
  sessionId?: string;
  title?: string | null;
  messageCount?: number;
  createdAt?: string | Date;
  lastMessage?: MessageRow | null;
  messages?: MessageRow[];
}

/**
 * First pages are kept until the product's conversations (or feedback, when
 * read) change, as conversations.ts keeps the first pages its resolvers read.
 */
const firstPagePolicy = cachePolicy<{ productId: string; sessionId: string | null; shape: TreeShape; page: ConversationPage }>({
  name: 'conversationTreeFirstPage',
  ttlMs: 30_000,
  scope: (a) => a.productId,
  key: (a) => [a.sessionId, a.shape, a.page.take, a.page.towardsNewer],
  tags: (a) => treeTags(a.productId, a.shape),
});

/** The tags a tree of this shape depends on. */
export function treeTags(productId: string, shape: TreeShape): string[] {
  const out = [tags.product(productId), tags.conversations(productId)];
  if (shape.lastMessage?.feedback || shape.messages?.feedback) out.push(tags.feedback(productId));
  return out;
}

/** One conversation of the product by id, with the same shapes beneath it: no row when it is not the product's. */
export function readConversation(db: Database, productId: string, id: string, shape: TreeShape): Promise<ConversationRow[]> {
  const { sql, params } = treeStatement(productId, null, { take: 1, towardsNewer: false }, shape, id);
  return rowsOf(db, sql, params);
}

async function rowsOf(db: Database, sql: string, params: (string | number)[]): Promise<ConversationRow[]> {
  const rows = await db.queryRows<ConversationRow>(sql, params);
  // The driver gives JSON columns as their text.
  for (const row of rows) {
    if (typeof row.messages === 'string') row.messages = JSON.parse(row.messages) as MessageRow[];
    if (typeof row.lastMessage === 'string') row.lastMessage = JSON.parse(row.lastMessage) as MessageRow;
  }
  return rows;
}

export async function readConversationTree(
  { db, cache }: { db: Database; cache: Store['cache'] },
  productId: string,
  sessionId: string | null,
  page: ConversationPage & { from?: ConversationPosition },
  shape: TreeShape,
): Promise<ConversationRow[]> {
  const read = () => {
    const { sql, params } = treeStatement(productId, sessionId, page, shape);
    return rowsOf(db, sql, params);
  };
  if (page.from) return read();
  return cache.get(firstPagePolicy, { productId, sessionId, shape, page }, read);
}

/** The statement and its parameters. Exported for the SQL snapshot test. */
export function treeStatement(
  productId: string,
  sessionId: string | null,
  page: ConversationPage & { from?: ConversationPosition },
  shape: TreeShape,
  /** One conversation by id instead of a page. */
  id?: string,
): { sql: string; params: (string | number)[] } {
  const params: (string | number)[] = [];
  const param = (value: string | number, type: string) => {
    params.push(value);
    return `$${params.length}::${type}`;
  };
  const where = [`c."productId" = ${param(productId, 'uuid')}`];
  if (id !== undefined) where.push(`c.id = ${param(id, 'uuid')}`);
  if (sessionId !== null) where.push(`c."sessionId" = ${param(sessionId, 'text')}`);
  const direction = page.towardsNewer ? 'ASC' : 'DESC';
  if (page.from) {
    // A row comparison reads the (productId, lastMessageAt, id) index from the cursor's place on.
    const at = param(new Date(page.from.lastMessageAt).toISOString(), 'timestamptz');
    where.push(`(c."lastMessageAt", c.id) ${page.towardsNewer ? '>' : '<'} (${at}, ${param(page.from.id, 'uuid')})`);
  }
  const columns = shape.columns.map((column) => `c.${quote(column)}`);
  if (shape.lastMessage) {
    columns.push(
      `(SELECT row_to_json(l) FROM (${messageSelect('lm', shape.lastMessage)} FROM "Message" lm WHERE lm.id = c."lastMessageId") l) AS "lastMessage"`,
    );
  }
  if (shape.messages) {
    const { page: messages } = shape.messages;
    const order = messages.backwards ? 'DESC' : 'ASC';
    const conditions = ['m."conversationId" = c.id'];
    if (messages.from) {
      const at = param(messages.from.at.toISOString(), 'timestamptz');
      conditions.push(`c.id = ${param(messages.from.owner, 'uuid')}`);
      conditions.push(`(m."createdAt", m.id) ${messages.backwards ? '<' : '>'} (${at}, ${param(messages.from.id, 'uuid')})`);
    }
    // Measured with pgbench on a nested cursor page: an aggregate of the conversations themselves (the
    // whole tree as one JSON value, sorted again by the aggregate) cost PostgreSQL more than twice
    // the rows as they are (2.15 vs 1.04 ms); the ORDER BY inside each page's aggregate costs ~0.02 ms.
    columns.push(
      `(SELECT coalesce(json_agg(p ORDER BY p."createdAt" ${order}, p.id ${order}), '[]'::json) FROM (` +
        `${messageSelect('m', shape.messages)} FROM "Message" m WHERE ${conditions.join(' AND ')} ` +
        `ORDER BY m."createdAt" ${order}, m.id ${order} LIMIT ${param(messages.take, 'int')}) p) AS messages`,
    );
  }
  const sql =
    `SELECT ${columns.join(', ')} FROM "Conversation" c WHERE ${where.join(' AND ')} ` +
    `ORDER BY c."lastMessageAt" ${direction}, c.id ${direction} LIMIT ${param(page.take, 'int')}`;
  return { sql, params };
}

function messageSelect(alias: string, { columns, feedback }: MessageColumns): string {
  const list = columns.map((column) => `${alias}.${quote(column)}`);
  if (feedback) {
    const fields = feedback.map((column) => `f.${quote(column)}`).join(', ');
    list.push(`(SELECT row_to_json(x) FROM (SELECT ${fields} FROM "Feedback" f WHERE f."messageId" = ${alias}.id) x) AS feedback`);
  }
  return `SELECT ${list.join(', ')}`;
}

/** Column names come from the lists above, never from a request. */
function quote(column: string): string {
  return `"${column}"`;
}
