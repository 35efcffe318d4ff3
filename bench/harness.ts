import { openDatabase } from '../src/infra/db.js';
import { migrate } from '../src/infra/migrate.js';
import { cacheDelta, readCacheCounters, type CacheCounts } from './cache-stats.js';
import { generateDataset, SIZES, undoBenchWrites, type Dataset, type SizeName } from './dataset.js';
import { provisionInfra, type BenchInfra, type InfraOptions } from './infra.js';
import { runLoad, type LoadResult } from './load.js';
import { autocannonVersion, gitState, machineInfo, type GitState, type MachineInfo } from './machine.js';
import { buildScenarios, DOCUMENTS, SCENARIO_NAMES, seededRandom, type Scenario, type ScenarioName } from './scenarios.js';
import { launchServer, type RunningServer, type ServerKind } from './servers/launch.js';
import type { SqlCounts } from './servers/sql-capture.js';

/**
 * One bench run: provision the database (and Redis), generate the dataset,
 * then for each server in turn — (a) Parley, (b) the "before", (c) the
 * ceiling — start it in its own process, and for each scenario warm up, then
 * measure. One server runs at a time: the 2-core machine is not shared
 * between servers, and embedded PGlite can only be opened by one process.
 * Each starts from the same rows: what the previous one wrote is undone.
 */

export const SERVERS: readonly ServerKind[] = ['parley', 'baseline', 'ceiling'];

export interface BenchOptions {
  size: SizeName;
  /** Measured seconds per scenario and server. */
  seconds: number;
  warmupSeconds: number;
  connections: number;
  infra: InfraOptions;
  scenarios?: readonly ScenarioName[];
  log?: (line: string) => void;
}

export interface SqlPerRequest {
  /** Statements the measured run's answered requests sent, over their number. */
  perRequest: number;
  maxPerRequest: number;
  statements: number;
  requests: number;
  /** Requests cut off by the end of the run, left out of both. */
  cutOff: number;
}

export interface ServerRun {
  server: ServerKind;
  scenario: ScenarioName;
  load: LoadResult;
  /** null for the ceiling, which has no database. */
  sql: SqlPerRequest | null;
  /** null while the server exposes no cache statistics (see readCacheCounters). */
  cache: CacheCounts | null;
}

export interface BenchResult {
  startedAt: string;
  wallSeconds: number;
  machine: MachineInfo;
  git: GitState;
  settings: {
    size: SizeName;
    seconds: number;
    warmupSeconds: number;
    connections: number;
    pipelining: 1;
    databasePoolSize: number;
    loadGenerator: string;
  };
  database: { kind: 'postgres' | 'pglite'; source: string; description: string; version: string };
  redis: { source: string };
  dataset: Dataset['counts'] & { generatedInSeconds: number };
  servers: Partial<Record<ServerKind, string>>;
  scenarios: { name: ScenarioName; title: string; description: string }[];
  documents: typeof DOCUMENTS;
  /** For scenarios nothing writes to: did Parley and the "before" give the same `data` for the same requests? */
  sameAnswers: Partial<Record<ScenarioName, boolean>>;
  runs: ServerRun[];
}

const MEASURED_SEED = 1;
const WARMUP_SEED = 2;
const PROBE_SEED = 3;

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const names = options.scenarios ?? SCENARIO_NAMES;
  const infra = await provisionInfra(options.infra);
  try {
    const { dataset, version } = await prepareDatabase(infra, options.size, log);
    const scenarios = buildScenarios(dataset);
    const runs: ServerRun[] = [];
    const servers: BenchResult['servers'] = {};
    const parleyBytes = new Map<ScenarioName, number>();
    const parleyAnswers = new Map<ScenarioName, string>();
    const sameAnswers: BenchResult['sameAnswers'] = {};

    for (const [i, kind] of SERVERS.entries()) {
      if (i > 0 && kind !== 'ceiling') await undoWrites(infra, dataset, log);
      log(`starting ${kind}...`);
      const server = await launchServer(kind, infra.serverEnv());
      servers[kind] = server.description;
      try {
        for (const name of names) {
          const scenario = scenarios[name];
          // The ceiling answers as many bytes as Parley did; the others must answer correctly before any load.
          if (kind === 'ceiling') await server.setBody(parleyBytes.get(name) ?? 1024);
          else {
            const answers = await probe(server, scenario);
            if (scenario.comparable && kind === 'parley') parleyAnswers.set(name, answers);
            if (scenario.comparable && kind === 'baseline' && parleyAnswers.has(name)) sameAnswers[name] = parleyAnswers.get(name) === answers;
          }
          const run = await measure(server, scenario, options, kind === 'parley' ? infra.adminToken : undefined);
          if (kind === 'parley') parleyBytes.set(name, run.load.meanResponseBytes);
          runs.push(run);
          log(`  ${kind.padEnd(8)} ${name.padEnd(11)} ${summary(run)}`);
        }
      } finally {
        await server.stop();
      }
    }

    return {
      startedAt,
      wallSeconds: (performance.now() - started) / 1000,
      machine,
      git: gitState(),
      settings: {
        size: options.size,
        seconds: options.seconds,
        warmupSeconds: options.warmupSeconds,
        connections: options.connections,
        pipelining: 1,
        databasePoolSize: infra.database.options.poolSize ?? 10,
        loadGenerator: `autocannon ${autocannonVersion()} in the harness process`,
      },
      database: { kind: infra.database.kind, source: infra.database.source, description: describeDatabase(infra.database), version },
      redis: { source: infra.redis.source },
      dataset: { ...dataset.counts, generatedInSeconds: dataset.generatedInMs / 1000 },
      servers,
      scenarios: names.map((n) => ({ name: n, title: scenarios[n].title, description: scenarios[n].description })),
      documents: DOCUMENTS,
      sameAnswers,
      runs,
    };
  } finally {
    await infra.dispose();
  }
}

