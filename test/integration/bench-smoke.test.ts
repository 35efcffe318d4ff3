import { beforeAll, describe, expect, inject, it } from 'vitest';
import { runBench, SERVERS, type BenchResult } from '../../bench/harness.js';
import { renderMarkdown } from '../../bench/report.js';
import { SCENARIO_NAMES } from '../../bench/scenarios.js';

/**
 * `npm run bench` end to end on the tiny dataset, two seconds per run, so the
 * harness cannot rot: every server process starts, answers every scenario it
 * serves without errors, the peers answer what Parley answers, and the report
 * has every row. Numbers are checked for sanity, never for speed. On
 * PostgreSQL (CI) PostGraphile runs too; on PGlite it cannot (one process).
 */

describe('bench harness (tiny dataset)', () => {
  let result: BenchResult;

  beforeAll(async () => {
    const postgresUrl = inject('postgresUrl');
    const redisUrl = inject('redisUrl');
    result = await runBench({
      size: 'tiny',
      // Long enough that the slowest server (the N+1 baseline on the nested read)
      // completes requests even on a loaded 2-core machine.
      seconds: 2,
      warmupSeconds: 0.2,
      connections: 4,
      // The test PostgreSQL when there is one (the bench makes and drops its own database on it), else PGlite.
      infra: { databaseUrl: postgresUrl || undefined, redisUrl: redisUrl || undefined, startLocalServers: false },
    });
  }, 420_000);

  const postgres = () => Boolean(inject('postgresUrl'));
  const peerScenarios = ['nested', 'nestedCursor', 'widget', 'viewerName'];

  it('runs every scenario against Parley, PostGraphile (where it has an equivalent), the "before" server and the ceiling, without errors', () => {
    const expected = SERVERS.flatMap((s) =>
      SCENARIO_NAMES.filter((n) => s !== 'postgraphile' || (postgres() && peerScenarios.includes(n))).map((n) => `${s}/${n}`),
    );
    expect(result.runs.map((r) => `${r.server}/${r.scenario}`).sort()).toEqual(expected.sort());
    expect(result.settings.order).toBe(postgres() ? 'interleaved' : 'server by server');
    for (const run of result.runs) {
      expect(run.load.errorSample, `${run.server}/${run.scenario}`).toBeUndefined();
      expect(run.load.errors).toBe(0);
      expect(run.load.requests).toBeGreaterThan(0);
      expect(run.load.latencyMs.p50).toBeGreaterThan(0);
      expect(run.load.latencyMs.p99).toBeGreaterThanOrEqual(run.load.latencyMs.p50);
      if (run.server === 'ceiling') expect(run.sql).toBeNull();
      else expect(run.sql!.requests).toBeGreaterThan(0);
      // /proc is there on Linux (CI): every server's CPU time per request is measured.
      if (process.platform === 'linux') expect(run.cpu.serverMs, `${run.server}/${run.scenario}`).toBeGreaterThanOrEqual(0);
    }
    // Parley's admin cacheStats answered around every run (hit rates, dedup joins).
    for (const run of result.runs.filter((r) => r.server === 'parley')) expect(run.cache, run.scenario).not.toBeNull();
    for (const scenario of ['sendMessage', 'mixed'] as const) {
      for (const server of ['parley', 'baseline'] as const) {
        expect(result.runs.find((r) => r.server === server && r.scenario === scenario)!.load.writes).toBeGreaterThan(0);
      }
    }
  });

  it('keeps the peers honest: the same answers as Parley, in one canonical shape', () => {
    expect(result.answerMismatches).toEqual([]);
    const baseline = Object.fromEntries(['nested', 'nestedCursor', 'widget', 'viewer', 'viewerName', 'search'].map((n) => [n, true]));
    for (const [name, same] of Object.entries(result.sameAnswers)) expect(same.baseline, name).toBe(baseline[name]);
    expect(Object.keys(result.sameAnswers).sort()).toEqual(Object.keys(baseline).sort());
    for (const name of peerScenarios) {
      expect(result.sameAnswers[name as keyof typeof result.sameAnswers]?.postgraphile, name).toBe(postgres() ? true : undefined);
    }
  });

  it('keeps the "before" server naive: one query per field', () => {
    // Auth + conversations + messages of each of the 20 conversations + feedback per conversation + lastMessage.
    const nested = result.runs.find((r) => r.server === 'baseline' && r.scenario === 'nested')!;
    expect(nested.sql!.maxPerRequest).toBeGreaterThanOrEqual(40);
  });

  it('reports every scenario with the before/after table and machine info', () => {
    const markdown = renderMarkdown(result);
    expect(markdown).toContain('| Metric | Before | PostGraphile | Parley | Parley vs before | Parley vs PostGraphile |');
    for (const { title } of result.scenarios) expect(markdown).toContain(`**${title}** — requests/s`);
    expect(result.machine.cores).toBeGreaterThan(0);
    expect(result.machine.node).toBe(process.version);
    expect(result.database.kind).toBe(inject('postgresUrl') ? 'postgres' : 'pglite');
    expect(result.dataset.messages).toBeGreaterThan(0);
  });
});
