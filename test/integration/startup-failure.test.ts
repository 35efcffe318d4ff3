import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import type { Database } from '../../src/infra/db.js';
import { recordingLogger, TEST_ADMIN_TOKEN } from '../helpers/app.js';
import { createPostgresDatabase, databaseVariants } from '../helpers/db.js';
import { eventually } from '../helpers/live.js';
import { findRedisServer, startRedis, type Throwaway } from '../helpers/servers.js';

/**
 * A start-up that fails half-way closes what it had opened: no Redis connection
 * and no database pool outlives the failed buildApp (main.ts then has no app to stop).
 */

const postgresUrl = inject('postgresUrl');
const [pglite] = databaseVariants();

const env = (dataDir: string, extra: Record<string, string>) =>
  loadConfig({
    NODE_ENV: 'test',
    PARLEY_DATA_DIR: dataDir,
    PARLEY_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
    PARLEY_DEMO: 'false',
    PARLEY_LOG_LEVEL: 'silent',
    ...extra,
  });

/** The database, except that warming the cache (the last awaited step of start-up) fails as a database going away would. */
function failingWarm(db: Database): Database {
  const prisma = new Proxy(db.prisma, {
    get(target, property) {
      const value = Reflect.get(target, property, target) as unknown;
      if (property === '$queryRawUnsafe') {
        return (sql: string, ...args: unknown[]) =>
          sql.includes('max("lastMessageAt")') ? Promise.reject(new Error('database went away while warming')) : target.$queryRawUnsafe(sql, ...args);
      }
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return { ...db, prisma } as Database;
}

describe('a start-up that fails half-way', () => {
  let dataDir: string;
  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), 'parley-startup-'));
  });
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  describe.skipIf(!findRedisServer())('after its Redis connections opened', () => {
    let redis: Throwaway;
    let probe: Redis;
    beforeAll(async () => {
      redis = await startRedis();
      probe = new Redis(redis.url);
    });
    afterAll(async () => {
      probe?.disconnect();
      await redis?.dispose();
    });
    const clients = async () =>
      String(await probe.client('LIST'))
        .trim()
        .split('\n').length;

    it('closes them all (cache, live events, rate limits): only the probe is left connected', async () => {
      const opened = await pglite!.open();
      try {
        const config = env(dataDir, { REDIS_URL: redis.url, PARLEY_WARM_PRODUCTS: '5' });
        await expect(buildApp(config, { db: failingWarm(opened.db), log: recordingLogger().log })).rejects.toThrow(
          'database went away while warming',
        );
        await eventually(async () => (await clients()) === 1, 'only the probe connected to Redis');
      } finally {
        await opened.dispose();
      }
    });
  });

  describe.skipIf(!postgresUrl)('after it opened its own database pool', () => {
    it('closes the pool when a migration fails: no connection of Parley is left on the database', async () => {
      const created = await createPostgresDatabase(postgresUrl!);
      const admin = new pg.Client({ connectionString: postgresUrl });
      await admin.connect();
      try {
        // A table the first migration means to create: it fails, after the pool has connected.
        const conflicting = new pg.Client({ connectionString: created.url });
        await conflicting.connect();
        await conflicting.query('CREATE TABLE "Product" (id int)');
        await conflicting.end();
        const database = new URL(created.url).pathname.slice(1);
        const connections = async () =>
          Number(
            (await admin.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'parley'`, [database])).rows[0]
              .n,
          );

        await expect(buildApp(env(dataDir, { DATABASE_URL: created.url }), { log: recordingLogger().log })).rejects.toThrow();
        await eventually(async () => (await connections()) === 0, 'no Parley connection left on the database');
      } finally {
        await admin.end();
        await created.drop();
      }
    });
  });
});
