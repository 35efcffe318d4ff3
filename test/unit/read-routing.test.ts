import { describe, expect, it } from 'vitest';
import { isReadOnlySql, pinToPrimary, readFromPrimary, RecentWrites, replicaReadsAllowed, runWithReadRouting } from '../../src/infra/read-routing.js';
import { parseLsn } from '../../src/infra/replica-monitor.js';

/**
 * The classifier decides what a replica may run: it must never call a write
 * read-only (a write on a standby fails, a lock taken there protects nothing);
 * calling a read a write only costs the primary one statement.
 */
describe('isReadOnlySql', () => {
  it('accepts the SELECTs Prisma generates (quoted identifiers, relation joins, counts)', () => {
    // Captured from Prisma 7 on this schema.
    const prismaSelects = [
      `SELECT "t0"."id", "t0"."name", "t0"."keyPrefix", "t0"."keyHash", "t0"."metadata", "t0"."createdAt" FROM "public"."Product" AS "t0" WHERE ("t0"."keyHash" = $1 AND 1=1) LIMIT $2`,
      `SELECT "t0"."id", "Conversation_messages"."__prisma_data__" AS "messages" FROM "public"."Conversation" AS "t0" LEFT JOIN LATERAL (SELECT COALESCE(JSONB_AGG("__prisma_data__"), '[]') AS "__prisma_data__" FROM (SELECT "t3"."__prisma_data__" FROM (SELECT JSONB_BUILD_OBJECT('id', "t2"."id", 'content', "t2"."content") AS "__prisma_data__", "t2"."id" FROM (SELECT "t1".* FROM "public"."Message" AS "t1" WHERE "t0"."id" = "t1"."conversationId" /* root select */) AS "t2" /* inner select */) AS "t3" ORDER BY "t3"."id" ASC LIMIT $1 /* middle select */) AS "t4" /* outer select */) AS "Conversation_messages" ON true WHERE "t0"."productId" = $2 ORDER BY "t0"."id" ASC LIMIT $3`,
      `SELECT COUNT(*) AS "_count$_all" FROM (SELECT "public"."Conversation"."id" FROM "public"."Conversation" WHERE "public"."Conversation"."productId" = $1 OFFSET $2) AS "sub"`,
    ];
    for (const sql of prismaSelects) expect(isReadOnlySql(sql), sql).toBe(true);
  });

  it('refuses the writes Prisma generates, RETURNING ones included (they come as queryRaw)', () => {
    const prismaWrites = [
      `INSERT INTO "public"."Product" ("id","name") VALUES ($1,$2) RETURNING "public"."Product"."id", "public"."Product"."name"`,
      `UPDATE "public"."Product" SET "name" = $1 WHERE ("public"."Product"."id" = $2 AND 1=1) RETURNING "public"."Product"."id"`,
      `DELETE FROM "public"."Product" WHERE "public"."Product"."name" = $1`,
    ];
    for (const sql of prismaWrites) expect(isReadOnlySql(sql), sql).toBe(false);
  });

  it('accepts lowercase, leading whitespace and comments, and read-only CTEs', () => {
    expect(isReadOnlySql('select 1')).toBe(true);
    expect(isReadOnlySql('  \n\t SELECT 1;')).toBe(true);
    expect(isReadOnlySql('-- who is there\n/* a /* nested */ comment */ SELECT 1')).toBe(true);
    expect(isReadOnlySql('WITH q AS (SELECT 1 AS x) SELECT x FROM q')).toBe(true);
    expect(isReadOnlySql('with recursive t(n) as (select 1 union all select n + 1 from t where n < 5) select * from t')).toBe(true);
  });

  it('refuses a CTE that writes anywhere: WITH … INSERT / UPDATE / DELETE / MERGE', () => {
    expect(isReadOnlySql('WITH c AS (UPDATE "Conversation" SET "messageCount" = 1 RETURNING id) INSERT INTO "Message" SELECT * FROM c')).toBe(false);
    expect(isReadOnlySql('WITH gone AS (DELETE FROM t RETURNING *) SELECT count(*) FROM gone')).toBe(false);
    expect(isReadOnlySql('with x as (insert into t values (1) returning *) select * from x')).toBe(false);
    expect(isReadOnlySql('WITH s AS (SELECT 1) MERGE INTO t USING s ON true WHEN MATCHED THEN DO NOTHING')).toBe(false);
  });

  it('refuses row-locking SELECTs: FOR UPDATE, FOR NO KEY UPDATE, FOR SHARE, FOR KEY SHARE', () => {
    expect(isReadOnlySql('SELECT id FROM "Product" WHERE id = $1 FOR UPDATE')).toBe(false);
    expect(isReadOnlySql('select id from t for no key update skip locked')).toBe(false);
    expect(isReadOnlySql('SELECT id FROM t FOR SHARE')).toBe(false);
    expect(isReadOnlySql('SELECT id FROM t FOR KEY SHARE NOWAIT')).toBe(false);
    // …but FOR as part of a read (substring(… FOR n)) is fine.
    expect(isReadOnlySql('SELECT substring(name FROM 1 FOR 3) FROM t')).toBe(true);
  });

  it('refuses SELECTs with side effects: advisory locks, sequences, settings, notifications, SELECT INTO', () => {
    for (const sql of [
      'SELECT pg_advisory_lock(42)',
      'SELECT pg_advisory_xact_lock(42)',
      'select pg_try_advisory_lock(1, 2)',
      'SELECT pg_advisory_unlock_all()',
      "SELECT nextval('seq')",
      "SELECT setval('seq', 10)",
      "SELECT set_config('app.product', '1', false)",
      "SELECT pg_notify('channel', 'hi')",
      'SELECT txid_current()',
      'SELECT * INTO copy FROM t',
    ]) {
      expect(isReadOnlySql(sql), sql).toBe(false);
    }
  });

  it('is not fooled by write words inside strings, quoted identifiers, dollar quotes or comments', () => {
    expect(isReadOnlySql(`SELECT 'INSERT INTO t; DELETE FROM t' AS s`)).toBe(true);
    expect(isReadOnlySql(`SELECT 'it''s for update' AS s`)).toBe(true);
    expect(isReadOnlySql(`SELECT E'a\\' UPDATE' AS s`)).toBe(true);
    expect(isReadOnlySql(`SELECT "update", "delete" FROM "insert"`)).toBe(true);
    expect(isReadOnlySql(`SELECT $$ DELETE FROM t $$, $q$ UPDATE $q$`)).toBe(true);
    expect(isReadOnlySql(`SELECT 1 -- FOR UPDATE\n`)).toBe(true);
    expect(isReadOnlySql(`SELECT 1 /* DELETE */`)).toBe(true);
    expect(isReadOnlySql(`SELECT "updatedAt" FROM t WHERE x = $1::uuid`)).toBe(true);
  });

  it('is not fooled into hiding a write: a later statement, an unterminated literal or comment', () => {
    expect(isReadOnlySql('SELECT 1; DELETE FROM t')).toBe(false);
    expect(isReadOnlySql(`SELECT 'unterminated`)).toBe(false);
    expect(isReadOnlySql('SELECT 1 /* never closed')).toBe(false);
    expect(isReadOnlySql('SELECT $tag$ never closed')).toBe(false);
  });

  it('sends everything that does not start with SELECT or WITH to the primary', () => {
    for (const sql of [
      '',
      '   ',
      'SHOW statement_timeout',
      'EXPLAIN SELECT 1',
      'VALUES (1)',
      'TABLE t',
      '(SELECT 1)',
      'BEGIN',
      'SET x = 1',
      'LOCK TABLE t',
      'COPY t TO STDOUT',
    ]) {
      expect(isReadOnlySql(sql), sql).toBe(false);
    }
  });
});

