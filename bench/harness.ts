import { decodeGlobalID } from '@pothos/plugin-relay';
import { openDatabase } from '../src/infra/db.js';
import { migrate } from '../src/infra/migrate.js';
import { cacheDelta, readCacheCounters, type CacheCounts } from './cache-stats.js';
import { generateDataset, SIZES, undoBenchWrites, type Dataset, type SizeName } from './dataset.js';
import { provisionInfra, type BenchInfra, type InfraOptions } from './infra.js';
import { mergeLoads, runLoad, type LoadResult } from './load.js';
import { autocannonVersion, gitState, machineInfo, type GitState, type MachineInfo } from './machine.js';
import { findPostmaster, treeCpuMs } from './proc-cpu.js';
import {
  buildScenarios,
  firstDifference,
  DOCUMENTS,
  POSTGRAPHILE_DOCUMENTS,
  requestBody,
  SCENARIO_NAMES,
  seededRandom,
  type Dialect,
  type ParleyCursors,
  type PeerCursors,
  type Scenario,
  type ScenarioName,
} from './scenarios.js';
import { launchServer, type RunningServer, type ServerKind } from './servers/launch.js';
import type { SqlCounts } from './servers/sql-capture.js';

/**
 * One bench run: provision the database (and Redis), generate the dataset,
 * then measure four servers on it, each in its own process: (a) Parley, (b)
 * the peer, PostGraphile 5, (c) the "before", (d) the ceiling. For each
 * scenario, each server that serves it is warmed up, then measured, one
 * server at a time (the 2-core machine is never shared by two loads).
 *
 * On PostgreSQL the runs are interleaved: every server is started once, and
 * scenario by scenario all servers are measured in turn, in ROUNDS rounds
 * that share the measured time (each server's figures are over all its
 * rounds), so a machine that gets busier or slower during the run slows every
 * column alike: its speed was seen to drift by a third between one 10-s window
 * and the next, enough to turn a ratio between two servers measured once each. Embedded PGlite can be
 * opened by one process only: there the servers run one after the other as a
 * whole (Parley's every scenario, then the "before", then the ceiling), and
 * PostGraphile, which needs PostgreSQL, is left out. Every run starts from
 * the same rows: what a server wrote is undone before the next one runs.
 */

export const SERVERS: readonly ServerKind[] = ['parley', 'postgraphile', 'baseline', 'ceiling'];

/** The servers compared with Parley on answers. */
export type PeerKind = 'postgraphile' | 'baseline';

export interface BenchOptions {
  size: SizeName;
  /** Measured seconds per scenario and server. */
  seconds: number;
  warmupSeconds: number;
  connections: number;
  infra: InfraOptions;
  scenarios?: readonly ScenarioName[];
  log?: (line: string) => void;
  /** Extra Node options for the Parley server, e.g. `--cpu-prof` to see where its time goes. */
  parleyNodeArgs?: string[];
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

export interface CpuPerRequest {
  /** CPU ms (user + system) of the server's process tree during the measured run, over the responses. */
  serverMs: number | null;
  /** The same for every process of the throwaway PostgreSQL cluster; null when it is not on this machine. */
  postgresMs: number | null;
}

export interface ServerRun {
  server: ServerKind;
  scenario: ScenarioName;
  load: LoadResult;
  /** null for the ceiling, which has no database. */
  sql: SqlPerRequest | null;
  /** Parley only; null while the server exposes no cache statistics (see readCacheCounters). */
  cache: CacheCounts | null;
  cpu: CpuPerRequest;
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
    /** Scenario by scenario across running servers, or server by server (embedded PGlite). */
    order: 'interleaved' | 'server by server';
  };
  database: { kind: 'postgres' | 'pglite'; source: string; description: string; version: string };
  redis: { source: string };
  dataset: Dataset['counts'] & { generatedInSeconds: number; readProducts: number };
  servers: Partial<Record<ServerKind, string>>;
  scenarios: { name: ScenarioName; title: string; description: string; postgraphile: boolean; peerMissing?: string }[];
  documents: typeof DOCUMENTS;
  postgraphileDocuments: typeof POSTGRAPHILE_DOCUMENTS;
  /**
   * For scenarios nothing writes to: did the peer give the same `data` as
   * Parley for the same probe requests, once both are put in one canonical
   * shape (see Scenario.normalise)?
   */
  sameAnswers: Partial<Record<ScenarioName, Partial<Record<PeerKind, boolean>>>>;
  /** What differed, for each false above. */
  answerMismatches: string[];
  runs: ServerRun[];
}

