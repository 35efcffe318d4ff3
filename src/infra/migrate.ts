import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import type { PrismaClient } from './db.js';
import { sha256 } from './hash.js';

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
      return { name, sql, checksum: sha256(sql) };
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
        // Both stamps from the database clock: now() is the start of the transaction
        // (before the lock wait), so it would put finished_at before started_at.
        const [clock] = await tx.$queryRawUnsafe<{ started: Date }[]>(`SELECT clock_timestamp() AS started`);
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
           VALUES ($1, $2, clock_timestamp(), $3, NULL, $4, 1)`,
          randomUUID(),
          migration.checksum,
          migration.name,
          clock!.started,
        );
        applied.push(migration.name);
      },
      // Read committed, whatever the server's default: after the lock wait this
      // transaction must see the rows another node just committed.
      { maxWait: 60_000, timeout: 600_000, isolationLevel: 'ReadCommitted' },
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
 * Follows PostgreSQL's lexer where it matters for `;`: block comments nest,
 * E'…' strings take backslash escapes, dollar tags may contain digits, and a
 * `$` right after an identifier character belongs to that identifier.
 */
export function splitSqlStatements(script: string): string[] {
  const out: string[] = [];
  let start = 0;
  // Whether the current piece holds anything but whitespace and comments.
  let hasCode = false;
  let i = 0;
  const n = script.length;
  while (i < n) {
    const c = script[i]!;
    const next = script[i + 1];
    if (c === '-' && next === '-') {
      const end = script.indexOf('\n', i);
      i = end === -1 ? n : end + 1;
    } else if (c === '/' && next === '*') {
      i = endOfBlockComment(script, i);
    } else if (c === ';') {
      if (hasCode) out.push(script.slice(start, i).trim());
      i += 1;
      start = i;
      hasCode = false;
    } else {
      if (!/\s/.test(c)) hasCode = true;
      if (c === "'" || c === '"') {
        i = endOfQuoted(script, i, c === "'" && isEscapeStringPrefix(script, i));
      } else if (c === '$' && !IDENT_CHAR.test(script[i - 1] ?? '')) {
        DOLLAR_TAG.lastIndex = i;
        const tag = DOLLAR_TAG.exec(script)?.[0];
        if (tag) {
          const end = script.indexOf(tag, i + tag.length);
          i = end === -1 ? n : end + tag.length;
        } else i += 1;
      } else i += 1;
    }
  }
  if (hasCode) out.push(script.slice(start).trim());
  return out;
}

const IDENT_CHAR = /[A-Za-z0-9_$\u0080-\uffff]/;
const DOLLAR_TAG = /\$(?:[A-Za-z_\u0080-\uffff][A-Za-z0-9_\u0080-\uffff]*)?\$/y;

/** Index just past the quote closing the string or identifier opened at `open`. */
function endOfQuoted(script: string, open: number, backslashEscapes: boolean): number {
  const quote = script[open];
  let i = open + 1;
  while (i < script.length) {
    const c = script[i];
    if (backslashEscapes && c === '\\') i += 2;
    else if (c === quote) {
      if (script[i + 1] !== quote) return i + 1;
      i += 2; // doubled quote is an escaped quote
    } else i += 1;
  }
  return script.length;
}

/** `E'…'` (not `somE'…'`, which is an identifier followed by a string). */
function isEscapeStringPrefix(script: string, quote: number): boolean {
  return /[Ee]/.test(script[quote - 1] ?? '') && !IDENT_CHAR.test(script[quote - 2] ?? '');
}

/** Index just past the end of the (possibly nested) block comment opened at `open`. */
function endOfBlockComment(script: string, open: number): number {
  let depth = 0;
  let i = open;
  while (i < script.length) {
    if (script[i] === '/' && script[i + 1] === '*') {
      depth += 1;
      i += 2;
    } else if (script[i] === '*' && script[i + 1] === '/') {
      depth -= 1;
      i += 2;
      if (depth === 0) return i;
    } else i += 1;
  }
  return script.length;
}
