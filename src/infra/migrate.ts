import { createHash, randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { PrismaClient } from './db.js';

/**
 * Applies prisma/migrations the way `prisma migrate deploy` would, without the
 * native schema engine (which cannot be installed offline): each migration in
 * its own transaction, one statement at a time, under an advisory lock, and
 * recorded in `_prisma_migrations` with Prisma's columns and sha256 checksum so
 * that Prisma's own tooling agrees about what is applied.
 */

export const MIGRATIONS_DIR = new URL('../../prisma/migrations/', import.meta.url).pathname;
/** Any fixed 64-bit number; Prisma uses its own, we only need nodes of Parley to agree. */
const LOCK_KEY = 7_270_736_901;

export class MigrationError extends Error {
  override name = 'MigrationError';
}

export interface Migration {
  name: string;
  sql: string;
  checksum: string;
}

export interface MigrationResult {
  applied: string[];
  alreadyApplied: number;
}

export function readMigrations(dir = MIGRATIONS_DIR): Migration[] {
  if (!existsSync(dir)) throw new MigrationError(`migrations folder not found: ${dir}`);
  return readdirSync(dir, { withFileTypes: true })
    .filter((d) => d.isDirectory() && existsSync(join(dir, d.name, 'migration.sql')))
    .map((d) => d.name)
    .sort()
    .map((name) => {
      const sql = readFileSync(join(dir, name, 'migration.sql'), 'utf8');
      return { name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    });
}

const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id" VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum" VARCHAR(64) NOT NULL,
    "finished_at" TIMESTAMPTZ,
    "migration_name" VARCHAR(255) NOT NULL,
    "logs" TEXT,
    "rolled_back_at" TIMESTAMPTZ,
    "started_at" TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count" INTEGER NOT NULL DEFAULT 0
)`;

interface AppliedRow {
  migration_name: string;
  checksum: string;
  finished_at: Date | null;
  rolled_back_at: Date | null;
}

async function appliedRows(db: Pick<PrismaClient, '$queryRawUnsafe'>): Promise<AppliedRow[] | null> {
  const [exists] = await db.$queryRawUnsafe<{ t: string | null }[]>(`SELECT to_regclass('"_prisma_migrations"')::text AS t`);
  if (!exists?.t) return null;
  return db.$queryRawUnsafe<AppliedRow[]>(
    `SELECT migration_name, checksum, finished_at, rolled_back_at FROM "_prisma_migrations" WHERE rolled_back_at IS NULL`,
  );
}

function check(migrations: Migration[], rows: AppliedRow[]): Migration[] {
  const local = new Map(migrations.map((m) => [m.name, m]));
  for (const row of rows) {
    const m = local.get(row.migration_name);
    if (!m) continue; // applied by a newer Parley; leave it alone
    if (!row.finished_at) {
      throw new MigrationError(
        `migration ${row.migration_name} failed earlier and was never finished; fix the database and mark it rolled back before starting again`,
      );
    }
    if (row.checksum !== m.checksum) {
      throw new MigrationError(
        `migration ${row.migration_name} was changed after it was applied (checksum ${row.checksum.slice(0, 12)}… in the database, ${m.checksum.slice(0, 12)}… on disk); add a new migration instead of editing an applied one`,
      );
    }
  }
  const done = new Set(rows.filter((r) => r.finished_at).map((r) => r.migration_name));
  return migrations.filter((m) => !done.has(m.name));
}

export async function migrate(prisma: PrismaClient, migrations = readMigrations()): Promise<MigrationResult> {
  // Fast path, no lock: every start-up after the first only reads.
  const before = await appliedRows(prisma);
  if (before && check(migrations, before).length === 0) return { applied: [], alreadyApplied: migrations.length };

  const applied: string[] = [];
  for (const migration of migrations) {
    await prisma.$transaction(
      async (tx) => {
        // Serialises concurrent starts of several nodes; released at commit.
        await tx.$executeRawUnsafe(`SELECT pg_advisory_xact_lock(${LOCK_KEY})`);
        await tx.$executeRawUnsafe(CREATE_TABLE);
        const rows = (await appliedRows(tx)) ?? [];
        if (!check([migration], rows).length) return;
        const started = new Date();
        const statements = splitSqlStatements(migration.sql);
        for (const [i, statement] of statements.entries()) {
          try {
            await tx.$executeRawUnsafe(statement);
          } catch (error) {
            throw new MigrationError(
              `migration ${migration.name} failed at statement ${i + 1} of ${statements.length}: ${(error as Error).message}\n${statement.slice(0, 500)}`,
            );
          }
        }
        await tx.$executeRawUnsafe(
          `INSERT INTO "_prisma_migrations" (id, checksum, finished_at, migration_name, logs, started_at, applied_steps_count)
           VALUES ($1, $2, now(), $3, NULL, $4, 1)`,
          randomUUID(),
          migration.checksum,
          migration.name,
          started,
        );
        applied.push(migration.name);
      },
      { maxWait: 60_000, timeout: 600_000 },
    );
  }
  return { applied, alreadyApplied: migrations.length - applied.length };
}

/** True when every migration on disk is recorded as applied (for /readyz). */
export async function migrationsApplied(prisma: PrismaClient, migrations = readMigrations()): Promise<boolean> {
  const rows = await appliedRows(prisma);
  return rows !== null && check(migrations, rows).length === 0;
}

/**
 * Splits a PostgreSQL script into statements, respecting quotes, quoted
 * identifiers, dollar-quoted bodies and comments. Comment-only pieces are dropped.
 */
export function splitSqlStatements(script: string): string[] {
  const out: string[] = [];
  let start = 0;
  let i = 0;
  const n = script.length;
  while (i < n) {
    const c = script[i]!;
    const next = script[i + 1];
    if (c === '-' && next === '-') {
      const end = script.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && next === '*') {
      const end = script.indexOf('*/', i + 2);
      i = end === -1 ? n : end + 2;
    } else if (c === "'" || c === '"') {
      i += 1;
      while (i < n) {
        if (script[i] === c) {
          if (script[i + 1] === c) i += 2; // doubled quote is an escaped quote
          else break;
        } else i += 1;
      }
      i += 1;
    } else if (c === '$') {
      const tag = /^\$[A-Za-z_]*\$/.exec(script.slice(i));
      if (tag) {
        const end = script.indexOf(tag[0], i + tag[0].length);
        i = end === -1 ? n : end + tag[0].length;
      } else i += 1;
    } else if (c === ';') {
      out.push(script.slice(start, i));
      i += 1;
      start = i;
    } else i += 1;
  }
  out.push(script.slice(start));
  return out.map((s) => s.trim()).filter((s) => stripComments(s).trim().length > 0);
}

function stripComments(sql: string): string {
  return sql.replace(/--[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '');
}
