import { beforeAll, describe, expect, inject, it } from 'vitest';
import { runBench, SERVERS, type BenchResult } from '../../bench/harness.js';
import { renderMarkdown } from '../../bench/report.js';
import { SCENARIO_NAMES } from '../../bench/scenarios.js';

/**
 * `npm run bench` end to end on the tiny dataset, a fraction of a second per
 * run, so the harness cannot rot: every server process starts, answers every
 * scenario without errors, and the report has every row. Numbers are checked
 * for sanity, never for speed.
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
  }, 240_000);

  it('runs every scenario against Parley, the "before" server and the ceiling, without errors', () => {
    expect(result.runs.map((r) => `${r.server}/${r.scenario}`).sort()).toEqual(
      SERVERS.flatMap((s) => SCENARIO_NAMES.map((n) => `${s}/${n}`)).sort(),
    );
    for (const run of result.runs) {
      expect(run.load.errorSample, `${run.server}/${run.scenario}`).toBeUndefined();
      expect(run.load.errors).toBe(0);
      expect(run.load.requests).toBeGreaterThan(0);
      expect(run.load.latencyMs.p50).toBeGreaterThan(0);
      expect(run.load.latencyMs.p99).toBeGreaterThanOrEqual(run.load.latencyMs.p50);
      if (run.server === 'ceiling') expect(run.sql).toBeNull();
      else expect(run.sql!.requests).toBeGreaterThan(0);
    }
    for (const scenario of ['sendMessage', 'mixed'] as const) {
      for (const server of ['parley', 'baseline'] as const) {
        expect(result.runs.find((r) => r.server === server && r.scenario === scenario)!.load.writes).toBeGreaterThan(0);
      }
    }
  });

  it('keeps the "before" server honest: same answers as Parley, one query per field', () => {
    expect(result.sameAnswers).toEqual({ nested: true, viewer: true, search: true });
    // Auth + conversations + messages of each of the 20 conversations + feedback per conversation + lastMessage.
    const nested = result.runs.find((r) => r.server === 'baseline' && r.scenario === 'nested')!;
    expect(nested.sql!.maxPerRequest).toBeGreaterThanOrEqual(40);
  });

  it('reports every scenario with the before/after table and machine info', () => {
    const markdown = renderMarkdown(result);
    expect(markdown).toContain('| Metric | Before | After | Improvement |');
    for (const { title } of result.scenarios) expect(markdown).toContain(`**${title}** — requests/s`);
    expect(result.machine.cores).toBeGreaterThan(0);
    expect(result.machine.node).toBe(process.version);
    expect(result.database.kind).toBe(inject('postgresUrl') ? 'postgres' : 'pglite');
    expect(result.dataset.messages).toBeGreaterThan(0);
  });
});