const MEASURED_SEED = 1;
const WARMUP_SEED = 2;
/** Rounds a scenario's measured time is cut into on PostgreSQL (see above); each round draws other requests (seed). */
export const ROUNDS = 3;
const PROBE_SEED = 3;
const PROBES = 6;

const dialectOf = (kind: ServerKind): Dialect => (kind === 'postgraphile' ? 'postgraphile' : 'parley');
const serves = (kind: ServerKind, scenario: Scenario) => kind !== 'postgraphile' || scenario.postgraphile;

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const machine = machineInfo();
  const names = options.scenarios ?? SCENARIO_NAMES;
  const infra = await provisionInfra(options.infra);
  try {
    const { dataset, version } = await prepareDatabase(infra, options.size, log);
    const peerCursors: PeerCursors = new Map();
    const parleyCursors: ParleyCursors = new Map();
    const scenarios = buildScenarios(dataset, peerCursors, parleyCursors);
    const interleaved = infra.database.kind === 'postgres';
    const kinds = interleaved ? SERVERS : SERVERS.filter((k) => k !== 'postgraphile');
    if (!interleaved) log('  embedded PGlite opens in one process at a time: servers run one after the other, without PostGraphile');
    const postmaster = interleaved ? localPostmaster(infra.database.options.url!) : null;
    const runs: ServerRun[] = [];
    const servers: BenchResult['servers'] = {};
    const parleyBytes = new Map<ScenarioName, number>();
    const parleyAnswers = new Map<ScenarioName, unknown[]>();
    const sameAnswers: BenchResult['sameAnswers'] = {};
    const answerMismatches: string[] = [];
    let written = false;

    const start = async (kind: ServerKind) => {
      log(`starting ${kind}...`);
      const server = await launchServer(kind, infra.serverEnv(), kind === 'parley' ? options.parleyNodeArgs : []);
      servers[kind] = server.description;
      if (kind === 'parley' && names.includes('nestedCursor') && !parleyCursors.size) {
        await fetchParleyCursors(server, dataset, parleyCursors);
        log(`  fetched Parley's cursors of ${parleyCursors.size} conversations`);
      }
      if (kind === 'postgraphile' && names.includes('nestedCursor')) {
        await fetchPeerCursors(server, dataset, peerCursors);
        log(`  fetched PostGraphile's cursors of ${peerCursors.size} conversations`);
      }
      return server;
    };

    /** Round 0 warms the server up and checks its answers; every round measures it with requests of its own. */
    const runOne = async (server: RunningServer, name: ScenarioName, round = 0, rounds = 1): Promise<ServerRun> => {
      const scenario = scenarios[name];
      // On PostgreSQL the undo runs beside the idle servers; PGlite's waits for the server to stop (below).
      if (written && interleaved) {
        await undoWrites(infra, dataset, log);
        written = false;
      }
      // The ceiling answers as many bytes as Parley did; the others must answer correctly before any load.
      if (server.kind === 'ceiling') await server.setBody(parleyBytes.get(name) ?? 1024);
      else if (round === 0) {
        const answers = await probe(server, scenario);
        if (scenario.comparable && server.kind === 'parley') parleyAnswers.set(name, answers);
        if (scenario.comparable && server.kind !== 'parley' && parleyAnswers.has(name)) {
          const difference = firstDifference(parleyAnswers.get(name)!, answers);
          (sameAnswers[name] ??= {})[server.kind] = difference === null;
          if (difference !== null) {
            const line = `${server.kind} answered ${name} differently from Parley: ${difference}`;
            answerMismatches.push(line);
            log(`  !!! ANSWERS DIFFER: ${line}`);
          }
        }
      }
      const run = await measure(server, scenario, options, server.kind === 'parley' ? infra.adminToken : undefined, postmaster, {
        warmup: round === 0,
        seconds: options.seconds / rounds,
        seed: MEASURED_SEED + round * 10,
      });
      if (server.kind === 'parley' && round === 0) parleyBytes.set(name, run.load.meanResponseBytes);
      // The ceiling stores nothing, whatever the requests it answered were.
      written ||= server.kind !== 'ceiling' && (run.load.writes > 0 || !scenario.comparable);
      return run;
    };
    const record = (run: ServerRun) => {
      const { latencies: _, ...load } = run.load;
      runs.push({ ...run, load });
      log(`  ${run.server.padEnd(12)} ${run.scenario.padEnd(12)} ${summary(run)}`);
    };

    if (interleaved) {
      const running: RunningServer[] = [];
      try {
        for (const kind of kinds) running.push(await start(kind));
        for (const name of names) {
          const serving = running.filter((server) => serves(server.kind, scenarios[name]));
          const rounds = new Map<ServerKind, ServerRun[]>(serving.map((server) => [server.kind, []]));
          for (let round = 0; round < ROUNDS; round++) {
            for (const server of serving) rounds.get(server.kind)!.push(await runOne(server, name, round, ROUNDS));
          }
          for (const server of serving) record(mergeRuns(rounds.get(server.kind)!));
        }
      } finally {
        for (const server of running) await server.stop();
      }
    } else {
      for (const kind of kinds) {
        if (written) {
          await undoWrites(infra, dataset, log);
          written = false;
        }
        const server = await start(kind);
        try {
          for (const name of names) record(await runOne(server, name));
        } finally {
          await server.stop();
        }
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
        order: interleaved ? 'interleaved' : 'server by server',
      },
      database: { kind: infra.database.kind, source: infra.database.source, description: describeDatabase(infra.database), version },
      redis: { source: infra.redis.source },
      dataset: { ...dataset.counts, generatedInSeconds: dataset.generatedInMs / 1000, readProducts: dataset.readProducts.length },
      servers,
      scenarios: names.map((n) => {
        const { title, description, postgraphile, peerMissing } = scenarios[n];
        return { name: n, title, description, postgraphile: postgraphile && interleaved, ...(peerMissing ? { peerMissing } : {}) };
      }),
      documents: DOCUMENTS,
      postgraphileDocuments: POSTGRAPHILE_DOCUMENTS,
      sameAnswers,
      answerMismatches,
      runs,
    };
  } finally {
    await infra.dispose();
  }
}

