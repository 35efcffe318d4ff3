import { VOCABULARY, type Dataset } from './dataset.js';

/**
 * The GraphQL documents every server is driven with — the same text for
 * Parley, the "before" server and (by size) the ceiling — and the request mix
 * of each scenario. Requests are drawn from a seeded generator, so every
 * server gets the same sequence of products, questions and conversations.
 */

export const SCENARIO_NAMES = ['nested', 'viewer', 'search', 'sendMessage', 'mixed'] as const;
export type ScenarioName = (typeof SCENARIO_NAMES)[number];

export const DOCUMENTS = {
  nested: /* GraphQL */ `query NestedRead {
  conversations(first: 20) {
    edges { node {
      id title messageCount
      messages(first: 20) { edges { node { id role content feedback { rating } } } }
      lastMessage { content }
    } }
  }
}`,
  viewer: /* GraphQL */ `query ViewerDashboard {
  viewer {
    name
    stats { conversationCount messageCount feedbackUp feedbackDown }
    knowledge(first: 20) { edges { node { id title updatedAt } } }
  }
}`,
  search: /* GraphQL */ `query Search($query: String!) {
  searchKnowledge(query: $query, first: 5) { score entry { id title content } }
}`,
  sendMessage: /* GraphQL */ `mutation Send($input: SendMessageInput!) {
  sendMessage(input: $input) { message { id role content createdAt } reply { id role content } }
}`,
} as const;

export interface BenchRequest {
  /** Product key sent as `Authorization: Bearer`. */
  key: string;
  /** JSON body of the POST. */
  body: string;
  kind: 'read' | 'write';
}

export interface Scenario {
  name: ScenarioName;
  title: string;
  /** What the scenario exercises, for the report. */
  description: string;
  /** Answers must be the same on every server (no writes touch what it reads). */
  comparable: boolean;
  next(random: () => number): BenchRequest;
}

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

export function buildScenarios(dataset: Dataset): Record<ScenarioName, Scenario> {
  const questions = searchQuestions();
  const readKeys = dataset.readProducts.map((p) => p.key);
  const writers = dataset.writeProducts.filter((p) => p.conversationIds.length > 0);
  if (!readKeys.length || !writers.length) throw new Error('the dataset needs at least one read and one write product');
  let sent = 0;

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

  return {
    nested: {
      name: 'nested',
      title: 'Nested read',
      description: 'conversations(first: 20) { messages(first: 20) { feedback { rating } } lastMessage { content } }',
      comparable: true,
      next: (random) => nested(pick(readKeys, random)),
    },
    viewer: {
      name: 'viewer',
      title: 'Viewer dashboard',
      description: 'viewer { stats knowledge(first: 20) } (cache-friendly: few products, asked again and again)',
      comparable: true,
      next: (random) => viewer(pick(readKeys, random)),
    },
    search: {
      name: 'search',
      title: 'searchKnowledge',
      description: 'full-text search, 50 recurring questions, first: 5',
      comparable: true,
      next: (random) => search(pick(readKeys, random), random),
    },
    sendMessage: {
      name: 'sendMessage',
      title: 'sendMessage',
      description: 'write path: stores the USER message and the assistant reply (local engine: knowledge ranked, answer composed; every question new, so no answer-cache hits)',
      comparable: false,
      next: (random) => send(random),
    },
    mixed: {
      name: 'mixed',
      title: 'Mixed 90 % reads / 10 % writes',
      description: 'the three reads in equal parts and sendMessage, on the products being written to',
      comparable: false,
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
