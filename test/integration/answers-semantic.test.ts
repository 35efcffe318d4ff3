import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { startFakeEmbeddings, type FakeEmbeddings } from '../helpers/fake-embeddings.js';
import { addKnowledgeBatch } from '../../src/services/knowledge.js';

/**
 * Semantic matching of questions (PARLEY_EMBEDDINGS_MODEL) against a local
 * OpenAI-compatible /embeddings server over real HTTP: a question that means the
 * same as an answered one in other words reuses its answer; concurrent questions
 * share one call; embeddings are cached; with the endpoint down, lexical
 * matching still answers. The server is deterministic, not a language model.
 */

const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) { sendMessage(input: $input) { reply { content cached sources { title } } } }
`;
const START = `mutation { startConversation(input: { sessionId: "semantic" }) { id } }`;

function ok<T>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}

describe('answers: semantic matching with embeddings', () => {
  let fake: FakeEmbeddings;
  let t: TestApp;
  let shop: { id: string; key: string };
  let other: { id: string; key: string };
  const ask = async (content: string, key = shop.key) => {
    const conversationId = ok(await t.gql(START, { key })).startConversation.id;
    return ok(await t.gql(SEND, { key, variables: { input: { conversationId, content } } })).sendMessage.reply as {
      content: string;
      cached: boolean;
    };
  };

  beforeAll(async () => {
    fake = await startFakeEmbeddings();
    t = await createTestApp(databaseVariants()[0]!, {
      PARLEY_EMBEDDINGS_MODEL: 'test-embeddings',
      PARLEY_EMBEDDINGS_BASE_URL: fake.url,
      PARLEY_EMBEDDINGS_API_KEY: 'sk-embeddings',
      PARLEY_SEMANTIC_THRESHOLD: '0.95',
      PARLEY_EMBEDDINGS_BATCH_MS: '20',
      PARLEY_LLM_MAX_RETRIES: '0',
      PARLEY_LLM_BREAKER_FAILURES: '100',
    });
    shop = await t.product('Semantic shop');
    other = await t.product('Other shop');
    const faq = [
      { title: 'Shipping costs', content: 'Shipping costs 5 euros; orders above 50 euros ship free.' },
      { title: 'Gift cards', content: 'Gift cards cost 10 to 500 euros.' },
    ];
    await addKnowledgeBatch(t.store, shop.id, { entries: faq });
    await addKnowledgeBatch(t.store, other.id, { entries: faq });
  });
  afterAll(async () => {
    await t?.dispose();
    await fake?.dispose();
  });

  it('reuses the answer of a question that means the same in other words, never of one that does not', async () => {
    const first = await ask('How much does shipping cost?');
    expect(first.cached).toBe(false);
    // "price" and "cost" are different lexemes: only the embeddings make them one question.
    expect(await ask('What is the shipping price?')).toMatchObject({ cached: true, content: first.content });
    expect((await ask('What is the price of gift cards?')).cached).toBe(false);
    // Another product's answered question is never another's match.
    expect((await ask('What is the shipping price?', other.key)).cached).toBe(false);
  });

  it('lends an answer only while the knowledge is as it was: a new entry may match the new wording alone', async () => {
    const first = await ask('How much does a parcel cost to send?');
    expect(await ask('What is the price to send a parcel?')).toMatchObject({ cached: true, content: first.content });
    await addKnowledgeBatch(t.store, shop.id, { entries: [{ title: 'Price list', content: 'Our price list for sending: see the price page.' }] });
    expect((await ask('What is the price to send a parcel?')).cached).toBe(false);
  });

  it('embeds concurrent questions in one call, and each text once', async () => {
    const questions = ['Do you ship parcels to Norway?', 'Do gift cards expire?', 'Can I pay shipping by card?'];
    const before = fake.calls.length;
    await Promise.all(questions.map((q) => ask(q)));
    const calls = fake.calls.slice(before);
    expect(calls.flat().sort()).toEqual(questions.map((q) => q.toLowerCase().replace(/[?]/g, '')).sort());
    expect(calls.length).toBeLessThan(questions.length);
    // Asked again in other words: the new wording is embedded; the known one is not asked for again.
    const again = fake.calls.length;
    expect(await ask('Do you ship packages to Norway?')).toMatchObject({ cached: true });
    expect(fake.calls.slice(again).flat()).toEqual(['do you ship packages to norway']);
    expect(await ask('Do you ship packages to Norway?')).toMatchObject({ cached: true });
    expect(fake.calls.length).toBe(again + 1);
  });

  it('with the embeddings endpoint down, answers every question and still matches lexically', async () => {
    fake.failWith = 503;
    try {
      const first = await ask('How much do gift cards cost?');
      expect(first.cached).toBe(false);
      expect(await ask('Gift cards: how much do they cost?')).toMatchObject({ cached: true, content: first.content });
      expect((await ask('Is the gift card price fixed?')).cached).toBe(false);
    } finally {
      fake.failWith = undefined;
    }
  });
});
