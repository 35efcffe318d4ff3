import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import type { Database } from '../../src/infra/db.js';
import { createAppWithOwnPool, createTestApp, type TestApp } from '../helpers/app.js';
import { createPostgresDatabase, type TestDatabase } from '../helpers/db.js';
import { gid, seedConversations } from '../helpers/fixtures.js';
import { CONVERSATION_EVENTS, disposeClients, eventually, openSse, uniquePrefix } from '../helpers/live.js';
import { sample } from '../helpers/metrics.js';
import { findPostgresBin, startPostgres, startStreamingReplica, type PostgresServer } from '../helpers/servers.js';

/**
 * DATABASE_REPLICA_URLS against a real hot standby made with pg_basebackup
 * from a primary of this file's own. Where each statement went is read from
 * the per-pool statement counters (what parley_db_statements_total shows);
 * lag is made deterministic by pausing WAL replay on the standby.
 */

const ci = process.env.CI === 'true';
const binaries = findPostgresBin() !== null;
if (!binaries && ci) throw new Error('CI=true but no PostgreSQL binaries: the read replica tests cannot run');
if (!binaries) console.warn('\n[parley tests] No PostgreSQL binaries: read replica tests are SKIPPED.\n');

// The shipped default: a check every 250 ms, and trust that lasts at least ~700 ms past a fresh check,
// which a request on a loaded CI machine fits in (400 ms left ~250 ms, and reads sometimes missed it).
const MAX_LAG_MS = 1_000;
const CHECK_MS = MAX_LAG_MS / 4;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const CONVERSATION = `query One($id: ID!) { conversation(id: $id) { id title messageCount } node(id: $id) { id } }`;

interface Routed {
  status: number;
  data: any;
  errors: any[] | undefined;
  /** Statements this request sent to each pool. */
  primary: number;
  replica: number;
}

interface Product {
  id: string;
  key: string;
  conversation: string;
}