/** Migrates the bench database and fills it; closed again before any server opens it. */
export async function prepareDatabase(
  infra: BenchInfra,
  size: SizeName,
  log: (line: string) => void,
): Promise<{ dataset: Dataset; version: string }> {
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
 * Warm-up, then the measured run, with the server's SQL, CPU and cache
 * counters read around it. `adminToken` is given for Parley, whose cacheStats
 * need it; `postmaster` is the local PostgreSQL's, for its CPU time.
 */
async function measure(
  server: RunningServer,
  scenario: Scenario,
  options: BenchOptions,
  adminToken: string | undefined,
  postmaster: number | null,
  run: { warmup: boolean; seconds: number; seed: number },
): Promise<ServerRun> {
  const load = { url: server.url, scenario, connections: options.connections, dialect: dialectOf(server.kind) };
  if (run.warmup && options.warmupSeconds > 0) await runLoad({ ...load, seconds: options.warmupSeconds, seed: WARMUP_SEED });
  await settle(server);
  const cacheBefore = adminToken ? await readCacheCounters(server.url, adminToken) : null;
  await server.resetSql();
  const cpuBefore = { server: treeCpuMs(server.pid), postgres: postmaster ? treeCpuMs(postmaster) : null };
  const result = await runLoad({ ...load, seconds: run.seconds, seed: run.seed });
  const sql = await settle(server);
  const cpuAfter = { server: treeCpuMs(server.pid), postgres: postmaster ? treeCpuMs(postmaster) : null };
  const cacheAfter = cacheBefore && adminToken ? await readCacheCounters(server.url, adminToken) : null;
  const perResponse = (before: number | null, after: number | null) =>
    before !== null && after !== null && result.requests > 0 ? (after - before) / result.requests : null;
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
    cpu: {
      serverMs: perResponse(cpuBefore.server, cpuAfter.server),
      postgresMs: server.kind === 'ceiling' ? null : perResponse(cpuBefore.postgres, cpuAfter.postgres),
    },
  };
}

