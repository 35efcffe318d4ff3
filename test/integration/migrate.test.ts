import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { openDatabase, type PrismaClient } from '../../src/infra/db.js';
import {
  MIGRATIONS_DIR,
  MigrationError,
  migrate,
  migrationsApplied,
  readMigrations,
  type Migration,
  type MigrationResult,
} from '../../src/infra/migrate.js';
import { newSqlScope, runInSqlScope } from '../../src/infra/sql-stats.js';
import { describeEachDatabase, type TestDatabase } from '../helpers/db.js';

interface MigrationRow {
  id: string;
  checksum: string;
  finished_at: Date | null;
  migration_name: string;
  logs: string | null;
  rolled_back_at: Date | null;
  started_at: Date;
  applied_steps_count: number;
}

const sha256 = (text: string | Buffer) => createHash('sha256').update(text).digest('hex');

/** Read straight from disk, independently of readMigrations(). */
const onDisk = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
  .filter((d) => d.isDirectory() && existsSync(join(MIGRATIONS_DIR, d.name, 'migration.sql')))
  .map((d) => ({ name: d.name, checksum: sha256(readFileSync(join(MIGRATIONS_DIR, d.name, 'migration.sql'))) }))
  .sort((a, b) => (a.name < b.name ? -1 : 1));

function synthetic(name: string, sql: string): Migration {
  return { name, sql, checksum: sha256(sql) };
}

function migrationRows(prisma: PrismaClient): Promise<MigrationRow[]> {
  return prisma.$queryRawUnsafe<MigrationRow[]>(`SELECT * FROM "_prisma_migrations" ORDER BY migration_name, started_at`);
}

async function tableExists(prisma: PrismaClient, table: string): Promise<boolean> {
  const [row] = await prisma.$queryRawUnsafe<{ t: string | null }[]>(`SELECT to_regclass($1)::text AS t`, `"${table}"`);
  return row?.t != null;
}

