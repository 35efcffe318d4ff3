import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPostgresDatabase, findPostgresBin, findRedisServer, startPostgres, startRedis, type Throwaway } from '../scripts/servers.js';
import type { DatabaseOptions } from '../src/infra/db.js';

/**
 * Where the bench runs. PostgreSQL: a scratch database on DATABASE_URL's
 * server (never the database it names), else a throwaway server from the
 * local binaries; without either, embedded PGlite. Redis: REDIS_URL, else a
 * throwaway redis-server when the binary exists, else none (Parley then keeps
 * pub/sub and cache in-process).
 */

export interface BenchInfra {
  database: {
    kind: 'postgres' | 'pglite';
    source: 'DATABASE_URL' | 'throwaway server' | 'embedded';
    options: DatabaseOptions;
  };
  redis: { source: 'REDIS_URL' | 'throwaway server' | 'none'; url: string | undefined };
  /** Parley's data dir (PGlite lives in `pgdata` inside it). */
  dataDir: string;
  adminToken: string;
  /** The environment of the server processes: Parley's own variables, nothing of the caller's. */
  serverEnv(): NodeJS.ProcessEnv;
  dispose(): Promise<void>;
}

export interface InfraOptions {
  databaseUrl?: string | undefined;
  redisUrl?: string | undefined;
  /** Start throwaway servers from local binaries when no URL is given (default true). */
  startLocalServers?: boolean;
  poolSize?: number;
}

export async function provisionInfra(options: InfraOptions): Promise<BenchInfra> {
  const cleanups: (() => Promise<void>)[] = [];
  const dispose = async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  };
  try {
    const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-'));
    cleanups.push(async () => rmSync(dataDir, { recursive: true, force: true }));
    const poolSize = options.poolSize ?? 10;
    const startLocal = options.startLocalServers ?? true;

    let database: BenchInfra['database'];
    if (options.databaseUrl) {
      const scratch = await createPostgresDatabase(options.databaseUrl, 'parley_bench_');
      cleanups.push(scratch.drop);
      database = { kind: 'postgres', source: 'DATABASE_URL', options: { url: scratch.url, poolSize } };
    } else if (startLocal && findPostgresBin()) {
      const server: Throwaway = await startPostgres();
      cleanups.push(server.dispose);
      database = { kind: 'postgres', source: 'throwaway server', options: { url: server.url, poolSize } };
    } else {
      database = { kind: 'pglite', source: 'embedded', options: { dataDir: join(dataDir, 'pgdata') } };
    }

    let redis: BenchInfra['redis'] = { source: 'none', url: undefined };
    if (options.redisUrl) redis = { source: 'REDIS_URL', url: options.redisUrl };
    else if (startLocal && findRedisServer()) {
      const server = await startRedis();
      cleanups.push(server.dispose);
      redis = { source: 'throwaway server', url: server.url };
    }

    const adminToken = `adm_bench_${randomBytes(18).toString('base64url')}`;
    return {
      database,
      redis,
      dataDir,
      adminToken,
      serverEnv: () => {
        const env: NodeJS.ProcessEnv = {
          NODE_ENV: 'production',
          // PostGraphile's mode (production is its default; set, it says nothing about it at start).
          GRAPHILE_ENV: 'production',
          HOST: '127.0.0.1',
          PARLEY_DATA_DIR: dataDir,
          PARLEY_ADMIN_TOKEN: adminToken,
          PARLEY_DEMO: 'false',
          PARLEY_LOG_LEVEL: 'warn',
          DATABASE_POOL_SIZE: String(poolSize),
        };
        for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[name]) env[name] = process.env[name];
        // Parley's settings given to the bench (e.g. PARLEY_RESPONSE_CACHE=false npm run bench): what a run compares.
        for (const [name, value] of Object.entries(process.env)) if (name.startsWith('PARLEY_') && env[name] === undefined) env[name] = value;
        if (database.options.url) env.DATABASE_URL = database.options.url;
        if (redis.url) env.REDIS_URL = redis.url;
        return env;
      },
      dispose,
    };
  } catch (error) {
    await dispose();
    throw error;
  }
}
