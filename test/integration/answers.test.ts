import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, type GqlResult, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';
import { addKnowledgeBatch, updateKnowledge } from '../../src/services/knowledge.js';
import { NO_ANSWER } from '../../src/services/answers/local-engine.js';

/**
 * Assistant replies with the default (local) engine, through the API: grounded
 * in the product's knowledge, deterministic, cached per normalised question
 * until the knowledge changes, generated once when asked at once.
 */

const FAQ = [
  {
    title: 'Shipping times',
    content: 'Orders ship within 2 business days. Standard delivery takes 3-5 business days; express delivery takes 1-2 business days.',
    tags: ['shipping'],
  },
  {
    title: 'Refund policy',
    content: 'You can return any item within 30 days of delivery for a full refund. Refunds are paid to the original payment method within 5 days.',
    tags: ['refunds'],
  },
  {
    title: 'Opening hours',
    content: 'Our support team answers chat messages Monday to Friday, 9:00 to 18:00 CET.',
    tags: ['support'],
  },
];

const REPLY_FIELDS = 'id role content model latencyMs cached sources { id title }';
const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) {
      message { id role content conversation { id messageCount lastMessage { id } } }
      reply { ${REPLY_FIELDS} }
      replyId
    }
  }
`;
const START = `mutation { startConversation(input: { sessionId: "answers" }) { id } }`;
const STATS = /* GraphQL */ `{
  viewer { stats { messageCount answers {
    count cached cacheHitRate meanLatencyMs meanCachedLatencyMs providerErrors providerRetries fallbacks
    byModel { engine model count cached meanLatencyMs meanCachedLatencyMs providerErrors providerRetries fallbacks }
  } } }
}`;

function ok<T>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}

/** Statements that rank knowledge (the full-text search), as opposed to reading entries by id. */
const ranking = (sql: string[]) => sql.filter((s) => s.includes('ts_rank'));

describeEachDatabase('answers: the local engine', (variant) => {
  let t: TestApp;
  let shop: { id: string; key: string };
  let entryIds: Record<string, string>;
  const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: shop.key, variables });
  const start = async () => ok(await gql(START)).startConversation.id as string;
  const ask = async (content: string, conversationId?: string) => {
    const result = await gql(SEND, { input: { conversationId: conversationId ?? (await start()), content } });
    return { ...ok(result).sendMessage, sql: result.sql };
  };

  beforeAll(async () => {
    t = await createTestApp(variant);
    shop = await t.product('Answer shop');
    const entries = await addKnowledgeBatch(t.store, shop.id, { entries: FAQ });
    entryIds = Object.fromEntries(entries.map((e) => [e.title, e.id]));
  });
  afterAll(() => t?.dispose());

  it('stores the question and answers it from the best passage, listing it as the source', async () => {
    const c = await start();
    const sent = await ask('How long does shipping take?', c);
    expect(sent.message).toMatchObject({ role: 'USER', content: 'How long does shipping take?' });
    expect(sent.reply).toMatchObject({
      role: 'ASSISTANT',
      content: FAQ[0]!.content,
      model: 'local-fts',
      cached: false,
      sources: [{ id: gid('KnowledgeEntry', entryIds['Shipping times']!), title: 'Shipping times' }],
    });
    expect(sent.reply.latencyMs).toBeGreaterThanOrEqual(0);
    expect(sent.replyId).toBe(sent.reply.id);
    // Counters moved for both messages; the reply is the conversation's last message.
    expect(sent.message.conversation).toEqual({ id: c, messageCount: 2, lastMessage: { id: sent.reply.id } });
  });

  it('says plainly that it does not know when nothing matches, with no sources', async () => {
    const sent = await ask('Do you sell gift cards for weddings?');
    expect(sent.reply).toMatchObject({ content: NO_ANSWER, sources: [], cached: false, model: 'local-fts' });
  });

  it('answers a refund question with the refund entry only', async () => {
    const sent = await ask('Can I return shoes and get a refund?');
    expect(sent.reply.content).toBe(FAQ[1]!.content);
    expect(sent.reply.sources.map((s: any) => s.title)).toEqual(['Refund policy']);
  });

  it('answers the same question again from the cache, in another conversation, without ranking anything', async () => {
    const first = await ask('When is your support team open?');
    expect(first.reply.cached).toBe(false);
    expect(ranking(first.sql)).toHaveLength(1);
    const again = await ask('When is your support team open?');
    expect(again.reply).toMatchObject({ cached: true, content: first.reply.content, model: 'local-fts', sources: first.reply.sources });
    expect(again.reply.id).not.toBe(first.reply.id);
    expect(ranking(again.sql)).toEqual([]);
  });

  it('treats case, spacing, punctuation and filler words as the same question', async () => {
    const first = await ask('What are your opening hours for chat?');
    expect(first.reply.cached).toBe(false);
    for (const variantQuestion of [
      'what are your opening hours for chat',
      '  WHAT are your   opening hours, for chat?!',
      'Hi! Can you please tell me what are your opening hours for chat? Thanks',
    ]) {
      const hit = await ask(variantQuestion);
      expect(hit.reply, variantQuestion).toMatchObject({ cached: true, content: first.reply.content });
      expect(ranking(hit.sql), variantQuestion).toEqual([]);
    }
    // A different question is not a hit.
    expect((await ask('What are your opening hours for phone calls?')).reply.cached).toBe(false);
  });

  it('takes the same words in another order, or with others english analysis drops, for the same question', async () => {
    const first = await ask('How long does shipping take?');
    for (const same of ['Shipping: how long does it take?', 'how long does the shipping take', 'How long will shipping take?'])
      expect((await ask(same)).reply, same).toMatchObject({ cached: true, content: first.reply.content });
    // Near misses: another question word, a negation, another direction.
    const when = await ask('When does support answer chat messages?');
    expect((await ask('Where does support answer chat messages?')).reply.cached).toBe(false);
    expect((await ask("Doesn't support answer chat messages?")).reply.cached).toBe(false);
    expect(when.reply.cached).toBe(false);
    await ask('Can I return shoes to the shop?');
    expect((await ask('Can I return shoes from the shop?')).reply.cached).toBe(false);
  });

  it('a knowledge change invalidates the product’s answers', async () => {
    const question = 'How fast is express delivery?';
    const before = await ask(question);
    expect(before.reply.content).toContain('express delivery takes 1-2 business days');
    expect((await ask(question)).reply.cached).toBe(true);

    const changed = 'Orders ship the same day. Express delivery takes 1 business day.';
    await updateKnowledge(t.store, shop.id, entryIds['Shipping times']!, { content: changed });
    const after = await ask(question);
    expect(after.reply).toMatchObject({ cached: false, content: changed });
    expect(ranking(after.sql)).toHaveLength(1);
    expect((await ask(question)).reply).toMatchObject({ cached: true, content: changed });
  });

  it('identical questions asked at once are generated once', async () => {
    const conversations = await Promise.all(Array.from({ length: 8 }, () => start()));
    const search = t.app.deps.knowledgeSearch;
    const rankedBefore = search.statements;
    const replies = await Promise.all(conversations.map((c) => ask('Is my refund paid to the original payment method?', c)));
    expect(search.statements - rankedBefore).toBe(1);
    expect(replies.flatMap((r) => ranking(r.sql))).toHaveLength(1);
    expect(replies.filter((r) => r.reply.cached === false)).toHaveLength(1);
    expect(new Set(replies.map((r) => r.reply.content)).size).toBe(1);
    // Every conversation got its own stored reply.
    expect(new Set(replies.map((r) => r.reply.id)).size).toBe(8);
    for (const r of replies) expect(r.message.conversation.messageCount).toBe(2);
  });

  it('reads the sources of every reply of a conversation in one statement', async () => {
    const c = await start();
    for (const q of ['How long does shipping take?', 'Can I get a refund?', 'When are you open?', 'Do you sell gift cards?']) await ask(q, c);
    const result = await gql(`query($id: ID!) { conversation(id: $id) { messages(first: 20) { edges { node { role sources { title } } } } } }`, {
      id: c,
    });
    const messages = ok(result).conversation.messages.edges.map((e: any) => e.node);
    expect(messages.map((m: any) => [m.role, m.sources.map((s: any) => s.title)])).toEqual([
      ['USER', []],
      ['ASSISTANT', ['Shipping times']],
      ['USER', []],
      ['ASSISTANT', ['Refund policy']],
      ['USER', []],
      ['ASSISTANT', ['Opening hours']],
      ['USER', []],
      ['ASSISTANT', []],
    ]);
    expect(result.sql.filter((s) => s.includes('"KnowledgeEntry"'))).toHaveLength(1);
  });

  it('viewer.stats.answers: count, cache hit rate, mean latency per engine/model, in one statement of its own', async () => {
    const other = await t.product('Stats shop');
    await addKnowledgeBatch(t.store, other.id, { entries: FAQ });
    const as = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: other.key, variables });
    const conversation = ok(await as(START)).startConversation.id;
    for (const q of ['How long does shipping take?', 'how long does shipping take', 'Do you sell gift cards?']) {
      ok(await as(SEND, { input: { conversationId: conversation, content: q } }));
    }
    await t.app.deps.cache.flush();
    const result = await as(STATS);
    const { answers, messageCount } = ok(result).viewer.stats;
    expect(messageCount).toBe(6);
    expect(answers).toMatchObject({ count: 3, cached: 1, providerErrors: 0, providerRetries: 0, fallbacks: 0 });
    expect(answers.cacheHitRate).toBeCloseTo(1 / 3);
    expect(answers.meanLatencyMs).toBeGreaterThanOrEqual(0);
    expect(answers.meanCachedLatencyMs).toBeGreaterThanOrEqual(0);
    expect(answers.byModel).toEqual([expect.objectContaining({ engine: 'local', model: 'local-fts', count: 3, cached: 1, providerErrors: 0 })]);
    // The key lookup, the viewer row, the counters' aggregate, and the answers' own (read only when asked).
    expect(result.sql).toHaveLength(4);
    expect(result.sql.filter((s) => /count\(\*\)/i.test(s))).toHaveLength(2);
    expect(result.sql.filter((s) => /json_agg/i.test(s))).toHaveLength(1);
    // A dashboard that does not ask for answers never reads the replies for them.
    await t.app.deps.cache.flush();
    const counters = await as(`{ viewer { stats { conversationCount messageCount feedbackUp feedbackDown } } }`);
    expect(ok(counters).viewer.stats.messageCount).toBe(6);
    expect(counters.sql.filter((s) => /json_agg|"Message"/i.test(s))).toEqual([]);
  });

  it('an answer that fails stores nothing: the question and its reply are one statement, after the answer', async () => {
    const engine = t.app.deps.answers.engine as { answer: unknown };
    const original = engine.answer;
    engine.answer = () => Promise.reject(new Error('engine exploded'));
    try {
      const c = await start();
      const result = await gql(SEND, { input: { conversationId: c, content: 'Anyone out there?' } });
      expect(result.data).toBeNull();
      expect(result.errors).toEqual([
        expect.objectContaining({ path: ['sendMessage'], extensions: expect.objectContaining({ code: 'INTERNAL_SERVER_ERROR' }) }),
      ]);
      expect(JSON.stringify(result.errors)).not.toContain('exploded');
      const MESSAGES = `query($id: ID!) { conversation(id: $id) { messageCount messages(first: 10) { nodes { id } } } }`;
      expect(ok(await gql(MESSAGES, { id: c })).conversation).toEqual({ messageCount: 0, messages: { nodes: [] } });
    } finally {
      engine.answer = original;
    }
  });

  it('a provider engine (the question stored first): a reply that fails is an error on `reply` only, the question stored and returned', async () => {
    const answers = t.app.deps.answers as { reply: unknown; answersFirst: boolean };
    const original = answers.reply;
    answers.reply = () => Promise.reject(new Error('engine exploded'));
    answers.answersFirst = false;
    try {
      const c = await start();
      // Read (twice: cached) before the send: the question must still be announced, and the cache bumped.
      const MESSAGES = `query($id: ID!) { conversation(id: $id) { messages(first: 10) { nodes { role content } } } }`;
      for (let i = 0; i < 2; i++) expect(ok(await gql(MESSAGES, { id: c })).conversation.messages.nodes).toEqual([]);
      const result = await gql(SEND, { input: { conversationId: c, content: 'Anyone there?' } });
      expect(result.data.sendMessage.message).toMatchObject({ role: 'USER', content: 'Anyone there?' });
      expect(result.data.sendMessage.reply).toBeNull();
      expect(result.errors).toEqual([
        expect.objectContaining({ path: ['sendMessage', 'reply'], extensions: expect.objectContaining({ code: 'INTERNAL_SERVER_ERROR' }) }),
      ]);
      expect(JSON.stringify(result.errors)).not.toContain('exploded');
      expect(ok(await gql(MESSAGES, { id: c })).conversation.messages.nodes).toEqual([{ role: 'USER', content: 'Anyone there?' }]);
    } finally {
      answers.answersFirst = true;
      answers.reply = original;
    }
  });

  it('never answers from another product’s knowledge or cache', async () => {
    const stranger = await t.product('Stranger');
    const conversation = ok(await t.gql(START, { key: stranger.key })).startConversation.id;
    const result = await t.gql(SEND, {
      key: stranger.key,
      variables: { input: { conversationId: conversation, content: 'How long does shipping take?' } },
    });
    expect(ok(result).sendMessage.reply).toMatchObject({ content: NO_ANSWER, cached: false, sources: [] });
  });
});

describeEachDatabase('answers: follow-ups (the local engine)', (variant) => {
  let t: TestApp;
  let shop: { id: string; key: string };
  const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: shop.key, variables });
  const start = async () => ok(await gql(START)).startConversation.id as string;
  const ask = async (conversationId: string, content: string) => {
    const result = await gql(SEND, { input: { conversationId, content } });
    const { reply } = ok(result).sendMessage;
    return { ...reply, sources: reply.sources.map((s: { title: string }) => s.title) as string[], sql: result.sql };
  };

  beforeAll(async () => {
    t = await createTestApp(variant);
    shop = await t.product('Follow-up shop');
    await addKnowledgeBatch(t.store, shop.id, {
      entries: [
        { title: 'International shipping', content: 'We ship to Canada and Mexico. Customs fees are paid by the recipient.' },
        { title: 'Delivery times', content: 'How long delivery takes: orders to Canada take 7-10 business days, orders at home 3-5 business days.' },
        { title: 'Returns', content: 'You can return shoes within 30 days. A return takes 5 business days to process once we receive it.' },
      ],
    });
  });
  afterAll(() => t?.dispose());

  it('answers a follow-up with what the conversation was about, and never with another conversation’s answer to the same words', async () => {
    const shipping = await start();
    expect((await ask(shipping, 'Do you ship to Canada?')).sources[0]).toBe('International shipping');
    const howLongShipping = await ask(shipping, 'and how long does it take?');
    expect(howLongShipping.sources[0]).toBe('Delivery times');
    expect(howLongShipping.cached).toBe(false);

    const returns = await start();
    expect((await ask(returns, 'Can I return shoes?')).sources[0]).toBe('Returns');
    const howLongReturns = await ask(returns, 'and how long does it take?');
    expect(howLongReturns).toMatchObject({ cached: false, sources: ['Returns'] });
    expect(howLongReturns.content).not.toBe(howLongShipping.content);

    // The same turns in a third conversation: the follow-up's answer is cached under its context.
    const again = await start();
    await ask(again, 'Do you ship to Canada?');
    expect(await ask(again, 'And how long does it take?')).toMatchObject({ cached: true, content: howLongShipping.content });
  });

  it('reads a conversation’s turns only for a follow-up, and never another product’s', async () => {
    const readsTurns = (sql: string[]) => sql.filter((s) => s.includes('"Message"') && s.includes('DESC') && s.includes('LIMIT'));
    const c = await start();
    expect(readsTurns((await ask(c, 'Do you ship to Mexico?')).sql)).toEqual([]);
    expect(readsTurns((await ask(c, 'How about Canada?')).sql)).toHaveLength(1);
    // Another product's conversation: the follow-up is refused (NOT_FOUND) and its turns are never read into an answer.
    const other = await t.product('Other shop');
    const result = await t.gql(SEND, { key: other.key, variables: { input: { conversationId: c, content: 'and how long does it take?' } } });
    expect(result.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
  });
});

describeEachDatabase('answers: a knowledge write drops only the answers it can change', (variant) => {
  let t: TestApp;
  let shop: { id: string; key: string };
  let ids: Record<string, string>;
  const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: shop.key, variables });
  const ask = async (content: string) => {
    const conversationId = ok(await gql(START)).startConversation.id;
    const { reply } = ok(await gql(SEND, { input: { conversationId, content } })).sendMessage;
    return { content: reply.content as string, cached: reply.cached as boolean, sources: reply.sources.map((s: { title: string }) => s.title) };
  };
  /** Asks each question until its answer is cached; returns the answers. */
  const cachedAnswers = async (questions: string[]) => {
    const answers: Record<string, string> = {};
    for (const question of questions) {
      answers[question] = (await ask(question)).content;
      expect((await ask(question)).cached, question).toBe(true);
    }
    return answers;
  };

  beforeAll(async () => {
    t = await createTestApp(variant);
    shop = await t.product('Precise shop');
    const entries = await addKnowledgeBatch(t.store, shop.id, { entries: FAQ });
    ids = Object.fromEntries(entries.map((e) => [e.title, e.id]));
  });
  afterAll(() => t?.dispose());

  it('changing an entry drops the answers that cite it, not the others', async () => {
    const [shipping, refund, hours] = ['How long does standard delivery take?', 'Can I get a refund?', 'When does your support team answer chat?'];
    const before = await cachedAnswers([shipping, refund, hours]);
    await updateKnowledge(t.store, shop.id, ids['Shipping times']!, { content: 'Standard delivery takes 2 business days.' });
    expect(await ask(shipping)).toMatchObject({ cached: false, content: 'Standard delivery takes 2 business days.' });
    expect(await ask(refund)).toMatchObject({ cached: true, content: before[refund] });
    expect(await ask(hours)).toMatchObject({ cached: true, content: before[hours] });
  });

  it('adding an entry drops only the answers whose question it matches', async () => {
    const [giftCards, refund] = ['Do you sell gift cards?', 'Can I get a refund?'];
    const before = await cachedAnswers([giftCards, refund]);
    expect(before[giftCards]).toBe(NO_ANSWER);
    await addKnowledgeBatch(t.store, shop.id, { entries: [{ title: 'Gift cards', content: 'We sell gift cards from 10 to 500 euros, by email.' }] });
    expect(await ask(giftCards)).toMatchObject({ cached: false, sources: ['Gift cards'] });
    expect(await ask(refund)).toMatchObject({ cached: true, content: before[refund] });
  });

  it('deleting an entry drops the answers that cite it', async () => {
    const [refund, hours] = ['Can I get a refund?', 'When does your support team answer chat?'];
    const before = await cachedAnswers([refund, hours]);
    ok(await gql(`mutation($id: ID!) { deleteKnowledge(id: $id) }`, { id: gid('KnowledgeEntry', ids['Refund policy']!) }));
    const after = await ask(refund);
    expect(after.cached).toBe(false);
    expect(after.sources).not.toContain('Refund policy');
    expect(await ask(hours)).toMatchObject({ cached: true, content: before[hours] });
  });
});
