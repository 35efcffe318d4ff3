import { formatPrismaCursor } from '@pothos/plugin-prisma';
import { decodeGlobalID, encodeGlobalID } from '@pothos/plugin-relay';
import { VOCABULARY, type Dataset } from './dataset.js';

/**
 * The GraphQL documents every server is driven with — the same text for
 * Parley, the "before" server and (by size) the ceiling — and the request mix
 * of each scenario. Requests are drawn from a seeded generator, so every
 * server gets the same sequence of products, questions and conversations.
 */

export const SCENARIO_NAMES = ['nested', 'nestedCursor', 'widget', 'viewer', 'viewerName', 'search', 'sendMessage', 'mixed'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

const NESTED_SELECTION = /* GraphQL */ `edges { node {
      id title messageCount
      messages(first: 20) { edges { node { id role content feedback { rating } } } }
      lastMessage { content }
    } }`;

/** Parley's documents; the "before" server implements the same schema.graphql and gets the same text. */
export const DOCUMENTS = {
  nested: /* GraphQL */ `query NestedRead {
  conversations(first: 20) {
    ${NESTED_SELECTION}
  }
}`,
  nestedAfter: /* GraphQL */ `query NestedReadAfter($cursor: String!) {
  conversations(first: 20, after: $cursor) {
    ${NESTED_SELECTION}
  }
}`,
  nestedBefore: /* GraphQL */ `query NestedReadBefore($cursor: String!) {
  conversations(last: 20, before: $cursor) {
    ${NESTED_SELECTION}
  }
}`,
  widget: /* GraphQL */ `query Widget($id: ID!) {
  conversation(id: $id) { id messages(last: 20) { edges { node { id role content createdAt } } } }
}`,
  viewer: /* GraphQL */ `query ViewerDashboard {
  viewer {
    name
    stats { conversationCount messageCount feedbackUp feedbackDown }
    knowledge(first: 20) { edges { node { id title updatedAt } } }
  }
}`,
  viewerName: /* GraphQL */ `query ViewerName { viewer { name } }`,
  search: /* GraphQL */ `query Search($query: String!) {
  searchKnowledge(query: $query, first: 5) { score entry { id title content } }
}`,
  sendMessage: /* GraphQL */ `mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id role content createdAt } reply { id role content } }
}`,
  /** A product's conversations with their cursors, page by page (fetched once before the cursor scenario). */
  cursors: /* GraphQL */ `query Cursors($after: String) {
  conversations(first: 100, after: $after) { edges { cursor node { id } } pageInfo { hasNextPage endCursor } }
}`,
} as const;

const PG_NESTED_SELECTION = /* GraphQL */ `edges { node {
      rowId title messageCount
      messagesByConversationId(orderBy: [CREATED_AT_ASC, ROW_ID_ASC], first: 20) {
        edges { node { rowId role content feedbacksByMessageId { nodes { rating } } } }
      }
      messageByLastMessageId { content }
    } }`;

/**
 * The same reads in PostGraphile 5's generated schema (Amber preset): tables
 * by their names, `rowId` for the uuid (`id` is its global node id),
 * relations by their foreign keys. Product scoping is a `condition` variable:
 * PostGraphile has no product keys. Orders are Parley's: conversations by
 * lastMessageAt desc, id desc; messages by createdAt, id. Prisma's
 * `@unique` on Feedback.messageId is a unique index, not a constraint, so
 * PostGraphile sees a one-to-many `feedbacksByMessageId` (at most one row).
 */
export const POSTGRAPHILE_DOCUMENTS = {
  nested: /* GraphQL */ `query NestedRead($productId: UUID!) {
  allConversations(condition: { productId: $productId }, orderBy: [LAST_MESSAGE_AT_DESC, ROW_ID_DESC], first: 20) {
    ${PG_NESTED_SELECTION}
  }
}`,
  nestedAfter: /* GraphQL */ `query NestedReadAfter($productId: UUID!, $cursor: Cursor!) {
  allConversations(condition: { productId: $productId }, orderBy: [LAST_MESSAGE_AT_DESC, ROW_ID_DESC], first: 20, after: $cursor) {
    ${PG_NESTED_SELECTION}
  }
}`,
  nestedBefore: /* GraphQL */ `query NestedReadBefore($productId: UUID!, $cursor: Cursor!) {
  allConversations(condition: { productId: $productId }, orderBy: [LAST_MESSAGE_AT_DESC, ROW_ID_DESC], last: 20, before: $cursor) {
    ${PG_NESTED_SELECTION}
  }
}`,
  widget: /* GraphQL */ `query Widget($productId: UUID!, $id: UUID!) {
  allConversations(condition: { productId: $productId, rowId: $id }) {
    nodes { rowId messagesByConversationId(orderBy: [CREATED_AT_ASC, ROW_ID_ASC], last: 20) { edges { node { rowId role content createdAt } } } }
  }
}`,
  viewerName: /* GraphQL */ `query ViewerName($productId: UUID!) { productByRowId(rowId: $productId) { name } }`,
  /** Every conversation's cursor of a product, in the nested read's order (fetched once before the cursor scenario). */
  cursors: /* GraphQL */ `query Cursors($productId: UUID!) {
  allConversations(condition: { productId: $productId }, orderBy: [LAST_MESSAGE_AT_DESC, ROW_ID_DESC]) { edges { cursor node { rowId } } }
}`,
} as const;

/** How a server is spoken to: Parley's schema (Parley and the "before" server) or PostGraphile's. */
export type Dialect = 'parley' | 'postgraphile';

export interface BenchRequest {
  /** Product key sent as `Authorization: Bearer`. */
  key: string;
  /** JSON body of the POST, in Parley's schema. */
  body: string;
  /** The same request in PostGraphile's schema (no key: the product is a variable); absent when it has none. */
  postgraphile?: () => string;
  kind: 'read' | 'write';
}

/** The request's body for a dialect. */
export function requestBody(request: BenchRequest, dialect: Dialect): string {
  if (dialect === 'parley') return request.body;
  if (!request.postgraphile) throw new Error('this request has no PostGraphile equivalent');
  return request.postgraphile();
}

export interface Scenario {
  name: ScenarioName;
  title: string;
  /** What the scenario exercises, for the report. */
  description: string;
  /** Answers must be the same on every server (no writes touch what it reads). */
  comparable: boolean;
  /** Whether PostGraphile serves an equivalent; `peerMissing` says why not. */
  postgraphile: boolean;
  peerMissing?: string;
  next(random: () => number): BenchRequest;
  /**
   * One canonical shape of an answer's `data` in either dialect: raw uuids
   * (Parley's global ids decoded), Parley's field names, ISO timestamps, the
   * order as answered. Undefined for scenarios compared as they are.
   */
  normalise?(data: unknown, dialect: Dialect): unknown;
}

/** Cursors of PostGraphile's connections, by conversation uuid: filled by the harness once PostGraphile runs. */
export type PeerCursors = Map<string, string>;
/** Parley's own cursors of `conversations`, by conversation uuid: filled by the harness once Parley runs. */
export type ParleyCursors = Map<string, string>;

/** mulberry32: small, fast and good enough to pick products and questions reproducibly. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const pick = <T>(list: readonly T[], random: () => number): T => list[Math.floor(random() * list.length)]!;

/** Fifty chat-style questions made of the dataset's words, asked again and again as real widgets do. */
export function searchQuestions(count = 50): string[] {
  const random = seededRandom(7);
  const openings = ['How do I', 'Can I', 'Where is my', 'What about', 'Why is my', 'Do you offer'];
  return Array.from(
    { length: count },
    () => `${pick(openings, random)} ${pick(VOCABULARY, random)} ${pick(VOCABULARY, random)} ${pick(VOCABULARY, random)}?`,
  );
}

const body = (query: string, variables?: Record<string, unknown>) => JSON.stringify(variables ? { query, variables } : { query });

/**
 * A cursor of a conversation that Parley did not issue: the row id alone, the
 * format of its earlier releases, which it still reads (with one more statement
 * to find the row's place), as the "before" server does.
 */
export const parleyCursor = (uuid: string) => formatPrismaCursor({ id: uuid }, 'id');

type Json = Record<string, any>;

/** A Parley global id's uuid (ids of other shapes are kept as they are). */
function uuidOf(globalId: string): string {
  try {
    return decodeGlobalID(globalId).id;
  } catch {
    return globalId;
  }
}

const iso = (value: string) => new Date(value).toISOString();

function canonicalConversations(data: unknown, dialect: Dialect): unknown {
  const d = data as Json;
  if (dialect === 'postgraphile') {
    return (d.allConversations?.edges ?? []).map(({ node: c }: Json) => ({
      id: c.rowId,
      title: c.title,
      messageCount: c.messageCount,
      messages: c.messagesByConversationId.edges.map(({ node: m }: Json) => ({
        id: m.rowId,
        role: m.role,
        content: m.content,
        rating: m.feedbacksByMessageId.nodes[0]?.rating ?? null,
      })),
      lastMessage: c.messageByLastMessageId?.content ?? null,
    }));
  }
  return (d.conversations?.edges ?? []).map(({ node: c }: Json) => ({
    id: uuidOf(c.id),
    title: c.title,
    messageCount: c.messageCount,
    messages: c.messages.edges.map(({ node: m }: Json) => ({
      id: uuidOf(m.id),
      role: m.role,
      content: m.content,
      rating: m.feedback?.rating ?? null,
    })),
    lastMessage: c.lastMessage?.content ?? null,
  }));
}

function canonicalWidget(data: unknown, dialect: Dialect): unknown {
  const d = data as Json;
  const c: Json | null = dialect === 'postgraphile' ? (d.allConversations?.nodes?.[0] ?? null) : (d.conversation ?? null);
  if (!c) return null;
  const edges: Json[] = dialect === 'postgraphile' ? c.messagesByConversationId.edges : c.messages.edges;
  return {
    id: dialect === 'postgraphile' ? c.rowId : uuidOf(c.id),
    messages: edges.map(({ node: m }) => ({
      id: dialect === 'postgraphile' ? m.rowId : uuidOf(m.id),
      role: m.role,
      content: m.content,
      createdAt: iso(m.createdAt),
    })),
  };
}

function canonicalViewerName(data: unknown, dialect: Dialect): unknown {
  const d = data as Json;
  return { name: (dialect === 'postgraphile' ? d.productByRowId : d.viewer)?.name ?? null };
}

/** Where two lists of canonical answers first differ (a JSON path and both values), or null when equal. */
export function firstDifference(expected: unknown, actual: unknown, path = '$'): string | null {
  if (Object.is(expected, actual)) return null;
  const show = (v: unknown) => JSON.stringify(v)?.slice(0, 120) ?? String(v);
  if (
    typeof expected !== 'object' ||
    typeof actual !== 'object' ||
    expected === null ||
    actual === null ||
    Array.isArray(expected) !== Array.isArray(actual)
  ) {
    return `${path}: Parley ${show(expected)}, peer ${show(actual)}`;
  }
  if (Array.isArray(expected) && Array.isArray(actual) && expected.length !== actual.length) {
    return `${path}: Parley has ${expected.length} items, peer ${actual.length}`;
  }
  const keys = new Set([...Object.keys(expected), ...Object.keys(actual)]);
  for (const key of keys) {
    const inner = firstDifference((expected as Record<string, unknown>)[key], (actual as Record<string, unknown>)[key], `${path}.${key}`);
    if (inner) return inner;
  }
  return null;
}

/**
 * `peerCursors`: PostGraphile's cursor of each read conversation, which the
 * harness fills from PostGraphile itself before the cursor scenario runs
 * (its cursors are its own encoding of the order's values). `parleyCursors`:
 * the same from Parley, whose cursors also carry the row's place; a
 * conversation missing there is sent the id-only cursor (see parleyCursor).
 */
export function buildScenarios(
  dataset: Dataset,
  peerCursors: PeerCursors = new Map(),
  parleyCursors: ParleyCursors = new Map(),
): Record<ScenarioName, Scenario> {
  const questions = searchQuestions();
  const readers = dataset.readProducts.filter((p) => p.conversations.length > 0);
  const readKeys = dataset.readProducts.map((p) => p.key);
  const writers = dataset.writeProducts.filter((p) => p.conversationIds.length > 0);
  if (!readers.length || !writers.length) throw new Error('the dataset needs at least one read and one write product with conversations');
  let sent = 0;

  const peerCursor = (uuid: string) => {
    const cursor = peerCursors.get(uuid);
    if (!cursor) throw new Error(`no PostGraphile cursor for conversation ${uuid}`);
    return cursor;
  };
  const nested = (key: string): BenchRequest => ({ key, kind: 'read', body: body(DOCUMENTS.nested) });
  const viewer = (key: string): BenchRequest => ({ key, kind: 'read', body: body(DOCUMENTS.viewer) });
  const search = (key: string, random: () => number): BenchRequest => ({
    key,
    kind: 'read',
    body: body(DOCUMENTS.search, { query: pick(questions, random) }),
  });
  const send = (random: () => number): BenchRequest => {
    const product = pick(writers, random);
    const conversationId = pick(product.conversationIds, random);
    sent += 1;
    return {
      key: product.key,
      kind: 'write',
      body: body(DOCUMENTS.sendMessage, { input: { conversationId, content: `Bench question ${sent}: where is my parcel?` } }),
    };
  };
  const writerKeys = writers.map((p) => p.key);
  const noPeer = { postgraphile: false } as const;

  return {
    nested: {
      name: 'nested',
      title: 'Nested read',
      description: `conversations(first: 20) { messages(first: 20) { feedback { rating } } lastMessage { content } }, first pages of ${readers.length} products`,
      comparable: true,
      postgraphile: true,
      next: (random) => {
        const product = pick(readers, random);
        return { ...nested(product.key), postgraphile: () => body(POSTGRAPHILE_DOCUMENTS.nested, { productId: product.id }) };
      },
      normalise: canonicalConversations,
    },
    nestedCursor: {
      name: 'nestedCursor',
      title: 'Nested read, cursor pages (cold)',
      description:
        `the nested read as conversations(first: 20, after: $cursor) or (last: 20, before: $cursor), cursors drawn from all ` +
        `${readers.reduce((n, p) => n + p.conversations.length, 0).toLocaleString('en-US')} conversations of ${readers.length} products: mostly cache misses`,
      comparable: true,
      postgraphile: true,
      next: (random) => {
        const product = pick(readers, random);
        const uuid = pick(product.conversations, random);
        const forwards = random() < 0.5;
        return {
          key: product.key,
          kind: 'read',
          body: body(forwards ? DOCUMENTS.nestedAfter : DOCUMENTS.nestedBefore, { cursor: parleyCursors.get(uuid) ?? parleyCursor(uuid) }),
          postgraphile: () =>
            body(forwards ? POSTGRAPHILE_DOCUMENTS.nestedAfter : POSTGRAPHILE_DOCUMENTS.nestedBefore, {
              productId: product.id,
              cursor: peerCursor(uuid),
            }),
        };
      },
      normalise: canonicalConversations,
    },
    widget: {
      name: 'widget',
      title: 'Chat widget',
      description: `conversation(id) { messages(last: 20) }, any conversation of ${readers.length} products`,
      comparable: true,
      postgraphile: true,
      next: (random) => {
        const product = pick(readers, random);
        const uuid = pick(product.conversations, random);
        return {
          key: product.key,
          kind: 'read',
          body: body(DOCUMENTS.widget, { id: encodeGlobalID('Conversation', uuid) }),
          postgraphile: () => body(POSTGRAPHILE_DOCUMENTS.widget, { productId: product.id, id: uuid }),
        };
      },
      normalise: canonicalWidget,
    },
    viewer: {
      name: 'viewer',
      title: 'Viewer dashboard',
      description: `viewer { stats knowledge(first: 20) } of ${readKeys.length} products, asked again and again (cache-friendly)`,
      comparable: true,
      ...noPeer,
      peerMissing: 'stats are aggregates (a sum and counts by rating), which the Amber preset does not generate',
      next: (random) => viewer(pick(readKeys, random)),
    },
    viewerName: {
      name: 'viewerName',
      title: 'viewer { name }',
      description: `the smallest query: one field of the calling product, ${readers.length} products`,
      comparable: true,
      postgraphile: true,
      next: (random) => {
        const product = pick(readers, random);
        return {
          key: product.key,
          kind: 'read',
          body: body(DOCUMENTS.viewerName),
          postgraphile: () => body(POSTGRAPHILE_DOCUMENTS.viewerName, { productId: product.id }),
        };
      },
      normalise: canonicalViewerName,
    },
    search: {
      name: 'search',
      title: 'searchKnowledge',
      description: `full-text search, 50 recurring questions, first: 5, ${readKeys.length} products`,
      comparable: true,
      ...noPeer,
      peerMissing: "ranked full-text search is Parley's own (ts_rank over its query); PostGraphile would need a custom SQL function",
      next: (random) => search(pick(readKeys, random), random),
    },
    sendMessage: {
      name: 'sendMessage',
      title: 'sendMessage',
      description:
        'write path: stores the USER message and the assistant reply (local engine: knowledge ranked, answer composed; every question new, so no answer-cache hits)',
      comparable: false,
      ...noPeer,
      peerMissing: 'producing the assistant reply is application logic, not a table mutation',
      next: (random) => send(random),
    },
    mixed: {
      name: 'mixed',
      title: 'Mixed 90 % reads / 10 % writes',
      description: 'the nested, viewer and search reads in equal parts and sendMessage, on the products being written to',
      comparable: false,
      ...noPeer,
      peerMissing: 'it includes sendMessage and search',
      next: (random) => {
        const r = random();
        if (r < 0.1) return send(random);
        const key = pick(writerKeys, random);
        if (r < 0.4) return nested(key);
        if (r < 0.7) return viewer(key);
        return search(key, random);
      },
    },
  };
}