describeEachDatabase('migrate', (variant) => {
  let migrated: TestDatabase;
  let firstRun: MigrationResult;
  const scratch: TestDatabase[] = [];

  async function freshDatabase(): Promise<PrismaClient> {
    const database = await variant.open();
    scratch.push(database);
    return database.db.prisma;
  }

  beforeAll(async () => {
    migrated = await variant.open();
    firstRun = await migrate(migrated.db.prisma);
  });
  afterEach(async () => {
    await Promise.all(scratch.splice(0).map((d) => d.dispose()));
  });
  afterAll(() => migrated?.dispose());

  it('applies every migration folder on a fresh database and records it as Prisma does', async () => {
    expect(onDisk.length).toBeGreaterThan(0);
    expect(firstRun).toEqual({ applied: onDisk.map((m) => m.name), alreadyApplied: 0 });

    const rows = await migrationRows(migrated.db.prisma);
    expect(rows.map((r) => ({ name: r.migration_name, checksum: r.checksum }))).toEqual(onDisk);
    for (const row of rows) {
      expect(row.id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
      expect(row.finished_at).toBeInstanceOf(Date);
      expect(row.finished_at!.getTime()).toBeGreaterThanOrEqual(row.started_at.getTime());
      expect(row.rolled_back_at).toBeNull();
      expect(row.logs).toBeNull();
      expect(Number(row.applied_steps_count)).toBe(1);
    }
    expect(await tableExists(migrated.db.prisma, 'Product')).toBe(true);
  });

  it('does nothing on a second run: no lock, no writes, rows unchanged', async () => {
    const before = await migrationRows(migrated.db.prisma);
    const scope = newSqlScope(true);
    const second = await runInSqlScope(scope, () => migrate(migrated.db.prisma));
    expect(second).toEqual({ applied: [], alreadyApplied: onDisk.length });
    expect(scope.log!.length).toBeGreaterThan(0);
    for (const statement of scope.log!) {
      expect(statement).toMatch(/^\s*SELECT\b/i);
      expect(statement).not.toMatch(/pg_advisory/i);
    }
    expect(await migrationRows(migrated.db.prisma)).toEqual(before);
  });

  it('reports whether every migration is applied', async () => {
    expect(await migrationsApplied(migrated.db.prisma)).toBe(true);
    const pending = [...readMigrations(), synthetic('29991231000000_pending', 'SELECT 1;')];
    expect(await migrationsApplied(migrated.db.prisma, pending)).toBe(false);

    const empty = await freshDatabase();
    expect(await migrationsApplied(empty)).toBe(false);
    // Only read: the check creates nothing.
    expect(await tableExists(empty, '_prisma_migrations')).toBe(false);
  });

  it('refuses a migration that changed after it was applied, naming it', async () => {
    const before = await migrationRows(migrated.db.prisma);
    const [first, ...rest] = readMigrations();
    const edited = `${first!.sql}\n-- edited after it was applied\n`;
    const changed = [{ ...first!, sql: edited, checksum: sha256(edited) }, ...rest];

    const error = await migrate(migrated.db.prisma, changed).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toContain(first!.name);
    expect((error as Error).message).toMatch(/changed after it was applied/);

    // Also when another migration is pending, so the slow path is taken too.
    const withPending = [...changed, synthetic('29991231000000_pending', 'CREATE TABLE "ShouldNotExist" (id int);')];
    await expect(migrate(migrated.db.prisma, withPending)).rejects.toThrow(first!.name);
    expect(await tableExists(migrated.db.prisma, 'ShouldNotExist')).toBe(false);
    expect(await migrationRows(migrated.db.prisma)).toEqual(before);
  });

  it('rolls a failing migration back entirely and keeps the ones before it', async () => {
    const prisma = await freshDatabase();
    const good = synthetic('20990101000000_good', 'CREATE TABLE "SynthGood" (id int PRIMARY KEY);');
    const broken = synthetic(
      '20990101000001_broken',
      'CREATE TABLE "SynthBrokenFirst" (id int PRIMARY KEY);\nINSERT INTO "SynthNoSuchTable" VALUES (1);\n',
    );

    const error = await migrate(prisma, [good, broken]).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MigrationError);
    expect((error as Error).message).toContain('20990101000001_broken');
    expect((error as Error).message).toContain('statement 2 of 2');

    expect(await tableExists(prisma, 'SynthBrokenFirst')).toBe(false);
    expect(await tableExists(prisma, 'SynthGood')).toBe(true);
    expect((await migrationRows(prisma)).map((r) => [r.migration_name, r.checksum])).toEqual([[good.name, good.checksum]]);
    expect(await migrationsApplied(prisma, [good, broken])).toBe(false);

    // Once fixed, the next start applies it.
    const fixed = synthetic(broken.name, 'CREATE TABLE "SynthBrokenFirst" (id int PRIMARY KEY);\nCREATE TABLE "SynthFixed" (id int);\n');
    expect(await migrate(prisma, [good, fixed])).toEqual({ applied: [fixed.name], alreadyApplied: 1 });
    expect(await tableExists(prisma, 'SynthFixed')).toBe(true);
    expect(await migrationsApplied(prisma, [good, fixed])).toBe(true);
  });

  it.runIf(variant.name === 'postgres')('lets two nodes migrate the same fresh database at once: each migration applied exactly once', async () => {
    const first = await variant.open();
    scratch.push(first);
    const second = await openDatabase({ url: first.url!, poolSize: 2 });
    try {
      const results = await Promise.allSettled([migrate(first.db.prisma), migrate(second.prisma)]);
      expect(results.map((r) => (r.status === 'rejected' ? String(r.reason) : r.status))).toEqual(['fulfilled', 'fulfilled']);
      const [a, b] = results.map((r) => (r as PromiseFulfilledResult<MigrationResult>).value);
      // Between them they applied each migration once; the other saw it as done.
      expect([...a!.applied, ...b!.applied].sort()).toEqual(onDisk.map((m) => m.name));
      expect(a!.alreadyApplied + b!.alreadyApplied).toBe(onDisk.length);

      const rows = await migrationRows(first.db.prisma);
      expect(rows.map((r) => r.migration_name)).toEqual(onDisk.map((m) => m.name));
      expect(await migrationsApplied(second.prisma)).toBe(true);
    } finally {
      await second.close();
    }
  });
});
