import type { TestProject } from 'vitest/node';
import { findPostgresBin, findRedisServer, startPostgres, startRedis, type Throwaway } from './servers.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A PostgreSQL server URL (its `postgres` database); empty when none is available. */
    postgresUrl: string;
    /** A Redis URL; empty when none is available. */
    redisUrl: string;
  }
}

const started: Throwaway[] = [];

/**
 * Uses DATABASE_URL / REDIS_URL when set, else starts throwaway servers from
 * local binaries. Without them the server-backed variants are skipped with a
 * notice — except under CI=true, where a missing server fails the run.
 */
export async function setup(project: TestProject): Promise<void> {
  const ci = process.env.CI === 'true';
  let postgresUrl = process.env.DATABASE_URL ?? '';
  let redisUrl = process.env.REDIS_URL ?? '';
  if (!postgresUrl) {
    if (findPostgresBin()) {
      const pg = await startPostgres();
      started.push(pg);
      postgresUrl = pg.url;
    } else if (ci) {
      throw new Error('CI=true but no DATABASE_URL and no PostgreSQL binaries: PostgreSQL tests cannot run');
    } else {
      console.warn('\n[parley tests] No PostgreSQL available: PostgreSQL variants are SKIPPED (set DATABASE_URL or install postgresql).\n');
    }
  }
  if (!redisUrl) {
    if (findRedisServer()) {
      const redis = await startRedis();
      started.push(redis);
      redisUrl = redis.url;
    } else if (ci) {
      throw new Error('CI=true but no REDIS_URL and no redis-server binary: Redis tests cannot run');
    } else {
      console.warn('\n[parley tests] No Redis available: Redis variants are SKIPPED (set REDIS_URL or install redis-server).\n');
    }
  }
  project.provide('postgresUrl', postgresUrl);
  project.provide('redisUrl', redisUrl);
}

export async function teardown(): Promise<void> {
  await Promise.all(started.map((s) => s.dispose()));
}
