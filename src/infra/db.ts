import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaPGlite } from 'pglite-prisma-adapter';
import type { Config } from '../config.js';
import { PrismaClient } from '../generated/prisma/client.js';
import { countingAdapter } from './sql-stats.js';

export type { PrismaClient };

export interface Database {
  readonly prisma: PrismaClient;
  readonly kind: 'pglite' | 'postgres';
  /** A human description without credentials, for logs. */
  readonly description: string;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface DatabaseOptions {
  url?: string | undefined;
  poolSize?: number;
  /** PGlite directory; `memory://` for an in-memory database (tests). */
  dataDir?: string;
}

export function databaseOptions(config: Config): DatabaseOptions {
  return { url: config.database.url, poolSize: config.database.poolSize, dataDir: join(config.dataDir, 'pgdata') };
}

export async function openDatabase(options: DatabaseOptions): Promise<Database> {
  if (options.url) {
    const adapter = new PrismaPg({
      connectionString: options.url,
      max: options.poolSize ?? 10,
      connectionTimeoutMillis: 10_000,
      idleTimeoutMillis: 30_000,
    });
    const prisma = new PrismaClient({ adapter: countingAdapter(adapter) });
    const url = new URL(options.url);
    return {
      prisma,
      kind: 'postgres',
      description: `PostgreSQL ${url.hostname}:${url.port || 5432}${url.pathname} (pool ${options.poolSize ?? 10})`,
      ping: async () => void (await prisma.$queryRawUnsafe('SELECT 1')),
      close: () => prisma.$disconnect(),
    };
  }
  const dataDir = options.dataDir ?? 'memory://';
  if (!dataDir.startsWith('memory://')) mkdirSync(dataDir, { recursive: true });
  const pglite = await PGlite.create(dataDir.startsWith('memory://') ? undefined : resolve(dataDir));
  const prisma = new PrismaClient({ adapter: countingAdapter(new PrismaPGlite(pglite)) });
  return {
    prisma,
    kind: 'pglite',
    description: dataDir.startsWith('memory://') ? 'embedded PGlite (in memory)' : `embedded PGlite at ${resolve(dataDir)}`,
    ping: async () => void (await prisma.$queryRawUnsafe('SELECT 1')),
    close: async () => {
      await prisma.$disconnect();
      await pglite.close();
    },
  };
}