describe.skipIf(!binaries)('read replicas: a real streaming replica', () => {
  let primary: PostgresServer;
  let replica: PostgresServer;
  let standby: pg.Client;
  let db: Database;
  let t: TestApp;
  let port: number;
  let env: Record<string, string>;
  let a: Product;
  let b: Product;
  let c: Product;

  const counts = () => Object.fromEntries(db.poolStats().map((p) => [p.pool, p.statements]));
  const usable = () => db.replicas()[0]!.usable;
  const gql = async (query: string, key: string, variables: Record<string, unknown> = {}): Promise<Routed> => {
    const before = counts();
    const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await res.json()) as { data: any; errors?: any[] };
    const after = counts();
    return {
      status: res.status,
      data: body.data,
      errors: body.errors,
      primary: after.primary! - before.primary!,
      replica: after['replica-0']! - before['replica-0']!,
    };
  };
  const read = (p: Product, conversation = p.conversation) => gql(CONVERSATION, p.key, { id: gid('Conversation', conversation) });
  /**
   * The monitor trusts the replica, and a check has just vouched for it: reads expected there are sent
   * right after, within the trust that check gave (PARLEY_REPLICA_MAX_LAG_MS past the sample before it).
   */
  const trusted = () =>
    eventually(
      () => {
        const [status] = db.replicas();
        return status!.usable && status!.checkedMsAgo !== null && status!.checkedMsAgo <= 40;
      },
      'a check that has just found the replica caught up',
      5_000,
    );
  /** Until the standby has replayed what the primary has now, and is trusted again. */
  const caughtUp = async () => {
    await sleep(MAX_LAG_MS);
    await trusted();
  };

  beforeAll(async () => {
    primary = await startPostgres({ replication: true });
    const started = performance.now();
    // Every statement the standby runs is logged: the last test reads them.
    replica = await startStreamingReplica(primary, { settings: { log_statement: 'all' } });
    console.log(`[replicas] hot standby from pg_basebackup -R -X stream accepting queries in ${Math.round(performance.now() - started)} ms`);
    standby = standbyClient(replica);
    await standby.connect();

    const created = await createPostgresDatabase(primary.url);
    const replicaUrl = new URL(created.url);
    replicaUrl.port = String(replica.port);
    // CREATE DATABASE reaches the standby through the WAL like everything else.
    await eventually(
      async () => (await standby.query('SELECT 1 FROM pg_database WHERE datname = $1', [created.url.split('/').pop()])).rowCount === 1,
      'the database on the standby',
    );
    env = {
      DATABASE_URL: created.url,
      DATABASE_REPLICA_URLS: replicaUrl.toString(),
      PARLEY_REPLICA_MAX_LAG_MS: String(MAX_LAG_MS),
      DATABASE_POOL_SIZE: '4',
      DATABASE_POOL_MIN: '1',
      // These tests follow where executed statements go; whole-response fills are tested on their own below.
      PARLEY_RESPONSE_CACHE: 'false',
    };
    ({ t, db } = await createAppWithOwnPool(env));
    port = (await t.app.start(0, '127.0.0.1')).port;

    const product = async (name: string): Promise<Product> => {
      const { id, key } = await t.product(name);
      const [seeded] = await seedConversations(t.prisma, id, { conversations: 1, messages: 2 });
      return { id, key, conversation: seeded!.id };
    };
    [a, b, c] = [await product('A'), await product('B'), await product('C')];
    await caughtUp();
    // Authentication is cached (filled from the primary): fill it now so requests below read only what they ask.
    for (const p of [a, b, c]) expect((await gql('{ viewer { name } }', p.key)).errors).toBeUndefined();
  });
  afterEach(async () => {
    await disposeClients();
    // A test that paused replay must not leave it paused for the next one.
    if ((await standby.query('SELECT pg_is_wal_replay_paused() AS paused')).rows[0]?.paused) await standby.query('SELECT pg_wal_replay_resume()');
  });
  afterAll(async () => {
    await standby?.end().catch(() => undefined);
    await t?.dispose();
    await db?.close();
    await replica?.dispose();
    await primary?.dispose();
  });

  it('reads an untouched product from the replica', async () => {
    await trusted();
    const result = await read(a);
    expect(result.errors).toBeUndefined();
    expect(result.data.conversation).toEqual({ id: gid('Conversation', a.conversation), title: 'Conversation 0', messageCount: 2 });
    expect(result).toMatchObject({ primary: 0, replica: 2 });
  });

  it('keeps tenancy on the replica: another product’s conversation is still not found', async () => {
    await trusted();
    const result = await read(b, a.conversation);
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({ conversation: null, node: null });
    expect(result).toMatchObject({ primary: 0, replica: 2 });
  });

  it('fills the cache from the primary, while the same request’s uncached reads go to the replica', async () => {
    await t.app.deps.cache.flush();
    await trusted();
    const result = await gql(`query($id: ID!) { conversations(first: 5) { edges { node { id } } } conversation(id: $id) { id } }`, b.key, {
      id: gid('Conversation', b.conversation),
    });
    expect(result.errors).toBeUndefined();
    expect(result.data.conversations.edges).toEqual([{ node: { id: gid('Conversation', b.conversation) } }]);
    // The key lookup and the first page are cache fills; conversation(id) is not cached.
    expect(result).toMatchObject({ primary: 2, replica: 1 });
  });

  it('fills the response cache from the primary: a response stored whole sees a row the paused replica does not have', async () => {
    const shared: TestDatabase = { db, url: undefined, dispose: async () => {} };
    const cached = await createTestApp(
      { name: 'postgres', available: true, open: async () => shared },
      { ...env, PARLEY_RESPONSE_CACHE: 'true' },
      { shared },
    );
    const cachedPort = (await cached.app.start(0, '127.0.0.1')).port;
    // conversation(id) has no resolver cache: without the pin this execution would read the replica.
    const ask = async (id: string) => {
      const res = await fetch(`http://127.0.0.1:${cachedPort}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${c.key}` },
        body: JSON.stringify({ query: `query($id: ID!) { conversation(id: $id) { title } }`, variables: { id: gid('Conversation', id) } }),
      });
      return ((await res.json()) as { data: any }).data.conversation?.title;
    };
    try {
      await trusted();
      await standby.query('SELECT pg_wal_replay_pause()');
      const added = await t.prisma.conversation.create({ data: { productId: c.id, sessionId: 'fill', title: 'Only on the primary' } });
      expect(await ask(added.id)).toBe('Only on the primary');
      expect(await ask(added.id)).toBe('Only on the primary');
      await t.prisma.conversation.delete({ where: { id: added.id } });
    } finally {
      await cached.dispose();
    }
  });

  it('a cache fill sees a row the paused replica does not have', async () => {
    await standby.query('SELECT pg_wal_replay_pause()');
    const added = await t.prisma.conversation.create({ data: { productId: b.id, sessionId: 'fill', title: 'Only on the primary' } });
    await t.app.deps.cache.flush();
    const result = await gql(`{ conversations(first: 5) { edges { node { id title } } } }`, b.key);
    expect(result.errors).toBeUndefined();
    expect(result.data.conversations.edges.map((e: any) => e.node.title)).toContain('Only on the primary');
    expect(result.replica).toBe(0);
    await t.prisma.conversation.delete({ where: { id: added.id } });
  });

  it('sends a mutation and every read after it to the primary: they see the write while replay is paused', async () => {
    await standby.query('SELECT pg_wal_replay_pause()');
    const sent = await gql(
      `mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "Still there?" }) { message { content conversation { id messageCount } } reply { role } } }`,
      a.key,
      { c: gid('Conversation', a.conversation) },
    );
    expect(sent.errors).toBeUndefined();
    // The stored message, read back by id right after its INSERT: only the primary has it.
    expect(sent.data.sendMessage.message.content).toBe('Still there?');
    expect(sent.data.sendMessage.reply.role).toBe('ASSISTANT');
    expect(sent.data.sendMessage.message.conversation.messageCount).toBe(4);
    expect(sent.replica).toBe(0);
    expect(sent.primary).toBeGreaterThanOrEqual(3);

    // The next request for the product is in its write window: the primary again, with the write.
    const after = await read(a);
    expect(after.data.conversation.messageCount).toBe(4);
    expect(after).toMatchObject({ primary: 2, replica: 0 });
  });

  it('runs a mutation wholly on the primary, reads before its first write included (setTyping only reads)', async () => {
    await caughtUp();
    const typed = await gql(`mutation($c: ID!) { setTyping(input: { conversationId: $c, isTyping: true }) }`, b.key, {
      c: gid('Conversation', b.conversation),
    });
    expect(typed.errors).toBeUndefined();
    expect(typed).toMatchObject({ primary: 1, replica: 0 });
    // The same read in a query goes to the replica.
    await trusted();
    expect(await read(b)).toMatchObject({ primary: 0, replica: 2 });
  });

  it('resolves subscription events from the primary (the event follows a write the replica may not have)', async () => {
    await caughtUp();
    const sse = await openSse(
      port,
      { authorization: `Bearer ${c.key}` },
      { query: CONVERSATION_EVENTS, variables: { id: gid('Conversation', c.conversation) } },
    );
    expect(sse.status).toBe(200);
    await standby.query('SELECT pg_wal_replay_pause()');
    const sent = await gql(`mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "Anyone?" }) { message { id } } }`, c.key, {
      c: gid('Conversation', c.conversation),
    });
    expect(sent.errors).toBeUndefined();
    const event = await sse.next();
    expect(event.errors).toBeUndefined();
    expect(event.data.conversationEvents).toMatchObject({ __typename: 'MessageAdded', message: { role: 'USER', content: 'Anyone?' } });
    sse.close();
  });

  it('pins a written product to the primary for PARLEY_REPLICA_MAX_LAG_MS; other products keep reading from the replica', async () => {
    await caughtUp();
    const started = await gql(`mutation { startConversation(input: { sessionId: "window" }) { id } }`, c.key);
    expect(started.errors).toBeUndefined();
    expect(started.replica).toBe(0);
    const written = Date.now();
    const same = await read(c);
    await trusted();
    const other = await read(b);
    expect(Date.now() - written).toBeLessThan(MAX_LAG_MS);
    expect(same).toMatchObject({ primary: 2, replica: 0 });
    expect(other).toMatchObject({ primary: 0, replica: 2 });
    await sleep(MAX_LAG_MS - (Date.now() - written) + 20);
    await trusted();
    expect(await read(c)).toMatchObject({ primary: 0, replica: 2 });
  });

  it('stops reading from a paused replica within two check intervals of the primary moving on, and resumes after', async () => {
    await caughtUp();
    await standby.query('SELECT pg_wal_replay_pause()');
    await t.prisma.conversation.create({ data: { productId: b.id, sessionId: 'lag', title: 'moves the primary on' } });
    const wrote = performance.now();
    await eventually(() => !usable(), 'the paused replica is no longer used', 5_000);
    const detectedMs = performance.now() - wrote;
    const during = await read(b);
    expect(during.errors).toBeUndefined();
    expect(during).toMatchObject({ primary: 2, replica: 0 });
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(sample(metrics, 'parley_db_replica_usable', { replica: 'replica-0' })).toBe(0);

    await standby.query('SELECT pg_wal_replay_resume()');
    const resumed = performance.now();
    await eventually(() => usable(), 'the replica takes reads again', 5_000);
    const backMs = performance.now() - resumed;
    console.log(
      `[replicas] check every ${CHECK_MS} ms: a paused replica unused ${Math.round(detectedMs)} ms after the primary moved on, used again ${Math.round(backMs)} ms after resume`,
    );
    // Two intervals with checks on time; whatever the checks do, trust expires PARLEY_REPLICA_MAX_LAG_MS
    // after the primary position it rests on (+ this test's 20 ms polling, which a busy event loop delays).
    expect(detectedMs).toBeLessThan(MAX_LAG_MS + 150);
    await trusted();
    expect(await read(b)).toMatchObject({ primary: 0, replica: 2 });
  });

  it('with the replica down every request succeeds from the primary, and /readyz stays ready', async () => {
    await caughtUp();
    await replica.stop();
    try {
      const results = await Promise.all([a, b, c, a, b, c].map((p) => read(p)));
      for (const result of results) {
        expect(result.errors).toBeUndefined();
        expect(result.data.conversation).not.toBeNull();
      }
      await eventually(() => !usable(), 'the stopped replica is not used');
      expect(db.replicas()[0]!.error).toBeTruthy();
      const ready = await fetch(`http://127.0.0.1:${port}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ ok: true, replicas: [{ name: 'replica-0', usable: false }] });
      expect(await read(b)).toMatchObject({ primary: 2, replica: 0 });
    } finally {
      await replica.start();
    }
    await standby.end().catch(() => undefined);
    standby = standbyClient(replica);
    await standby.connect();
    // Trust lasts PARLEY_REPLICA_MAX_LAG_MS past each check: on a busy machine it can lapse between the
    // check seen here and the read, which then goes to the primary, as it should. Reads come back to it.
    const back = await eventually(
      async () => {
        const result = await read(b);
        return result.replica > 0 && result;
      },
      'reads go to the replica once it is back',
      10_000,
    );
    expect(back).toMatchObject({ primary: 0, replica: 2 });
  });

  it('shows the pools and the replica in /metrics and /readyz', async () => {
    await caughtUp();
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    for (const pool of ['primary', 'replica-0']) {
      expect(sample(text, 'parley_db_pool_max', { pool })).toBe(4);
      expect(sample(text, 'parley_db_pool_connections', { pool, state: 'idle' })).toBeGreaterThanOrEqual(0);
      expect(sample(text, 'parley_db_pool_connections', { pool, state: 'busy' })).toBeGreaterThanOrEqual(0);
      expect(sample(text, 'parley_db_pool_waiting', { pool })).toBe(0);
      expect(sample(text, 'parley_db_statements_total', { pool })).toBeGreaterThan(0);
    }
    expect(sample(text, 'parley_db_replica_usable', { replica: 'replica-0' })).toBe(1);
    expect(sample(text, 'parley_db_replica_lag_bytes', { replica: 'replica-0' })).toBeGreaterThanOrEqual(0);
    const ready = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as any;
    expect(ready.pools.map((p: any) => p.pool)).toEqual(['primary', 'replica-0']);
    expect(ready.replicas).toEqual([expect.objectContaining({ name: 'replica-0', usable: true, lagBytes: expect.any(Number) })]);
    // Credentials never appear in the description (the URLs have none here, the format is what is checked).
    expect(db.description).toMatch(/^PostgreSQL 127\.0\.0\.1:\d+\/\w+ \(pool 4, 1 read replica\(s\): 127\.0\.0\.1:\d+\/\w+\)$/);
  });

  it.skipIf(!inject('redisUrl'))('pins a product written on another node (announced through Redis) to the primary there too', async () => {
    await caughtUp();
    const prefix = uniquePrefix('replicas');
    const shared: TestDatabase = { db, url: undefined, dispose: async () => undefined };
    const variant = { name: 'postgres' as const, available: true, open: async () => shared };
    const withRedis = { ...env, REDIS_URL: inject('redisUrl'), PARLEY_REDIS_PREFIX: prefix };
    const writer = await createTestApp(variant, withRedis, { shared });
    const reader = await createTestApp(variant, withRedis, { shared });
    try {
      const readerPort = (await reader.app.start(0, '127.0.0.1')).port;
      const announced = new Promise<void>((resolve) =>
        reader.app.deps.cache.onBump((tags) => tags.includes(`product:${b.id}:conversations`) && resolve()),
      );
      expect((await writer.gql(`mutation { startConversation(input: { sessionId: "elsewhere" }) { id } }`, { key: b.key })).errors).toBeUndefined();
      await announced;
      const before = counts();
      const res = await fetch(`http://127.0.0.1:${readerPort}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${b.key}` },
        body: JSON.stringify({ query: CONVERSATION, variables: { id: gid('Conversation', b.conversation) } }),
      });
      expect(((await res.json()) as any).errors).toBeUndefined();
      const after = counts();
      expect(after['replica-0']! - before['replica-0']!).toBe(0);
    } finally {
      await writer.dispose();
      await reader.dispose();
    }
  });

  it('never sent a statement that writes or locks rows to the replica (its own log of every statement)', () => {
    const statements = loggedStatements(replica.log());
    // Not vacuous: the app's reads are there.
    expect(statements.some((s) => /FROM "public"\."Conversation"/.test(s))).toBe(true);
    const writes = statements.filter((s) =>
      /\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE|COPY)\b|\bFOR\s+(NO\s+KEY\s+UPDATE|UPDATE|SHARE|KEY\s+SHARE)\b|pg_advisory/i.test(s),
    );
    expect(writes).toEqual([]);
  });
});

/** A connection to the standby, for pausing replay; the test stops the server under it. */
function standbyClient(replica: PostgresServer): pg.Client {
  const client = new pg.Client({ connectionString: replica.url });
  client.on('error', () => undefined);
  return client;
}

/** The statements in a PostgreSQL log written with log_statement=all (continuation lines start with a tab). */
function loggedStatements(log: string): string[] {
  const out: string[] = [];
  let current: string | undefined;
  for (const line of log.split('\n')) {
    const start = /LOG:\s+(?:statement|execute [^:]*):\s(.*)$/.exec(line);
    if (start) {
      if (current !== undefined) out.push(current);
      current = start[1]!;
    } else if (current !== undefined && line.startsWith('\t')) {
      current += `\n${line.slice(1)}`;
    } else if (current !== undefined) {
      out.push(current);
      current = undefined;
    }
  }
  if (current !== undefined) out.push(current);
  return out;
}