/** One server's rounds of one scenario as one run: counts summed, percentiles over every response, CPU over every request. */
export function mergeRuns(rounds: readonly ServerRun[]): ServerRun {
  const first = rounds[0]!;
  const requests = rounds.map((r) => r.load.requests);
  const weighted = (value: (r: ServerRun) => number | null) => {
    let sum = 0;
    let weight = 0;
    rounds.forEach((r, i) => {
      const v = value(r);
      if (v === null) return;
      sum += v * requests[i]!;
      weight += requests[i]!;
    });
    return weight > 0 ? sum / weight : rounds.every((r) => value(r) === null) ? null : 0;
  };
  const sqls = rounds.map((r) => r.sql).filter((s): s is SqlPerRequest => s !== null);
  const statements = sqls.reduce((sum, s) => sum + s.statements, 0);
  const sqlRequests = sqls.reduce((sum, s) => sum + s.requests, 0);
  const caches = rounds.map((r) => r.cache).filter((c): c is CacheCounts => c !== null);
  const sumOf = (values: (number | null)[]) => (values.some((v) => v === null) ? null : values.reduce<number>((a, b) => a + (b ?? 0), 0));
  const lookups = caches.reduce((sum, c) => sum + c.lookups, 0);
  const hits = caches.reduce((sum, c) => sum + c.hits, 0);
  const responseLookups = sumOf(caches.map((c) => c.response?.lookups ?? null));
  const responseHits = sumOf(caches.map((c) => c.response?.hits ?? null));
  return {
    server: first.server,
    scenario: first.scenario,
    load: mergeLoads(rounds.map((r) => r.load)),
    sql: sqls.length
      ? {
          perRequest: sqlRequests ? statements / sqlRequests : 0,
          maxPerRequest: Math.max(...sqls.map((s) => s.maxPerRequest)),
          statements,
          requests: sqlRequests,
          cutOff: sqls.reduce((sum, s) => sum + s.cutOff, 0),
        }
      : null,
    cache: caches.length
      ? {
          lookups,
          hits,
          hitRate: lookups > 0 ? hits / lookups : 0,
          response:
            responseLookups !== null && responseHits !== null
              ? { lookups: responseLookups, hits: responseHits, hitRate: responseLookups > 0 ? responseHits / responseLookups : 0 }
              : null,
          dedupJoins: sumOf(caches.map((c) => c.dedupJoins)),
        }
      : null,
    cpu: { serverMs: weighted((r) => r.cpu.serverMs), postgresMs: weighted((r) => r.cpu.postgresMs) },
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
 * answers' `data` in the scenario's canonical shape, to compare the peers'
 * with Parley's.
 */
async function probe(server: RunningServer, scenario: Scenario): Promise<unknown[]> {
  // A fresh generator with a fixed seed: the same requests for every server.
  const random = seededRandom(PROBE_SEED);
  const dialect = dialectOf(server.kind);
  const answers: unknown[] = [];
  for (let i = 0; i < PROBES; i++) {
    const request = scenario.next(random);
    const body = (await post(server, request.key, requestBody(request, dialect))) as { data?: unknown };
    answers.push(scenario.normalise ? scenario.normalise(body.data, dialect) : body.data);
  }
  return answers;
}

async function post(server: RunningServer, key: string, body: string): Promise<unknown> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (server.kind !== 'postgraphile') headers.authorization = `Bearer ${key}`;
  const response = await fetch(`${server.url}/graphql`, { method: 'POST', headers, body, signal: AbortSignal.timeout(30_000) });
  const text = await response.text();
  let json: { data?: unknown; errors?: unknown } | undefined;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  if (response.status !== 200 || !json || json.errors) {
    throw new Error(`${server.kind} answered HTTP ${response.status}: ${text.slice(0, 500)}\nto ${body.slice(0, 300)}`);
  }
  return json;
}

/** Parley's cursor of every read conversation, asked of Parley, page by page (clients page with the cursors they were given). */
async function fetchParleyCursors(server: RunningServer, dataset: Dataset, into: ParleyCursors): Promise<void> {
  type Page = {
    data: { conversations: { edges: { cursor: string; node: { id: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } };
  };
  for (const product of dataset.readProducts) {
    let after: string | null = null;
    for (;;) {
      const body: string = JSON.stringify({ query: DOCUMENTS.cursors, variables: { after } });
      const page = (await post(server, product.key, body)) as Page;
      const { conversations } = page.data;
      for (const edge of conversations.edges) into.set(decodeGlobalID(edge.node.id).id, edge.cursor);
      if (!conversations.pageInfo.hasNextPage || !conversations.pageInfo.endCursor) break;
      after = conversations.pageInfo.endCursor;
    }
  }
}

/** PostGraphile's cursor of every read conversation, asked of PostGraphile (its cursors encode the order's values). */
async function fetchPeerCursors(server: RunningServer, dataset: Dataset, into: PeerCursors): Promise<void> {
  for (const product of dataset.readProducts) {
    const body = JSON.stringify({ query: POSTGRAPHILE_DOCUMENTS.cursors, variables: { productId: product.id } });
    const answer = (await post(server, product.key, body)) as {
      data: { allConversations: { edges: { cursor: string; node: { rowId: string } }[] } };
    };
    for (const edge of answer.data.allConversations.edges) into.set(edge.node.rowId, edge.cursor);
  }
}

/** The throwaway or local PostgreSQL's postmaster, for its CPU time; null when it is not a process of this machine. */
function localPostmaster(url: string): number | null {
  const { hostname, port } = new URL(url);
  if (!['127.0.0.1', 'localhost', '::1', '[::1]'].includes(hostname)) return null;
  return findPostmaster(Number(port || 5432));
}

function summary(run: ServerRun): string {
  const { load, sql, cache } = run;
  const parts = [
    `${load.requestsPerSecond.toFixed(0).padStart(6)} req/s`,
    `p50 ${load.latencyMs.p50.toFixed(1)} ms`,
    `p99 ${load.latencyMs.p99.toFixed(1)} ms`,
  ];
  if (sql) parts.push(`${sql.perRequest.toFixed(1)} SQL/req`);
  if (run.cpu.serverMs !== null) parts.push(`CPU ${run.cpu.serverMs.toFixed(2)} ms/req`);
  if (run.cpu.postgresMs !== null) parts.push(`pg CPU ${run.cpu.postgresMs.toFixed(2)} ms/req`);
  if (cache) parts.push(`cache ${(cache.hitRate * 100).toFixed(0)} %`);
  if (cache?.response) parts.push(`response cache ${(cache.response.hitRate * 100).toFixed(0)} %`);
  if (cache?.dedupJoins != null) parts.push(`dedup ${((cache.dedupJoins / Math.max(1, load.requests)) * 100).toFixed(1)} %`);
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