describe('routing scopes', () => {
  it('allows replica reads only inside runWithReadRouting, until pinned', async () => {
    expect(replicaReadsAllowed()).toBe(false); // no scope: background work stays on the primary
    await runWithReadRouting(async () => {
      expect(replicaReadsAllowed()).toBe(true);
      await Promise.resolve();
      pinToPrimary();
      await new Promise((resolve) => setTimeout(resolve, 1));
      expect(replicaReadsAllowed()).toBe(false);
    });
  });

  it('readFromPrimary pins a nested scope only; a write inside it pins the request too', async () => {
    await runWithReadRouting(async () => {
      await readFromPrimary(async () => expect(replicaReadsAllowed()).toBe(false));
      expect(replicaReadsAllowed()).toBe(true);
      await readFromPrimary(async () => pinToPrimary());
      expect(replicaReadsAllowed()).toBe(false);
    });
  });

  it('keeps concurrent requests apart', async () => {
    const seen: boolean[] = [];
    await Promise.all([
      runWithReadRouting(async () => {
        pinToPrimary();
        await new Promise((resolve) => setTimeout(resolve, 5));
        seen[0] = replicaReadsAllowed();
      }),
      runWithReadRouting(async () => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        seen[1] = replicaReadsAllowed();
      }),
    ]);
    expect(seen).toEqual([false, true]);
  });
});

describe('RecentWrites', () => {
  it('remembers the products named by cache tags for the window only', async () => {
    const recent = new RecentWrites(50);
    recent.noteTags(['product:p1', 'product:p2:knowledge', 'productKey:abc', 'conversation:c1']);
    expect(recent.has('p1')).toBe(true);
    expect(recent.has('p2')).toBe(true);
    expect(recent.has('abc')).toBe(false);
    expect(recent.has('c1')).toBe(false);
    await new Promise((resolve) => setTimeout(resolve, 80));
    expect(recent.has('p1')).toBe(false);
  });
});

describe('parseLsn', () => {
  it('reads PostgreSQL LSNs as byte positions', () => {
    expect(parseLsn('0/3000028')).toBe(0x3000028n);
    expect(parseLsn('16/B374D848')).toBe((0x16n << 32n) + 0xb374d848n);
    expect(parseLsn(null)).toBeNull();
  });
});