/** Migrates the bench database and fills it; closed again before any server opens it. */
export async function prepareDatabase(infra: BenchInfra, size: SizeName, log: (line: string) => void): Promise<{ dataset: Dataset; version: string }> {
  const db = await openDatabase(infra.database.options);
  try {
    log(`database: ${db.description} (${infra.database.source})`);
    if (infra.database.kind === 'pglite') log('  no DATABASE_URL and no local PostgreSQL: running on EMBEDDED PGlite');
    log(`redis: ${infra.redis.source}${infra.redis.url ? '' : ' (Parley keeps pub/sub and cache in-process)'}`);
    await migrate(db.prisma);
    log(`generating the ${size} dataset...`);
    const dataset = await generateDataset(db.prisma, SIZES[size]);
    const c = dataset.counts;
    log(
      `  ${c.products} products, ${c.conversations} conversations, ${c.messages} messages, ${c.feedback} feedback, ` +
        `${c.knowledge} knowledge entries in ${(dataset.generatedInMs / 1000).toFixed(1)} s`,
    );
    const [row] = await db.prisma.$queryRawUnsafe<{ version: string }[]>(`SELECT version()`);
    return { dataset, version: row?.version.split(' on ')[0] ?? 'unknown' };
  } finally {
    await db.close();
  }
}

/** Every server starts from the dataset as generated: the previous server's messages go. */
async function undoWrites(infra: BenchInfra, dataset: Dataset, log: (line: string) => void): Promise<void> {
  const db = await openDatabase(infra.database.options);
  try {
    const removed = await undoBenchWrites(db.prisma, dataset.generatedAt);
    log(`  removed the ${removed} messages the previous server wrote`);
  } finally {
    await db.close();
  }
}

/**
 * Warm-up, then the measured run, with the server's SQL and cache counters
 * read around it. `adminToken` is given for Parley, whose cacheStats need it.
 */
async function measure(server: RunningServer, scenario: Scenario, options: BenchOptions, adminToken: string | undefined): Promise<ServerRun> {
  const load = { url: server.url, scenario, connections: options.connections };
  if (options.warmupSeconds > 0) await runLoad({ ...load, seconds: options.warmupSeconds, seed: WARMUP_SEED });
  await settle(server);
  const cacheBefore = adminToken ? await readCacheCounters(server.url, adminToken) : null;
  await server.resetSql();
  const result = await runLoad({ ...load, seconds: options.seconds, seed: MEASURED_SEED });
  const sql = await settle(server);
  const cacheAfter = cacheBefore && adminToken ? await readCacheCounters(server.url, adminToken) : null;
  return {
    server: server.kind,
    scenario: scenario.name,
    load: result,
    sql: sql && {
      perRequest: sql.requests ? sql.statements / sql.requests : 0,
      maxPerRequest: sql.maxPerRequest,
      statements: sql.statements,
      requests: sql.requests,
      cutOff: sql.cutOff,
    },
    cache: cacheBefore && cacheAfter ? cacheDelta(cacheBefore, cacheAfter) : null,
  };
}

/**
 * Waits until the server has no request in flight and its statement count
 * stopped moving, and returns its counts (null for the ceiling).
 */
async function settle(server: RunningServer): Promise<SqlCounts | null> {
  const deadline = Date.now() + 20_000;
  let last = await server.readSql();
  while (last && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const now = await server.readSql();
    if (now && now.inFlight === 0 && last.inFlight === 0 && now.statements === last.statements) return now;
    last = now;
  }
  return last;
}

/**
 * A few requests of the scenario before any load: a server that answers
 * them with errors stops the bench at once, with its message. Returns the
 * answers' `data`, to compare Parley's with the "before" server's.
 */
async function probe(server: RunningServer, scenario: Scenario): Promise<string> {
  // A fresh generator with a fixed seed: the same requests for every server.
  const random = seededRandom(PROBE_SEED);
  const answers: unknown[] = [];
  for (let i = 0; i < 3; i++) {
    const request = scenario.next(random);
    const response = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${request.key}` },
      body: request.body,
      signal: AbortSignal.timeout(30_000),
    });
    const body = (await response.json()) as { data?: unknown; errors?: unknown };
    if (response.status !== 200 || body.errors) {
      throw new Error(`${server.kind} answered ${scenario.name} with HTTP ${response.status}: ${JSON.stringify(body).slice(0, 500)}`);
    }
    answers.push(body.data);
  }
  return JSON.stringify(answers);
}

function summary(run: ServerRun): string {
  const { load, sql, cache } = run;
  const parts = [
    `${load.requestsPerSecond.toFixed(0).padStart(6)} req/s`,
    `p50 ${load.latencyMs.p50.toFixed(1)} ms`,
    `p99 ${load.latencyMs.p99.toFixed(1)} ms`,
  ];
  if (sql) parts.push(`${sql.perRequest.toFixed(1)} SQL/req`);
  if (cache) parts.push(`cache ${(cache.hitRate * 100).toFixed(0)} %`);
  if (load.errors) parts.push(`${load.errors} ERRORS: ${load.errorSample}`);
  return parts.join(' · ');
}

function describeDatabase(database: BenchInfra['database']): string {
  if (database.kind === 'pglite') return 'embedded PGlite, opened by each server process in turn';
  const url = new URL(database.options.url!);
  const where =
    database.source === 'DATABASE_URL'
      ? "DATABASE_URL's server, in a scratch database the bench creates and drops"
      : 'a throwaway server started from the local binaries, fsync and synchronous_commit off';
  return `PostgreSQL at ${url.hostname}:${url.port} — ${where} — pool ${database.options.poolSize ?? 10} per server process`;
}
