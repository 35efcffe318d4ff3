import { decodeGlobalID } from '@pothos/plugin-relay';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../../src/infra/db.js';
import { sweepExpiredKeys } from '../../src/services/idempotency.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { eventually } from '../helpers/live.js';
import { databaseVariants, describeEachDatabase, type TestDatabase } from '../helpers/db.js';

/**
 * Idempotency keys (issue 13 point 11): a client that retries sendMessage,
 * startConversation or submitFeedback with the same `idempotencyKey` within a
 * day gets the first result back and nothing is written again — whichever node
 * the retry reaches, and when the copies arrive at the same moment.
 */

const SEND = /* GraphQL */ `
  mutation($input: SendMessageInput!) {
    sendMessage(input: $input) { message { id content conversation { messageCount } } reply { id content } replyId }
  }
`;
const START = /* GraphQL */ `mutation($input: StartConversationInput!) { startConversation(input: $input) { id sessionId title } }`;
const FEEDBACK = /* GraphQL */ `mutation($input: SubmitFeedbackInput!) { submitFeedback(input: $input) { id rating comment } }`;

describeEachDatabase('idempotency keys', (variant) => {
  let t: TestApp;
  let key: string;
  let productId: string;
  let conversationId: string;

  beforeAll(async () => {
    t = await createTestApp(variant);
    ({ key, id: productId } = await t.product('Idempotent'));
    await t.gql(`mutation { addKnowledge(input: { title: "Returns", content: "Shoes can be returned within 30 days." }) { id } }`, { key });
    conversationId = (await t.gql(`mutation { startConversation(input: { sessionId: "idem" }) { id } }`, { key })).data.startConversation.id;
  });
  afterAll(() => t?.dispose());

  const send = (input: Record<string, unknown>, as = key) => t.gql(SEND, { key: as, variables: { input: { conversationId, ...input } } });
  const stored = (content: string) => t.prisma.message.count({ where: { content, conversation: { productId } } });

  it('sendMessage: a retry with the same key returns the same message and reply and stores nothing again', async () => {
    const first = await send({ content: 'Can I return shoes?', idempotencyKey: 'send-1' });
    expect(first.errors).toBeUndefined();
    const retry = await send({ content: 'Can I return shoes?', idempotencyKey: 'send-1' });
    expect(retry.errors).toBeUndefined();
    expect(retry.data.sendMessage.message.id).toBe(first.data.sendMessage.message.id);
    expect(retry.data.sendMessage.reply).toEqual(first.data.sendMessage.reply);
    expect(retry.data.sendMessage.replyId).toBe(first.data.sendMessage.replyId);
    expect(await stored('Can I return shoes?')).toBe(1);
    // The question and its reply: counted once.
    expect(retry.data.sendMessage.message.conversation.messageCount).toBe(first.data.sendMessage.message.conversation.messageCount);
  });

  it('costs no statement more: the key is claimed in the INSERT of the message; a retry reads the claim and the rows', async () => {
    const without = await send({ content: 'How many statements without a key?' });
    const withKey = await send({ content: 'How many statements with a key?', idempotencyKey: 'sql-1' });
    expect(withKey.errors).toBeUndefined();
    const inserts = (sql: string[]) => sql.filter((s) => /INSERT INTO "Message"/.test(s));
    expect(withKey.sql.length).toBe(without.sql.length);
    // The question and its reply: one statement, which claims the key.
    expect(inserts(withKey.sql)).toHaveLength(1);
    expect(inserts(withKey.sql)[0]).toMatch(/INSERT INTO "IdempotencyKey"/);
    const retry = await send({ content: 'How many statements with a key?', idempotencyKey: 'sql-1' });
    expect(inserts(retry.sql)).toHaveLength(1);
    expect(retry.sql.length).toBeLessThanOrEqual(5);
  });

  it('sendMessage: the same key sent 5 times at once stores one message and one reply', async () => {
    const results = await Promise.all(Array.from({ length: 5 }, () => send({ content: 'Five at once?', idempotencyKey: 'send-5x' })));
    for (const r of results) expect(r.errors).toBeUndefined();
    expect(new Set(results.map((r) => r.data.sendMessage.message.id)).size).toBe(1);
    expect(new Set(results.map((r) => r.data.sendMessage.reply.id)).size).toBe(1);
    expect(await stored('Five at once?')).toBe(1);
    const replies = await t.prisma.message.count({ where: { id: { in: results.map((r) => decodeId(r.data.sendMessage.reply.id)) } } });
    expect(replies).toBe(1);
  });

  it('sendMessage: a retry after the reply was not stored produces it under the announced id, once', async () => {
    const first = await send({ content: 'Reply lost?', idempotencyKey: 'send-lost' });
    const replyId = decodeId(first.data.sendMessage.reply.id);
    // As when the reply's write timed out: the question is stored, its reply is not.
    await t.prisma.$executeRawUnsafe(`UPDATE "Conversation" SET "lastMessageId" = NULL WHERE "lastMessageId" = $1::uuid`, replyId);
    await t.prisma.message.delete({ where: { id: replyId } });
    const retry = await send({ content: 'Reply lost?', idempotencyKey: 'send-lost' });
    expect(retry.errors).toBeUndefined();
    expect(retry.data.sendMessage.message.id).toBe(first.data.sendMessage.message.id);
    expect(retry.data.sendMessage.reply.id).toBe(first.data.sendMessage.reply.id);
    expect(await stored('Reply lost?')).toBe(1);
  });

  it('sendMessage with stream: true: a retry returns the same message and replyId and starts no second reply', async () => {
    const STREAM = `mutation($input: SendMessageInput!) { sendMessage(input: $input) { message { id } reply { id } replyId } }`;
    const input = { conversationId, content: 'Streamed once?', stream: true, idempotencyKey: 'stream-1' };
    const first = await t.gql(STREAM, { key, variables: { input } });
    const retry = await t.gql(STREAM, { key, variables: { input } });
    expect(retry.errors).toBeUndefined();
    expect(retry.data.sendMessage).toEqual({ ...first.data.sendMessage, reply: null });
    const replyId = decodeId(first.data.sendMessage.replyId);
    await eventually(async () => (await t.prisma.message.count({ where: { id: replyId } })) === 1, 'the streamed reply stored');
    expect(await stored('Streamed once?')).toBe(1);
  });

  it('the same key with other content is BAD_USER_INPUT and writes nothing', async () => {
    await send({ content: 'Original question', idempotencyKey: 'send-other' });
    const other = await send({ content: 'Another question', idempotencyKey: 'send-other' });
    expect(other.data).toBeNull();
    expect(other.errors).toEqual([
      expect.objectContaining({
        message: expect.stringMatching(/idempotencyKey .*another request/),
        extensions: { code: 'BAD_USER_INPUT', field: 'input.idempotencyKey' },
      }),
    ]);
    expect(await stored('Another question')).toBe(0);
    // A key is one request, whichever mutation: reused for another mutation it is refused too.
    const started = await t.gql(START, { key, variables: { input: { sessionId: 's', idempotencyKey: 'send-other' } } });
    expect(started.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'input.idempotencyKey' });
  });

  it("another product's key never matches: the same key writes anew for it", async () => {
    const other = await t.product('Other product');
    const theirs = (await t.gql(`mutation { startConversation(input: { sessionId: "x" }) { id } }`, { key: other.key })).data.startConversation.id;
    const mine = await send({ content: 'Shared key', idempotencyKey: 'shared-key' });
    const their = await t.gql(SEND, {
      key: other.key,
      variables: { input: { conversationId: theirs, content: 'Shared key', idempotencyKey: 'shared-key' } },
    });
    expect(their.errors).toBeUndefined();
    expect(their.data.sendMessage.message.id).not.toBe(mine.data.sendMessage.message.id);
    // And a key of another product cannot be used to read its result.
    const probe = await send({ content: 'Shared key', idempotencyKey: 'shared-key' });
    expect(probe.data.sendMessage.message.id).toBe(mine.data.sendMessage.message.id);
  });

  it('a key older than a day no longer matches: the request writes anew', async () => {
    const first = await send({ content: 'Yesterday', idempotencyKey: 'old-key' });
    await t.prisma.$executeRawUnsafe(
      `UPDATE "IdempotencyKey" SET "createdAt" = now() - interval '25 hours' WHERE "productId" = $1::uuid AND key = 'old-key'`,
      productId,
    );
    const again = await send({ content: 'Yesterday', idempotencyKey: 'old-key' });
    expect(again.errors).toBeUndefined();
    expect(again.data.sendMessage.message.id).not.toBe(first.data.sendMessage.message.id);
    expect(await stored('Yesterday')).toBe(2);
    // …and the key is live again from now on.
    const retry = await send({ content: 'Yesterday', idempotencyKey: 'old-key' });
    expect(retry.data.sendMessage.message.id).toBe(again.data.sendMessage.message.id);
  });

  it('the sweep deletes keys older than a day, and only those', async () => {
    await send({ content: 'Swept?', idempotencyKey: 'sweep-old' });
    await send({ content: 'Kept?', idempotencyKey: 'sweep-new' });
    await t.prisma.$executeRawUnsafe(`UPDATE "IdempotencyKey" SET "createdAt" = now() - interval '2 days' WHERE key = 'sweep-old'`);
    expect(await sweepExpiredKeys(t.prisma)).toBeGreaterThanOrEqual(1);
    const left = await t.prisma.$queryRawUnsafe<{ key: string }[]>(`SELECT key FROM "IdempotencyKey" WHERE key LIKE 'sweep-%'`);
    expect(left.map((r) => r.key)).toEqual(['sweep-new']);
  });

  it('startConversation: the same key returns the same conversation', async () => {
    const input = { sessionId: 'idem-start', title: 'Once', idempotencyKey: 'start-1' };
    const results = await Promise.all(Array.from({ length: 5 }, () => t.gql(START, { key, variables: { input } })));
    for (const r of results) expect(r.errors).toBeUndefined();
    expect(new Set(results.map((r) => r.data.startConversation.id)).size).toBe(1);
    expect(await t.prisma.conversation.count({ where: { productId, sessionId: 'idem-start' } })).toBe(1);
    const other = await t.gql(START, { key, variables: { input: { ...input, title: 'Twice' } } });
    expect(other.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('submitFeedback: the same key returns the first rating and writes nothing again', async () => {
    const sent = await send({ content: 'Rate me' });
    const messageId = sent.data.sendMessage.reply.id;
    const input = { messageId, rating: 'UP', comment: 'good', idempotencyKey: 'fb-1' };
    const first = await t.gql(FEEDBACK, { key, variables: { input } });
    expect(first.errors).toBeUndefined();
    const before = await t.prisma.feedback.findFirstOrThrow({ where: { messageId: decodeId(messageId) } });
    const retry = await t.gql(FEEDBACK, { key, variables: { input } });
    expect(retry.errors).toBeUndefined();
    expect(retry.data.submitFeedback).toEqual(first.data.submitFeedback);
    const after = await t.prisma.feedback.findFirstOrThrow({ where: { messageId: decodeId(messageId) } });
    // Not written again: a second write would have moved createdAt.
    expect(after.createdAt).toEqual(before.createdAt);
    const other = await t.gql(FEEDBACK, { key, variables: { input: { ...input, rating: 'DOWN' } } });
    expect(other.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('refuses a key that is empty, longer than 100 characters or not printable', async () => {
    for (const idempotencyKey of ['', 'x'.repeat(101), 'tab\there', 'é-key']) {
      const r = await send({ content: 'Bad key', idempotencyKey });
      expect(r.errors?.[0]?.extensions).toEqual({ code: 'BAD_USER_INPUT', field: 'input.idempotencyKey' });
    }
    expect(await stored('Bad key')).toBe(0);
    expect((await send({ content: 'Good key', idempotencyKey: 'x'.repeat(100) })).errors).toBeUndefined();
  });
});

const postgres = databaseVariants().find((v) => v.name === 'postgres')!;

describe.skipIf(!postgres.available)('idempotency keys across nodes [postgres]', () => {
  let a: TestApp;
  let b: TestApp;
  let key: string;

  beforeAll(async () => {
    a = await createTestApp(postgres);
    // Node B: its own pool and its own process-local caches, on the same PostgreSQL database.
    const db = await openDatabase({ url: a.database.url!, poolSize: 5 });
    const shared: TestDatabase = { db, url: a.database.url, dispose: () => db.close() };
    b = await createTestApp({ name: 'postgres', available: true, open: async () => shared }, {}, { shared });
    ({ key } = await a.product('Two nodes'));
  });
  afterAll(async () => {
    await b?.dispose();
    await b?.database.db.close();
    await a?.dispose();
  });

  it('a retry that reaches another node returns the first result', async () => {
    const conversation = await a.gql(START, { key, variables: { input: { sessionId: 'nodes', idempotencyKey: 'start-ab' } } });
    const again = await b.gql(START, { key, variables: { input: { sessionId: 'nodes', idempotencyKey: 'start-ab' } } });
    expect(again.data.startConversation.id).toBe(conversation.data.startConversation.id);
    const conversationId = conversation.data.startConversation.id;
    const input = { conversationId, content: 'Across nodes?', idempotencyKey: 'send-ab' };
    // Sent to both nodes at once, then retried on each.
    const sent = await Promise.all([a, b, a, b].map((node) => node.gql(SEND, { key, variables: { input } })));
    for (const r of sent) expect(r.errors).toBeUndefined();
    expect(new Set(sent.map((r) => r.data.sendMessage.message.id)).size).toBe(1);
    expect(new Set(sent.map((r) => r.data.sendMessage.reply.id)).size).toBe(1);
    expect(await a.prisma.message.count({ where: { content: 'Across nodes?' } })).toBe(1);
    expect(await a.prisma.message.count({ where: { conversationId: decodeId(conversationId) } })).toBe(2);
  });
});

const decodeId = (globalId: string) => decodeGlobalID(globalId).id;
