import { describe, inject } from 'vitest';
import { createPostgresDatabase } from '../../scripts/servers.js';
import { openDatabase, type Database } from '../../src/infra/db.js';

export type DatabaseKind = 'pglite' | 'postgres';

export interface DatabaseVariant {
  name: DatabaseKind;
  available: boolean;
  /** A fresh, empty database (a new PGlite in memory, or a new database on the server). */
  open(): Promise<TestDatabase>;
}

export interface TestDatabase {
  db: Database;
  /** Connection URL on PostgreSQL (for tests that need a second client); undefined on PGlite. */
  url: string | undefined;
  dispose(): Promise<void>;
}

export { createPostgresDatabase };

export function databaseVariants(): DatabaseVariant[] {
  const postgresUrl = inject('postgresUrl');
  return [
    {
      name: 'pglite',
      available: true,
      open: async () => {
        const db = await openDatabase({ dataDir: 'memory://' });
        return { db, url: undefined, dispose: () => db.close() };
      },
    },
    {
      name: 'postgres',
      available: Boolean(postgresUrl),
      open: async () => {
        const created = await createPostgresDatabase(postgresUrl);
        const db = await openDatabase({ url: created.url, poolSize: 5 });
        return {
          db,
          url: created.url,
          dispose: async () => {
            await db.close();
            await created.drop();
          },
        };
      },
    },
  ];
}

/** `describe` once per database; unavailable ones are skipped (global setup already said why). */
export function describeEachDatabase(title: string, fn: (variant: DatabaseVariant) => void): void {
  for (const variant of databaseVariants()) {
    describe.skipIf(!variant.available)(`${title} [${variant.name}]`, () => fn(variant));
  }
}
