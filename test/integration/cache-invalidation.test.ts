import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase, type Database } from '../../src/infra/db.js';
import { newSqlScope, runInSqlScope } from '../../src/infra/sql-stats.js';
import { createProduct } from '../../src/services/products.js';
import { recordingLogger, TEST_ADMIN_TOKEN } from '../helpers/app.js';
import { createPostgresDatabase } from '../helpers/db.js';
import { seedConversations, gid } from '../helpers/fixtures.js';

// Every mutation, then every cached read: the next read shows the write. Once
// on one embedded node (L1 only), once with two nodes on one PostgreSQL and one
// Redis, writing on A and reading on B right after.

interface Node {
  app: App;
  gql(query: string, variables?: Record<string, unknown>, auth?: { key?: string; admin?: boolean }): Promise<any>;
  dispose(): Promise<void>;
}

async function node(db: Database, env: Record<string, string>, ownsDb: boolean): Promise<Node> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-cache-'));
  const config = loadConfig({ NODE_ENV: 'test', PARLEY_DATA_DIR: dataDir, PARLEY_ADMIN_TOKEN: TEST_ADMIN_TOKEN, PARLEY_DEMO: 'false', ...env });
  const app = await buildApp(config, { db, log: recordingLogger().log });
  return {
    app,
    gql: async (query, variables, auth = {}) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (auth.key) headers.authorization = `Bearer ${auth.key}`;
      if (auth.admin) headers['x-admin-token'] = TEST_ADMIN_TOKEN;
      const response = await runInSqlScope(newSqlScope(), () =>
        app.yoga.fetch('http://parley.test/graphql', { method: 'POST', headers, body: JSON.stringify({ query, variables }) }),
      );
      const body = (await response.json()) as { data: any; errors?: unknown[] };
      expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
      return body.data;
    },
    dispose: async () => {
      await app.stop();
      if (ownsDb) await db.close();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const READS = {
  viewer: `{ viewer { name keyPrefix stats { conversationCount messageCount feedbackUp feedbackDown } knowledge(first: 20) { edges { node { id title } } } } }`,
  search: `query($q: String!) { searchKnowledge(query: $q) { entry { id title } } }`,
  conversations: `{ conversations(first: 20) { edges { node { id title messageCount lastMessage { content } messages(last: 5) { edges { node { id content feedback { rating comment } } } } } } } }`,
};

function scenarios(setup: () => { writer: Node; reader: Node; key: () => string; setKey(k: string): void; productId: () => string }) {
  const read = async (name: keyof typeof READS, variables?: Record<string, unknown>) => {
    const { reader, key } = setup();
    return reader.gql(READS[name], variables, { key: key() });
  };
  const write = (query: string, variables?: Record<string, unknown>, admin = false) => {
    const { writer, key } = setup();
    return writer.gql(query, variables, admin ? { admin: true } : { key: key() });
  };
  const warm = async () => {
    await read('viewer');
    await read('search', { q: 'parcel' });
    await read('conversations');
  };

  it('addKnowledge → viewer.knowledge and searchKnowledge', async () => {
    await warm();
    await write(`mutation { addKnowledge(input: { title: "Parcel lockers", content: "Pick up your parcel at a locker." }) { id } }`);
    expect((await read('viewer')).viewer.knowledge.edges.map((e: any) => e.node.title)).toContain('Parcel lockers');
    expect((await read('search', { q: 'parcel' })).searchKnowledge.map((h: any) => h.entry.title)).toContain('Parcel lockers');
  });

  it('addKnowledgeBatch → viewer.knowledge and searchKnowledge', async () => {
    await warm();
    await write(`mutation { addKnowledgeBatch(input: { entries: [{ title: "Gift wrap", content: "We wrap parcels as gifts." }] }) { id } }`);
    expect((await read('viewer')).viewer.knowledge.edges.map((e: any) => e.node.title)).toContain('Gift wrap');
    expect((await read('search', { q: 'parcel' })).searchKnowledge.map((h: any) => h.entry.title)).toContain('Gift wrap');
  });

  it('updateKnowledge → viewer.knowledge and searchKnowledge', async () => {
    await warm();
    const id = (await read('viewer')).viewer.knowledge.edges.find((e: any) => e.node.title === 'Gift wrap').node.id;
    await write(`mutation($id: ID!) { updateKnowledge(input: { id: $id, title: "Gift wrapping" }) { id } }`, { id });
    expect((await read('viewer')).viewer.knowledge.edges.map((e: any) => e.node.title)).toContain('Gift wrapping');
    expect((await read('search', { q: 'parcel' })).searchKnowledge.map((h: any) => h.entry.title)).toContain('Gift wrapping');
  });

  it('deleteKnowledge → viewer.knowledge and searchKnowledge', async () => {
    await warm();
    const id = (await read('viewer')).viewer.knowledge.edges.find((e: any) => e.node.title === 'Parcel lockers').node.id;
    await write(`mutation($id: ID!) { deleteKnowledge(id: $id) }`, { id });
    expect((await read('viewer')).viewer.knowledge.edges.map((e: any) => e.node.id)).not.toContain(id);
    expect((await read('search', { q: 'parcel' })).searchKnowledge.map((h: any) => h.entry.id)).not.toContain(id);
  });

  it('startConversation → conversations and stats', async () => {
    await warm();
    const before = (await read('viewer')).viewer.stats.conversationCount;
    await write(`mutation { startConversation(input: { sessionId: "s-new", title: "Brand new" }) { id } }`);
    expect((await read('conversations')).conversations.edges[0].node.title).toBe('Brand new');
    expect((await read('viewer')).viewer.stats.conversationCount).toBe(before + 1);
  });

  it('sendMessage → conversations (order, counters, lastMessage, messages) and stats', async () => {
    await warm();
    const list = (await read('conversations')).conversations.edges;
    const oldest = list.at(-1).node;
    const messagesBefore = (await read('viewer')).viewer.stats.messageCount;
    const sent = await write(
      `mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "Fresh question" }) { message { id } reply { content } } }`,
      { c: oldest.id },
    );
    const replyContent = sent.sendMessage.reply.content;
    // The question and the assistant's reply to it.
    const top = (await read('conversations')).conversations.edges[0].node;
    expect(top.id).toBe(oldest.id);
    expect(top.messageCount).toBe(oldest.messageCount + 2);
    expect(top.lastMessage.content).toBe(replyContent);
    expect(top.messages.edges.slice(-2).map((e: any) => e.node.content)).toEqual(['Fresh question', replyContent]);
    expect((await read('viewer')).viewer.stats.messageCount).toBe(messagesBefore + 2);
  });

  it('submitFeedback → nested feedback in conversations, and stats', async () => {
    await warm();
    const conversations = (await read('conversations')).conversations.edges.map((e: any) => e.node);
    const withReply = conversations.find((c: any) => c.messages.edges.some((e: any) => e.node.content.startsWith('Answer')));
    const reply = withReply.messages.edges.map((e: any) => e.node).find((m: any) => m.content.startsWith('Answer'));
    const stats = (await read('viewer')).viewer.stats;
    await write(`mutation($m: ID!) { submitFeedback(input: { messageId: $m, rating: UP, comment: "spot on" }) { id } }`, { m: reply.id });
    const after = (await read('conversations')).conversations.edges.map((e: any) => e.node);
    const rated = after.flatMap((c: any) => c.messages.edges.map((e: any) => e.node)).find((m: any) => m.id === reply.id);
    expect(rated.feedback).toEqual({ rating: 'UP', comment: 'spot on' });
    expect(reply.feedback).toBeNull(); // seeded without ratings
    expect((await read('viewer')).viewer.stats.feedbackUp).toBe(stats.feedbackUp + 1);
  });

  it('rotateProductKey → the old key stops working on every node at once, viewer.keyPrefix moves', async () => {
    const { productId, setKey, key } = setup();
    await warm();
    const old = key();
    const rotated = await write(
      `mutation($id: ID!) { rotateProductKey(id: $id) { key product { keyPrefix } } }`,
      { id: gid('Product', productId()) },
      true,
    );
    const { reader } = setup();
    const refused = await reader.app.yoga.fetch('http://parley.test/graphql', {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${old}` },
      body: JSON.stringify({ query: '{ viewer { id } }' }),
    });
    expect(refused.status).toBe(401);
    setKey(rotated.rotateProductKey.key);
    expect((await read('viewer')).viewer.keyPrefix).toBe(rotated.rotateProductKey.product.keyPrefix);
  });
}

async function seed(db: Database) {
  const { product, key } = await createProduct(db.prisma, { name: 'Cache shop' });
  await db.prisma.knowledgeEntry.create({ data: { productId: product.id, title: 'Parcel tracking', content: 'Track your parcel online.' } });
  await seedConversations(db.prisma, product.id, { conversations: 4, messages: 4, feedbackEvery: 0 });
  return { productId: product.id, key };
}

describe('every mutation invalidates what it changes — one embedded node (L1 only)', () => {
  let only: Node;
  let key = '';
  let productId = '';
  beforeAll(async () => {
    const db = await openDatabase({ dataDir: 'memory://' });
    only = await node(db, {}, true);
    ({ key, productId } = await seed(db));
  });
  afterAll(() => only?.dispose());
  scenarios(() => ({ writer: only, reader: only, key: () => key, setKey: (k) => (key = k), productId: () => productId }));
});

const postgresUrl = inject('postgresUrl');
const redisUrl = inject('redisUrl');

describe.skipIf(!postgresUrl || !redisUrl)('every mutation invalidates what it changes — two nodes on Redis, write on A, read on B', () => {
  let a: Node;
  let b: Node;
  let key = '';
  let productId = '';
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const created = await createPostgresDatabase(postgresUrl);
    drop = created.drop;
    const env = { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: `ci${randomBytes(4).toString('hex')}:` };
    a = await node(await openDatabase({ url: created.url, poolSize: 3 }), env, true);
    b = await node(await openDatabase({ url: created.url, poolSize: 3 }), env, true);
    ({ key, productId } = await seed(a.app.deps.db));
  });
  afterAll(async () => {
    await a?.dispose();
    await b?.dispose();
    await drop?.();
  });
  scenarios(() => ({ writer: a, reader: b, key: () => key, setKey: (k) => (key = k), productId: () => productId }));
});
