import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { createTestApp, recordingLogger, TEST_ADMIN_TOKEN, type GqlResult, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { defaultAnswer, startFakeLlm, type FakeLlm } from '../helpers/fake-llm.js';
import { CONVERSATION_EVENTS, disposeClients, eventually, liveClient, subscribe, uniquePrefix } from '../helpers/live.js';
import { addKnowledgeBatch } from '../../src/services/knowledge.js';

/**
 * The `openai` engine against a fake OpenAI-compatible server on loopback:
 * routing, the prompt, streaming relayed as ReplyDelta, retries (429 with
 * Retry-After, 5xx, silence), fallback to the local engine, the circuit
 * breaker and its probe — in both runtime modes.
 */

const redisUrl = inject('redisUrl');
const [pglite, postgres] = databaseVariants();
const modes = [
  { name: 'embedded', variant: pglite!, redis: false, available: true },
  { name: 'PostgreSQL + Redis', variant: postgres!, redis: true, available: postgres!.available && Boolean(redisUrl) },
];

const SHIPPING = 'Orders ship within 2 business days. Standard delivery takes 3-5 business days.';
const FAQ = [
  { title: 'Shipping times', content: SHIPPING },
  { title: 'Refund policy', content: 'You can return any item within 30 days of delivery for a full refund.' },
];

const SEND = /* GraphQL */ `
  mutation Send($input: SendMessageInput!) {
    sendMessage(input: $input) { message { id } replyId reply { id content model cached sources { title } } }
  }
`;
const START = `mutation { startConversation(input: { sessionId: "llm" }) { id } }`;
const STATS = `{ viewer { stats { answers { count cached providerErrors providerRetries fallbacks byModel { engine model count cached providerErrors providerRetries fallbacks } } } } }`;

function ok<T>(result: GqlResult<T>): T {
  expect(result.errors, JSON.stringify(result.errors)).toBeUndefined();
  return result.data;
}

function llmEnv(fake: FakeLlm, overrides: Record<string, string> = {}): Record<string, string> {
  return {
    PARLEY_ANSWER_ENGINE: 'openai',
    PARLEY_LLM_BASE_URL: fake.url,
    PARLEY_LLM_API_KEY: 'sk-test-key',
    PARLEY_LLM_FAST_MODEL: 'fast-model',
    PARLEY_LLM_LARGE_MODEL: 'large-model',
    PARLEY_LLM_FAST_MAX_CHARS: '60',
    PARLEY_LLM_TIMEOUT_MS: '1000',
    PARLEY_LLM_MAX_RETRIES: '2',
    PARLEY_LLM_RETRY_BASE_MS: '5',
    PARLEY_LLM_RETRY_MAX_MS: '2000',
    PARLEY_LLM_BREAKER_FAILURES: '100',
    PARLEY_LLM_BREAKER_COOLDOWN_MS: '100000',
    // Not streamed, typing shows once an answer takes longer than this; the slow one below takes 300 ms a piece.
    PARLEY_ASSISTANT_TYPING_DELAY_MS: '100',
    ...overrides,
  };
}

for (const mode of modes) {
  describe.skipIf(!mode.available)(`answers: the openai engine [${mode.name}]`, () => {
    let fake: FakeLlm;
    let t: TestApp;
    let shop: { id: string; key: string };
    let port: number;
    const prefix = uniquePrefix('llm');
    const gql = (query: string, variables?: Record<string, unknown>) => t.gql(query, { key: shop.key, variables });
    const ask = async (content: string, extra: Record<string, unknown> = {}) => {
      const conversationId = ok(await gql(START)).startConversation.id;
      return { conversationId, ...ok(await gql(SEND, { input: { conversationId, content, ...extra } })).sendMessage };
    };
    const stats = async () => ok(await gql(STATS)).viewer.stats.answers;
    const requestsNow = () => fake.requests.length;

    beforeAll(async () => {
      fake = await startFakeLlm();
      t = await createTestApp(mode.variant, { ...llmEnv(fake), ...(mode.redis ? { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: prefix } : {}) });
      port = (await t.app.start(0, '127.0.0.1')).port;
      shop = await t.product('LLM shop');
      await addKnowledgeBatch(t.store, shop.id, { entries: FAQ });
    });
    afterEach(async () => {
      fake.otherwise = { kind: 'answer' };
      await disposeClients();
    });
    afterAll(async () => {
      await t?.dispose();
      await fake?.dispose();
    });

    it('sends a short question to the fast model with the top passages in the prompt, and stores its answer', async () => {
      const before = requestsNow();
      const { reply } = await ask('How long does shipping take?');
      expect(fake.requests.length - before).toBe(1);
      const request = fake.requests.at(-1)!;
      expect(request).toMatchObject({ model: 'fast-model', stream: true, authorization: 'Bearer sk-test-key', path: '/v1/chat/completions' });
      const system = request.messages.find((m) => m.role === 'system')!.content;
      expect(system).toContain('"LLM shop"');
      expect(system).toContain(`[1] Shipping times\n${SHIPPING}`);
      expect(request.messages.at(-1)).toEqual({ role: 'user', content: 'How long does shipping take?' });
      expect(reply).toMatchObject({
        content: defaultAnswer(request).join(''),
        model: 'fast-model',
        cached: false,
        sources: [{ title: 'Shipping times' }],
      });
    });

    it('sends a long or complex question to the large model', async () => {
      await ask('Could you explain the difference between standard and express delivery for my order?');
      expect(fake.requests.at(-1)!.model).toBe('large-model');
      await ask('Shipping: how long? And refunds: how long?');
      expect(fake.requests.at(-1)!.model).toBe('large-model');
    });

    it('answers a repeated question from the answer cache without calling the provider', async () => {
      const first = await ask('Do you ship on weekends?');
      const before = requestsNow();
      const again = await ask('do you ship on weekends');
      expect(again.reply).toMatchObject({ cached: true, content: first.reply.content, model: 'fast-model' });
      expect(requestsNow()).toBe(before);
    });

    it('carries the conversation’s earlier turns in the prompt, and caches a follow-up only under the turns it follows', async () => {
      const askIn = async (conversationId: string, content: string) =>
        ok(await gql(SEND, { input: { conversationId, content } })).sendMessage.reply as { content: string; cached: boolean };
      const first = ok(await gql(START)).startConversation.id;
      const shipped = await askIn(first, 'Do you ship to Canada?');
      await askIn(first, 'and how long does it take?');
      const prompt = fake.requests.at(-1)!.messages;
      expect(prompt.slice(1)).toEqual([
        { role: 'user', content: 'Do you ship to Canada?' },
        { role: 'assistant', content: shipped.content },
        { role: 'user', content: 'and how long does it take?' },
      ]);

      // The same follow-up after other turns is asked of the provider again, with those turns.
      const second = ok(await gql(START)).startConversation.id;
      await askIn(second, 'Can I get a refund?');
      const before = requestsNow();
      const followUp = await askIn(second, 'and how long does it take?');
      expect(followUp.cached).toBe(false);
      expect(requestsNow() - before).toBe(1);
      expect(fake.requests.at(-1)!.messages.at(-3)).toEqual({ role: 'user', content: 'Can I get a refund?' });

      // A standalone question is still answered from the cache, whatever came before it.
      const third = ok(await gql(START)).startConversation.id;
      await askIn(third, 'Can I get a refund?');
      const standalone = await askIn(third, 'Do you ship to Canada?');
      expect(standalone).toMatchObject({ cached: true, content: shipped.content });
    });

    it('stream: true returns at once and relays the provider’s pieces as ReplyDelta, then MessageAdded', async () => {
      const ws = liveClient(`ws://127.0.0.1:${port}/graphql`, { connectionParams: { productKey: shop.key } }).client;
      const conversationId = ok(await gql(START)).startConversation.id;
      const base = t.app.deps.pubsub.stats().subscribed;
      const s = subscribe(ws, CONVERSATION_EVENTS, { id: conversationId });
      await eventually(() => t.app.deps.pubsub.stats().subscribed > base, 'subscribed');
      fake.script({ kind: 'answer', chunks: ['Orders ', 'ship within ', '2 days.'], delayMs: 5 });
      const sent = ok(await gql(SEND, { input: { conversationId, content: 'When do orders ship?', stream: true } })).sendMessage;
      expect(sent.reply).toBeNull();
      expect(sent.replyId).toBeTruthy();
      const last = await s.until((r) => r.conversationEvents.__typename === 'TypingChanged' && !r.conversationEvents.isTyping, 'typing stops');
      expect(last).toBeTruthy();
      const events = s.results.map((r) => r.conversationEvents);
      expect(events).toEqual([
        { __typename: 'MessageAdded', message: { id: sent.message.id, role: 'USER', content: 'When do orders ship?' } },
        { __typename: 'TypingChanged', conversationId, role: 'ASSISTANT', isTyping: true },
        { __typename: 'ReplyDelta', messageId: sent.replyId, delta: 'Orders ', done: false },
        { __typename: 'ReplyDelta', messageId: sent.replyId, delta: 'ship within ', done: false },
        { __typename: 'ReplyDelta', messageId: sent.replyId, delta: '2 days.', done: false },
        { __typename: 'ReplyDelta', messageId: sent.replyId, delta: '', done: true },
        { __typename: 'MessageAdded', message: { id: sent.replyId, role: 'ASSISTANT', content: 'Orders ship within 2 days.' } },
        { __typename: 'TypingChanged', conversationId, role: 'ASSISTANT', isTyping: false },
      ]);
    });

    it('not streamed: a slow answer announces the question once the typing delay passes, then typing, then the reply', async () => {
      const ws = liveClient(`ws://127.0.0.1:${port}/graphql`, { connectionParams: { productKey: shop.key } }).client;
      const conversationId = ok(await gql(START)).startConversation.id;
      // The previous test's subscription ends asynchronously: count from none.
      await eventually(() => t.app.deps.pubsub.stats().subscribed === 0, 'earlier subscriptions ended');
      const base = t.app.deps.pubsub.stats().subscribed;
      const s = subscribe(ws, CONVERSATION_EVENTS, { id: conversationId });
      await eventually(() => t.app.deps.pubsub.stats().subscribed > base, 'subscribed');
      fake.script({ kind: 'answer', chunks: ['Returns ', 'are free.'], delayMs: 300 });
      const sending = gql(SEND, { input: { conversationId, content: 'Are returns free of charge?' } });
      // The question is out before the reply: announced when the typing delay passed, not with the reply.
      const question = await s.until((r) => r.conversationEvents.__typename === 'MessageAdded', 'question announced');
      expect(question.conversationEvents).toMatchObject({ message: { role: 'USER', content: 'Are returns free of charge?' } });
      const sent = ok(await sending).sendMessage;
      await s.until((r) => r.conversationEvents.__typename === 'TypingChanged' && !r.conversationEvents.isTyping, 'typing stops');
      expect(s.results.map((r) => r.conversationEvents)).toEqual([
        { __typename: 'MessageAdded', message: { id: sent.message.id, role: 'USER', content: 'Are returns free of charge?' } },
        { __typename: 'TypingChanged', conversationId, role: 'ASSISTANT', isTyping: true },
        { __typename: 'MessageAdded', message: { id: sent.reply.id, role: 'ASSISTANT', content: 'Returns are free.' } },
        { __typename: 'TypingChanged', conversationId, role: 'ASSISTANT', isTyping: false },
      ]);
    });

    it('429 with Retry-After: waits at least that long, retries, answers; counted per product', async () => {
      const before = await stats();
      const requests = requestsNow();
      fake.script({ kind: 'status', status: 429, retryAfter: '1' });
      const { reply } = await ask('What does standard delivery cost?');
      expect(requestsNow() - requests).toBe(2);
      expect(reply).toMatchObject({ model: 'fast-model', cached: false });
      const retried = t.logged.filter((l) => l.msg === 'answer provider call retried').at(-1)!;
      expect(retried.fields!.delayMs).toBeGreaterThanOrEqual(1000);
      const after = await stats();
      expect(after.providerErrors - before.providerErrors).toBe(1);
      expect(after.providerRetries - before.providerRetries).toBe(1);
      expect(after.fallbacks).toBe(before.fallbacks);
    });

    it('500 twice, then an answer: two retries with backoff', async () => {
      const requests = requestsNow();
      fake.script({ kind: 'status', status: 500 }, { kind: 'status', status: 503 });
      const { reply } = await ask('Which carriers deliver my parcel?');
      expect(requestsNow() - requests).toBe(3);
      expect(reply.model).toBe('fast-model');
      const kinds = t.logged
        .filter((l) => l.msg === 'answer provider call failed')
        .slice(-2)
        .map((l) => l.fields!.status);
      expect(kinds).toEqual([500, 503]);
    });

    it('a provider that goes silent is given up after the timeout and retried', async () => {
      const requests = requestsNow();
      fake.script({ kind: 'stall' }, { kind: 'reset' });
      const { reply } = await ask('Is delivery tracked?');
      expect(requestsNow() - requests).toBe(3);
      expect(reply.model).toBe('fast-model');
      const failures = t.logged
        .filter((l) => l.msg === 'answer provider call failed')
        .slice(-2)
        .map((l) => l.fields!.kind);
      expect(failures).toEqual(['timeout', 'network']);
    });

    it('a server that answers with plain JSON instead of a stream still works', async () => {
      fake.script({ kind: 'json', content: 'Plain JSON answer.' });
      expect((await ask('Do you deliver to islands?')).reply).toMatchObject({ content: 'Plain JSON answer.', model: 'fast-model' });
    });

    it('when every attempt fails, the local engine answers from the same passages — and that answer is not cached', async () => {
      const before = await stats();
      const requests = requestsNow();
      fake.script({ kind: 'status', status: 500 }, { kind: 'status', status: 500 }, { kind: 'status', status: 500 });
      const question = 'How many business days does shipping take?';
      const { reply } = await ask(question);
      expect(requestsNow() - requests).toBe(3);
      expect(reply).toMatchObject({ content: SHIPPING, model: 'local-fts', cached: false, sources: [{ title: 'Shipping times' }] });
      const after = await stats();
      expect(after.fallbacks - before.fallbacks).toBe(1);
      expect(after.providerErrors - before.providerErrors).toBe(3);
      expect(after.providerRetries - before.providerRetries).toBe(2);
      expect(after.byModel).toContainEqual(expect.objectContaining({ engine: 'openai', model: 'fast-model' }));
      expect(after.byModel).toContainEqual(expect.objectContaining({ engine: 'local', model: 'local-fts' }));
      // The provider is asked again next time (the fallback was not kept), and its answer is.
      const again = await ask(question);
      expect(again.reply).toMatchObject({ model: 'fast-model', cached: false });
      expect((await ask(question)).reply).toMatchObject({ model: 'fast-model', cached: true });
    });

    it('a stream cut half-way is not retried (pieces were relayed): the stored reply is the local answer', async () => {
      const requests = requestsNow();
      fake.script({ kind: 'cut', chunks: ['Orders ship ', 'with'] });
      const { reply } = await ask('How quickly do orders ship?');
      expect(requestsNow() - requests).toBe(1);
      expect(reply).toMatchObject({ model: 'local-fts', content: SHIPPING });
    });

    it('a refusal (HTTP 400) is not retried', async () => {
      const requests = requestsNow();
      fake.script({ kind: 'status', status: 400 });
      const { reply } = await ask('Where do you ship from?');
      expect(requestsNow() - requests).toBe(1);
      expect(reply.model).toBe('local-fts');
    });
  });

  describe.skipIf(!mode.available)(`answers: the provider circuit breaker [${mode.name}]`, () => {
    let fake: FakeLlm;
    let t: TestApp;
    let shop: { id: string; key: string };
    const ask = async (content: string) => {
      const conversationId = ok(await t.gql(START, { key: shop.key })).startConversation.id;
      return ok(await t.gql(SEND, { key: shop.key, variables: { input: { conversationId, content } } })).sendMessage.reply;
    };

    beforeAll(async () => {
      fake = await startFakeLlm();
      const env = llmEnv(fake, { PARLEY_LLM_MAX_RETRIES: '0', PARLEY_LLM_BREAKER_FAILURES: '2', PARLEY_LLM_BREAKER_COOLDOWN_MS: '300' });
      t = await createTestApp(mode.variant, { ...env, ...(mode.redis ? { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: uniquePrefix('breaker') } : {}) });
      shop = await t.product('Breaker shop');
      await addKnowledgeBatch(t.store, shop.id, { entries: FAQ });
    });
    afterAll(async () => {
      await t?.dispose();
      await fake?.dispose();
    });

    it('opens after consecutive failures, answers locally without calling, probes after the cool-down, closes on success', async () => {
      const answers = t.app.deps.answers;
      fake.otherwise = { kind: 'status', status: 500 };
      expect((await ask('How long does shipping take? (1)')).model).toBe('local-fts');
      expect(answers.circuit).toBe('closed');
      expect((await ask('How long does shipping take? (2)')).model).toBe('local-fts');
      expect(answers.circuit).toBe('open');
      expect(fake.requests).toHaveLength(2);

      // Open: the provider is not called at all, the local engine answers at once.
      expect(await ask('How long does shipping take? (3)')).toMatchObject({ model: 'local-fts', content: SHIPPING });
      expect(fake.requests).toHaveLength(2);

      // After the cool-down one call probes; it fails, so the circuit opens again.
      await eventually(async () => {
        await ask(`How long does shipping take? probe ${fake.requests.length}`);
        return fake.requests.length === 3;
      }, 'a probe after the cool-down');
      expect(answers.circuit).toBe('open');
      const reopened = fake.requests.length;
      await ask('How long does shipping take? (4)');
      expect(fake.requests).toHaveLength(reopened);

      // The provider is back: the next probe succeeds and closes the circuit.
      fake.otherwise = { kind: 'answer' };
      const back = await eventually(async () => {
        const reply = await ask(`How long does shipping take? back ${fake.requests.length}`);
        return reply.model === 'fast-model' && reply;
      }, 'a successful probe');
      expect(back.cached).toBe(false);
      expect(answers.circuit).toBe('closed');
      expect((await ask('Can I get a refund?')).model).toBe('fast-model');

      const statsNow = ok(await t.gql(STATS, { key: shop.key })).viewer.stats.answers;
      expect(statsNow.providerErrors).toBe(3); // two that opened it, one failed probe
      expect(statsNow.providerRetries).toBe(0);
      expect(statsNow.fallbacks).toBeGreaterThanOrEqual(5);
      const logged = t.logged.map((l) => l.msg);
      expect(logged).toContain('answer provider circuit open');
      expect(logged).toContain('answer provider circuit half-open');
      expect(logged).toContain('answer provider circuit closed');

      // The same story for Prometheus (this node's counters).
      const metrics = t.app.deps.metrics;
      if (metrics) {
        const text = await metrics.text();
        expect(text).toMatch(/^parley_llm_errors_total\{model="fast-model",kind="server"\} 3$/m);
        expect(text).toMatch(/^parley_llm_circuit_opens_total 2$/m);
        expect(text).toMatch(/^parley_llm_circuit_state 0$/m);
        expect(text).toMatch(/^parley_llm_fallbacks_total\{model="fast-model",reason="circuit_open"\} \d+$/m);
        expect(text).toMatch(/^parley_answers_total\{model="local-fts",cached="false",outcome="fallback"\} \d+$/m);
        expect(text).toMatch(/^parley_answers_total\{model="fast-model",cached="false",outcome="ok"\} \d+$/m);
      }
    });

    it('stopping the server lets a streamed reply still being produced finish and be stored', async () => {
      const conversationId = ok(await t.gql(START, { key: shop.key })).startConversation.id;
      fake.script({ kind: 'answer', chunks: ['Still ', 'answered.'], delayMs: 150 });
      const sent = ok(
        await t.gql(SEND, { key: shop.key, variables: { input: { conversationId, content: 'Last question before closing?', stream: true } } }),
      ).sendMessage;
      expect(sent.reply).toBeNull();
      await t.app.stop();
      const stored = await t.prisma.message.findUnique({ where: { id: Buffer.from(sent.replyId, 'base64').toString().split(':')[1]! } });
      expect(stored).toMatchObject({ role: 'ASSISTANT', content: 'Still answered.', model: 'fast-model' });
    });
  });
}

describe.skipIf(!postgres!.available || !redisUrl)('answers: two nodes on one PostgreSQL and one Redis', () => {
  let fake: FakeLlm;
  let a: TestApp;
  let b: App;
  let bDataDir: string;
  let shop: { id: string; key: string };
  const prefix = uniquePrefix('answers-nodes');

  const gqlOn = async (app: App, query: string, variables: Record<string, unknown>) => {
    const response = await app.yoga.fetch('http://parley.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${shop.key}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data: any; errors?: unknown[] };
    expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
    return body.data;
  };
  const askOn = async (app: App, content: string) => {
    const conversationId = (await gqlOn(app, START, {})).startConversation.id;
    return (await gqlOn(app, SEND, { input: { conversationId, content } })).sendMessage.reply;
  };

  beforeAll(async () => {
    fake = await startFakeLlm();
    const env = { ...llmEnv(fake, { PARLEY_LLM_TIMEOUT_MS: '2000' }), REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: prefix };
    a = await createTestApp(postgres!, env);
    bDataDir = mkdtempSync(join(tmpdir(), 'parley-answers-b-'));
    const config = loadConfig({ NODE_ENV: 'test', PARLEY_DATA_DIR: bDataDir, PARLEY_ADMIN_TOKEN: TEST_ADMIN_TOKEN, PARLEY_DEMO: 'false', ...env });
    // Node B shares node A's database connection pool: what differs between nodes here is the cache.
    b = await buildApp(config, { db: a.database.db, log: recordingLogger().log });
    shop = await a.product('Two-node shop');
    await addKnowledgeBatch(a.store, shop.id, { entries: FAQ });
  });
  afterAll(async () => {
    await b?.stop();
    if (bDataDir) rmSync(bDataDir, { recursive: true, force: true });
    await a?.dispose();
    await fake?.dispose();
  });

  it('an answer produced on node A is a cache hit on node B (L2), without a provider call', async () => {
    const first = await askOn(a.app, 'How long does shipping take?');
    expect(first.cached).toBe(false);
    const calls = fake.requests.length;
    const onB = await askOn(b, 'how long does shipping take');
    expect(onB).toMatchObject({ cached: true, content: first.content });
    expect(fake.requests.length).toBe(calls);
  });

  it('the same question on both nodes at once is generated once', async () => {
    const calls = fake.requests.length;
    fake.script({ kind: 'answer', chunks: ['Slow ', 'but ', 'once.'], delayMs: 100 });
    const [onA, onB] = await Promise.all([askOn(a.app, 'Can I return an item?'), askOn(b, 'Can I return an item?')]);
    expect(fake.requests.length - calls).toBe(1);
    expect([onA.content, onB.content]).toEqual(['Slow but once.', 'Slow but once.']);
    expect([onA.cached, onB.cached].sort()).toEqual([false, true]);
  });

  it('a knowledge change on node A invalidates the answers node B would serve', async () => {
    await askOn(b, 'What is your refund policy?');
    expect((await askOn(b, 'What is your refund policy?')).cached).toBe(true);
    await gqlOn(a.app, `mutation($i: KnowledgeInput!) { addKnowledge(input: $i) { id } }`, {
      i: { title: 'Refunds for sale items', content: 'Sale items are refunded as store credit.' },
    });
    const calls = fake.requests.length;
    expect((await askOn(b, 'What is your refund policy?')).cached).toBe(false);
    expect(fake.requests.length).toBe(calls + 1);
  });
});
