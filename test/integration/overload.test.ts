import { afterEach, describe, expect, inject, it } from 'vitest';
import { createAppWithOwnPool, type TestApp } from '../helpers/app.js';
import { createPostgresDatabase } from '../helpers/db.js';

/**
 * Overload (issue 13 point 11): more sendMessage at once than the database
 * pool serves in time used to fail some of them after the USER message was
 * stored — the reply's write waited past DATABASE_POOL_TIMEOUT_MS — so the
 * client saw an error for a message that was stored and delivered, and its
 * retry stored it twice. Now a node admits at most PARLEY_MAX_CONCURRENT_OPERATIONS
 * operations and refuses the rest before they start: OVERLOADED, HTTP 503,
 * Retry-After. A reply that still fails for the database is a retryable error
 * on `reply`, and a retry with the same idempotencyKey returns both.
 */

const postgresUrl = inject('postgresUrl');

const SEND = /* GraphQL */ `
  mutation($input: SendMessageInput!) { sendMessage(input: $input) { message { id content } reply { id content } } }
`;

describe.skipIf(!postgresUrl)('overload [postgres]', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const dispose of cleanup.splice(0).reverse()) await dispose();
  });

  async function app(env: Record<string, string>): Promise<TestApp> {
    const created = await createPostgresDatabase(postgresUrl);
    const { t, dispose } = await createAppWithOwnPool({ DATABASE_URL: created.url, PARLEY_WARM_PRODUCTS: '0', ...env });
    cleanup.push(async () => {
      await dispose();
      await created.drop();
    });
    return t;
  }

  /** A request as an HTTP client sees it: status, Retry-After and body. */
  async function post(t: TestApp, key: string, input: Record<string, unknown>) {
    const body = JSON.stringify({ query: SEND, variables: { input } });
    const response = await t.app.yoga.fetch('http://parley.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, 'content-length': String(Buffer.byteLength(body)) },
      body,
    });
    const json = (await response.json()) as { data: any; errors?: { message: string; path?: string[]; extensions?: any }[] };
    return { status: response.status, retryAfter: response.headers.get('retry-after'), ...json };
  }

  /**
   * A node with 2 connections on a database where every message write holds one for 20 ms
   * (about 50 sendMessage/s), and 100 widgets, each on a conversation of its own as in the issue.
   */
  async function busy(maxConcurrent: string) {
    const t = await app({
      DATABASE_POOL_SIZE: '2',
      DATABASE_POOL_MIN: '2',
      DATABASE_POOL_TIMEOUT_MS: '500',
      PARLEY_MAX_CONCURRENT_OPERATIONS: maxConcurrent,
    });
    const { key, id: productId } = await t.product('Busy');
    await t.gql(`mutation { addKnowledge(input: { title: "Returns", content: "Shoes can be returned within 30 days." }) { id } }`, { key });
    // One widget per conversation, as in the issue: no row lock shared between them.
    const conversations: string[] = [];
    for (let i = 0; i < 100; i++) {
      conversations.push((await t.gql(`mutation { startConversation(input: { sessionId: "w${i}" }) { id } }`, { key })).data.startConversation.id);
    }
    await t.prisma.$executeRawUnsafe(
      `CREATE FUNCTION slow_write() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.02); RETURN NEW; END $$`,
    );
    await t.prisma.$executeRawUnsafe(`CREATE TRIGGER slow_write BEFORE INSERT ON "Message" FOR EACH ROW EXECUTE FUNCTION slow_write()`);
    const stored = async () => {
      const rows = await t.prisma.message.groupBy({ by: ['role'], where: { conversation: { productId } }, _count: true });
      return Object.fromEntries(rows.map((s) => [s.role, s._count]));
    };
    return { t, key, conversations, stored };
  }

  it('refuses what it cannot serve before it starts (OVERLOADED, 503, Retry-After), and never fails a stored message', async () => {
    const { t, key, conversations, stored } = await busy('2');
    const results = await Promise.all(
      conversations.map((conversationId, i) => post(t, key, { conversationId, content: `Can I return shoes? #${i}` })),
    );

    const ok = results.filter((r) => !r.errors);
    const refused = results.filter((r) => r.errors);
    for (const r of ok) {
      expect(r.status).toBe(200);
      expect(r.data.sendMessage.reply).toEqual({ id: expect.any(String), content: expect.any(String) });
    }
    for (const r of refused) {
      // Refused as a whole, before anything ran: no data, no partial payload, nothing stored.
      expect(r, JSON.stringify(r.errors)).toMatchObject({ status: 503, retryAfter: '1' });
      expect(r.data ?? null).toBeNull();
      expect(r.errors).toEqual([expect.objectContaining({ extensions: { code: 'OVERLOADED', retryAfter: 1 } })]);
    }
    expect(ok.length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    // Every stored question is one the client was told succeeded, and each has its reply.
    expect(await stored()).toEqual({ USER: ok.length, ASSISTANT: ok.length });
  });

  it('clients that retry after Retry-After with their idempotency key all get through, each message stored once', async () => {
    const { t, key, conversations, stored } = await busy('4');
    const started = performance.now();
    let refusals = 0;
    const widget = async (conversationId: string, i: number) => {
      const input = { conversationId, content: `Can I return shoes? #${i}`, idempotencyKey: `widget-${i}-1` };
      for (;;) {
        const r = await post(t, key, input);
        if (!r.errors) return r.data.sendMessage;
        expect(r.errors[0]!.extensions).toEqual({ code: 'OVERLOADED', retryAfter: 1 });
        refusals += 1;
        // As a client should: Retry-After, with jitter so the retries do not arrive together again.
        await new Promise((resolve) => setTimeout(resolve, Number(r.retryAfter) * 1000 * (0.5 + Math.random())));
      }
    };
    const sent = await Promise.all(conversations.map(widget));
    // Measured here: 100 of 100 through in about 4 s, after some 170 refusals (none stored anything).
    expect(refusals).toBeGreaterThan(0);
    expect((performance.now() - started) / 1000).toBeLessThan(60);
    expect(sent.every((s) => s.reply !== null)).toBe(true);
    expect(await stored()).toEqual({ USER: 100, ASSISTANT: 100 });
  });

  /** A trigger that makes the database refuse the reply's row (SQLSTATE 57P03), as one that is restarting does. */
  async function refuseReplies(t: TestApp) {
    await t.prisma.$executeRawUnsafe(
      `CREATE FUNCTION refuse_reply() RETURNS trigger LANGUAGE plpgsql AS $$
       BEGIN IF NEW.role = 'ASSISTANT' THEN RAISE EXCEPTION 'not now' USING ERRCODE = '57P03'; END IF; RETURN NEW; END $$`,
    );
    await t.prisma.$executeRawUnsafe(`CREATE TRIGGER refuse_reply BEFORE INSERT ON "Message" FOR EACH ROW EXECUTE FUNCTION refuse_reply()`);
    return () => t.prisma.$executeRawUnsafe(`DROP TRIGGER refuse_reply ON "Message"`);
  }

  async function retriedOnce(t: TestApp, key: string, productId: string, input: Record<string, unknown>, first: Awaited<ReturnType<typeof post>>) {
    const retry = await post(t, key, input);
    expect(retry.errors).toBeUndefined();
    if (first.data?.sendMessage) expect(retry.data.sendMessage.message).toEqual(first.data.sendMessage.message);
    expect(retry.data.sendMessage.reply).toEqual({ id: expect.any(String), content: expect.any(String) });
    const stored = await t.prisma.message.findMany({ where: { conversation: { productId } }, select: { role: true } });
    expect(stored.map((m) => m.role).sort()).toEqual(['ASSISTANT', 'USER']);
    const conversation = await t.prisma.conversation.findFirstOrThrow({ where: { productId } });
    expect(conversation.messageCount).toBe(2);
  }

  /** A product and a conversation on a database that refuses replies; `input` sends a question with an idempotency key. */
  async function flaky(name: string, idempotencyKey: string) {
    const t = await app({});
    const { key, id: productId } = await t.product(name);
    const conversationId = (await t.gql(`mutation { startConversation(input: { sessionId: "flaky" }) { id } }`, { key })).data.startConversation.id;
    const allow = await refuseReplies(t);
    return { t, key, productId, allow, input: { conversationId, content: 'Where is my parcel?', idempotencyKey } };
  }

  it('the local engine: an exchange the database refuses stores nothing: 503 DATABASE_UNAVAILABLE; the retry stores both once', async () => {
    const { t, key, productId, allow, input } = await flaky('Flaky', 'parcel-1');

    // The question and its reply are one statement: refused together, nothing half-written.
    const first = await post(t, key, input);
    expect(first.status).toBe(503);
    expect(first.data).toBeNull();
    expect(first.errors).toEqual([
      expect.objectContaining({ path: ['sendMessage'], message: expect.stringMatching(/try again/), extensions: { code: 'DATABASE_UNAVAILABLE' } }),
    ]);
    expect(await t.prisma.message.count({ where: { conversation: { productId } } })).toBe(0);

    await allow();
    await retriedOnce(t, key, productId, input, first);
  });

  it('a provider engine (the question stored first): a refused reply is a retryable error on `reply`; the retry with the same key returns both, stored once', async () => {
    const { t, key, productId, allow, input } = await flaky('Flaky stream', 'parcel-2');
    // The path of a provider engine: the question is stored first, the reply when the answer comes.
    const answers = t.app.deps.answers as { answersFirst: boolean };
    answers.answersFirst = false;
    try {
      const first = await post(t, key, input);
      expect(first.status).toBe(200);
      expect(first.data.sendMessage).toEqual({ message: { id: expect.any(String), content: 'Where is my parcel?' }, reply: null });
      expect(first.errors).toEqual([
        expect.objectContaining({
          path: ['sendMessage', 'reply'],
          message: expect.stringMatching(/message was stored.*same idempotencyKey/),
          extensions: { code: 'DATABASE_UNAVAILABLE', retryAfter: 1, messageStored: true },
        }),
      ]);
      await allow();
      await retriedOnce(t, key, productId, input, first);
    } finally {
      answers.answersFirst = true;
    }
  });
});
