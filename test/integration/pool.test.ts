import pg from 'pg';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { createAppWithOwnPool, type TestApp } from '../helpers/app.js';
import { createPostgresDatabase } from '../helpers/db.js';
import { gid, seedConversations } from '../helpers/fixtures.js';
import { eventually } from '../helpers/live.js';
import { sample } from '../helpers/metrics.js';

/**
 * The PostgreSQL pool as configured by DATABASE_POOL_* and
 * DATABASE_STATEMENT_TIMEOUT_MS and DATABASE_PREPARED_STATEMENTS: connections opened before the app is ready,
 * a bounded wait for a connection that fails clearly, the statement timeout
 * on every connection, and the pool in /metrics.
 */

const postgresUrl = inject('postgresUrl');

describe.skipIf(!postgresUrl)('database pool [postgres]', () => {
  const cleanup: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const dispose of cleanup.splice(0).reverse()) await dispose();
  });

  /** An app on a fresh database, its pool opened from the environment as in production. */
  async function app(env: Record<string, string>): Promise<{ t: TestApp; url: string }> {
    const created = await createPostgresDatabase(postgresUrl);
    const { t, dispose } = await createAppWithOwnPool({ DATABASE_URL: created.url, ...env });
    cleanup.push(async () => {
      await dispose();
      await created.drop();
    });
    return { t, url: created.url };
  }

  /** Parley's connections to this database, as the server sees them. */
  async function serverSide(url: string): Promise<number> {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      const { rows } = await client.query<{ n: number }>(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'parley'`,
      );
      return rows[0]!.n;
    } finally {
      await client.end();
    }
  }

  it('opens DATABASE_POOL_MIN connections before the app is ready, keeps them idle, and reports them', async () => {
    const { t, url } = await app({ DATABASE_POOL_SIZE: '6', DATABASE_POOL_MIN: '3', DATABASE_IDLE_TIMEOUT_MS: '1000' });
    // No request yet: buildApp has returned, so /readyz could answer now.
    expect(await serverSide(url)).toBeGreaterThanOrEqual(3);
    expect(t.app.deps.db.poolStats()).toEqual([{ pool: 'primary', total: 3, idle: 3, waiting: 0, max: 6, statements: expect.any(Number) }]);

    // A burst opens more; past DATABASE_IDLE_TIMEOUT_MS the pool is back to its minimum, not below.
    await Promise.all(Array.from({ length: 6 }, () => t.prisma.$queryRawUnsafe('SELECT pg_sleep(0.05)::text')));
    expect(t.app.deps.db.poolStats()[0]!.total).toBe(6);
    await eventually(() => t.app.deps.db.poolStats()[0]!.total === 3, 'idle connections above the minimum closed', 5_000);
    expect(await serverSide(url)).toBe(3);

    const port = (await t.app.start(0, '127.0.0.1')).port;
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(sample(text, 'parley_db_pool_connections', { pool: 'primary', state: 'idle' })).toBe(3);
    expect(sample(text, 'parley_db_pool_connections', { pool: 'primary', state: 'busy' })).toBe(0);
    expect(sample(text, 'parley_db_pool_waiting', { pool: 'primary' })).toBe(0);
    expect(sample(text, 'parley_db_pool_max', { pool: 'primary' })).toBe(6);
    expect(sample(text, 'parley_db_statements_total', { pool: 'primary' })).toBeGreaterThan(0);
    const ready = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as any;
    expect(ready).toEqual({ ok: true, database: 'ok', migrations: 'applied', pools: [{ pool: 'primary', total: 3, idle: 3, waiting: 0, max: 6 }] });
  });

  it('fails a request that waited DATABASE_POOL_TIMEOUT_MS for a connection with DATABASE_UNAVAILABLE, then recovers', async () => {
    const { t } = await app({ DATABASE_POOL_SIZE: '1', DATABASE_POOL_MIN: '1', DATABASE_POOL_TIMEOUT_MS: '300' });
    const product = await t.product('Pool');
    const [conversation] = await seedConversations(t.prisma, product.id, { conversations: 1, messages: 2 });
    const query = `query($id: ID!) { conversation(id: $id) { messageCount } }`;
    const variables = { id: gid('Conversation', conversation!.id) };
    expect((await t.gql(query, { key: product.key, variables })).data.conversation.messageCount).toBe(2);

    // The only connection is held by a transaction until the test lets it go.
    let release!: () => void;
    let holding!: () => void;
    const held = new Promise<void>((resolve) => (holding = resolve));
    const transaction = t.prisma.$transaction(
      async (tx) => {
        await tx.$queryRawUnsafe('SELECT 1');
        holding();
        await new Promise<void>((resolve) => (release = resolve));
      },
      { timeout: 10_000 },
    );
    await held;
    const started = performance.now();
    // Another document than the one above, whose whole response is cached (and would be served).
    const failed = await t.gql(`query($id: ID!) { conversation(id: $id) { messageCount title } }`, { key: product.key, variables });
    const waitedMs = performance.now() - started;
    // Authentication that needs the database (its cached lookup gone) fails the same way.
    await t.app.deps.cache.flush();
    const unauthenticated = await t.gql(query, { key: product.key, variables });
    release();
    await transaction;
    expect(unauthenticated.errors).toEqual([expect.objectContaining({ extensions: { code: 'DATABASE_UNAVAILABLE' } })]);

    expect(failed.status).toBe(200);
    expect(failed.data).toEqual({ conversation: null });
    expect(failed.errors).toEqual([
      expect.objectContaining({
        path: ['conversation'],
        message: expect.stringMatching(/database is unavailable/),
        extensions: { code: 'DATABASE_UNAVAILABLE' },
      }),
    ]);
    expect(waitedMs).toBeGreaterThanOrEqual(290);
    expect(waitedMs).toBeLessThan(3_000);
    expect(t.logged.some((l) => l.level === 'warn' && l.msg === 'database unavailable')).toBe(true);
    expect((await t.gql(query, { key: product.key, variables })).data.conversation.messageCount).toBe(2);
  });

  it('sets DATABASE_STATEMENT_TIMEOUT_MS on every connection, and 0 leaves the server default', async () => {
    const { t } = await app({ DATABASE_STATEMENT_TIMEOUT_MS: '250' });
    const shown = await t.prisma.$queryRawUnsafe<{ statement_timeout: string }[]>('SHOW statement_timeout');
    expect(shown).toEqual([{ statement_timeout: '250ms' }]);
    // Transactions run on pooled connections too.
    const inTransaction = await t.prisma.$transaction((tx) => tx.$queryRawUnsafe<{ statement_timeout: string }[]>('SHOW statement_timeout'));
    expect(inTransaction).toEqual([{ statement_timeout: '250ms' }]);
    const started = performance.now();
    await expect(t.prisma.$queryRawUnsafe('SELECT pg_sleep(2)::text')).rejects.toThrow(/statement timeout/);
    expect(performance.now() - started).toBeLessThan(1_500);

    const { t: unlimited } = await app({ DATABASE_STATEMENT_TIMEOUT_MS: '0' });
    expect(await unlimited.prisma.$queryRawUnsafe('SHOW statement_timeout')).toEqual([{ statement_timeout: '0' }]);
  });

  it('prepares each statement once per connection, and with DATABASE_PREPARED_STATEMENTS=false not at all', async () => {
    const nested = `{ conversations(first: 5) { nodes { id messages(first: 5) { nodes { content feedback { rating } } } } } }`;
    const prepared = async (t: TestApp) => {
      const rows = await t.prisma.$queryRawUnsafe<{ n: number }[]>(`SELECT count(*)::int AS n FROM pg_prepared_statements WHERE name LIKE 'parley%'`);
      return rows[0]!.n;
    };
    // One connection, so the statements and the count are on the same session.
    const { t } = await app({ DATABASE_POOL_SIZE: '1', DATABASE_POOL_MIN: '1', PARLEY_RESPONSE_CACHE: 'false' });
    const product = await t.product('Prepared');
    await seedConversations(t.prisma, product.id, { conversations: 3, messages: 3 });
    const first = await t.gql(nested, { key: product.key });
    expect(first.errors).toBeUndefined();
    const after = await prepared(t);
    expect(after).toBeGreaterThan(0);
    // The same statements for another product: bound and executed, not prepared again.
    const second = await t.product('Prepared too');
    await seedConversations(t.prisma, second.id, { conversations: 3, messages: 3 });
    const again = await t.gql(nested, { key: second.key });
    expect(again.errors).toBeUndefined();
    expect(again.sql.length).toBeGreaterThan(0);
    expect(await prepared(t)).toBe(after);

    // A migration that adds a column leaves the statements prepared before it answering (another product:
    // the conversations' cached rows are not what is asked).
    await t.prisma.$executeRawUnsafe(`ALTER TABLE "Message" ADD COLUMN "addedLater" text`);
    const later = await t.product('After the migration');
    await seedConversations(t.prisma, later.id, { conversations: 1, messages: 1 });
    expect((await t.gql(nested, { key: later.key })).errors).toBeUndefined();

    const { t: unprepared } = await app({ DATABASE_POOL_SIZE: '1', DATABASE_POOL_MIN: '1', DATABASE_PREPARED_STATEMENTS: 'false' });
    const other = await unprepared.product('Unprepared');
    await seedConversations(unprepared.prisma, other.id, { conversations: 1, messages: 1 });
    expect((await unprepared.gql(nested, { key: other.key })).errors).toBeUndefined();
    expect(await prepared(unprepared)).toBe(0);
  });
});
