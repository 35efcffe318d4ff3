import { readFileSync, writeFileSync } from 'node:fs';
import type { BenchResult, ServerRun } from './harness.js';
import type { ScenarioName } from './scenarios.js';

/**
 * The before/after table (Metric | Before | After | Improvement, plus the
 * ceiling of the machine) and the notes that say how each number was made.
 */

export const README_START = '<!-- bench:start -->';
export const README_END = '<!-- bench:end -->';

const int = (n: number) => Math.round(n).toLocaleString('en-US');
const ms = (n: number) => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const ratio = (n: number) => (n >= 100 ? '> 100' : n >= 10 ? n.toFixed(0) : n.toFixed(1));

function run(result: BenchResult, server: ServerRun['server'], scenario: ScenarioName): ServerRun | undefined {
  return result.runs.find((r) => r.server === server && r.scenario === scenario);
}

/** "7.3× more", "2.0× fewer", "same": how much better a is than b (higher is better when `higherBetter`). */
function improvement(after: number, before: number, higherBetter: boolean, more: string, less: string): string {
  if (!(after > 0) || !(before > 0)) return '—';
  const factor = higherBetter ? after / before : before / after;
  if (factor >= 0.95 && factor <= 1.05) return 'same';
  return factor > 1 ? `${ratio(factor)}× ${higherBetter ? more : less}` : `${ratio(1 / factor)}× ${higherBetter ? less : more}`;
}

function sqlImprovement(after: number, before: number): string {
  if (before > 0 && after === 0) return 'none sent';
  return improvement(after, before, false, 'more', 'fewer');
}

const percent = (n: number) => (n < 0.1 ? `${(n * 100).toFixed(1)} %` : `${(n * 100).toFixed(0)} %`);

const latency = (r: ServerRun | undefined) =>
  r ? `${ms(r.load.latencyMs.p50)} / ${ms(r.load.latencyMs.p95)} / ${ms(r.load.latencyMs.p99)}` : '—';
function statements(r: ServerRun | undefined): string {
  const n = r?.sql?.perRequest;
  if (n === undefined) return '—';
  if (n === 0) return '0';
  return n < 1 ? n.toFixed(2) : n < 10 ? n.toFixed(1) : int(n);
}
const hitRate = (r: ServerRun | undefined) => (r?.cache && r.cache.lookups > 0 ? percent(r.cache.hitRate) : 'n/a');

/** The command that reproduces the run. */
export function commandLine(result: BenchResult): string {
  const s = result.settings;
  const flags = [
    s.size !== 'default' ? `--size ${s.size}` : '',
    s.seconds !== 10 ? `--duration ${s.seconds}` : '',
    s.warmupSeconds !== 2 ? `--warmup ${s.warmupSeconds}` : '',
    s.connections !== 10 ? `--connections ${s.connections}` : '',
    result.database.source === 'embedded' ? '--embedded' : '',
  ].filter(Boolean);
  return flags.length ? `npm run bench -- ${flags.join(' ')}` : 'npm run bench';
}

export function renderTable(result: BenchResult): string {
  const rows = ['| Metric | Before | After | Improvement | Ceiling | After ÷ ceiling |', '|---|---:|---:|---:|---:|---:|'];
  const row = (...cells: string[]) => rows.push(`| ${cells.join(' | ')} |`);
  for (const { name, title } of result.scenarios) {
    const [a, b, c] = [run(result, 'parley', name), run(result, 'baseline', name), run(result, 'ceiling', name)];
    const rps = (r: ServerRun | undefined) => (r ? int(r.load.requestsPerSecond) : '—');
    const p95 = (r: ServerRun) => r.load.latencyMs.p95;
    row(
      `**${title}** — requests/s`,
      rps(b),
      `**${rps(a)}**`,
      a && b ? improvement(a.load.requestsPerSecond, b.load.requestsPerSecond, true, 'more', 'fewer') : '—',
      rps(c),
      a && c ? percent(a.load.requestsPerSecond / c.load.requestsPerSecond) : '—',
    );
    row(
      `${title} — latency p50 / p95 / p99 (ms)`,
      latency(b),
      latency(a),
      a && b ? `${improvement(p95(a), p95(b), false, 'higher', 'lower')} (p95)` : '—',
      latency(c),
      a && c && p95(c) > 0 ? `${ratio(p95(a) / p95(c))}× (p95)` : '—',
    );
    row(
      `${title} — SQL statements / request`,
      statements(b),
      statements(a),
      a?.sql && b?.sql ? sqlImprovement(a.sql.perRequest, b.sql.perRequest) : '—',
      '0',
      '—',
    );
    row(`${title} — cache hit rate`, 'n/a (no cache)', hitRate(a), '—', '—', '—');
  }
  return rows.join('\n');
}

export function renderMarkdown(result: BenchResult): string {
  const s = result.settings;
  const d = result.dataset;
  const m = result.machine;
  const errors = result.runs.filter((r) => r.load.errors > 0);
  const writes = result.runs.filter((r) => r.load.writes > 0 && r.server !== 'ceiling');
  const same = Object.entries(result.sameAnswers);
  const lines = [
    `# Parley benchmark`,
    '',
    `\`${commandLine(result)}\` on ${result.startedAt.slice(0, 10)}: ` +
      `${int(d.products)} products, ${int(d.conversations)} conversations, ${int(d.messages)} messages, ` +
      `${int(d.feedback)} feedback, ${int(d.knowledge)} knowledge entries · ${result.database.version} ` +
      `(${result.database.source}) · Redis: ${result.redis.source} · ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}` +
      ` · load average ${m.loadAverageAtStart.map((n) => n.toFixed(2)).join(' ')} at the start.`,
    '',
    renderTable(result),
    '',
    `**Before** = the same schema.graphql on graphql-yoga with one Prisma call per field (bench/baseline/), ` +
      `**After** = Parley as built, **Ceiling** = bare node:http answering a fixed body of the size of Parley's answers. ` +
      `Same database, same documents, same requests (seeded), one server at a time, each in its own process.`,
    '',
    '## How it was measured',
    '',
    `- Load: ${s.loadGenerator}, ${s.connections} keep-alive connections, no pipelining, ${s.seconds} s per scenario and server after ${s.warmupSeconds} s of warm-up, over 127.0.0.1. ` +
      `The machine's ${m.cores} cores are shared by the load generator, the server and the database.`,
    `- Latency percentiles are exact, over every response of the measured run (autocannon's per-response times).`,
    `- SQL statements / request: Parley's own counter (src/infra/sql-stats.ts wraps the Prisma driver adapter and charges every statement that reaches the database to the request that caused it). ` +
      `Both servers open the database through Parley's openDatabase and run each HTTP request in its own scope; a bench-only wrapper (bench/servers/sql-capture.ts) ties each scope to its HTTP request ` +
      `through Node's \`http.server.request.start\` diagnostics channel and sums the statements of every request answered during the measured run, over their number: ` +
      `a request answered from cache without SQL counts as 0; requests still running when the run ended are waited for and counted.`,
    `- Cache hit rate: from Parley's admin \`cacheStats\` (L1 + L2 hits over L1 lookups during the measured run); n/a while Parley exposes no cache statistics.`,
    `- Database: ${result.database.description}.`,
    `- Data: read scenarios use four fifths of the products, which nothing writes to during the bench, so every server reads the same rows; ` +
      `sendMessage and the mixed scenario use the other fifth, so the mixed scenario's reads are of products being written to.`,
  ];
  if (same.length) {
    lines.push(
      `- Same answers: for ${same.map(([n]) => n).join(', ')} the "before" server returned ` +
        (same.every(([, v]) => v) ? 'exactly the same `data` as Parley for the same requests.' : `different data than Parley for ${same.filter(([, v]) => !v).map(([n]) => n).join(', ')}.`),
    );
  }
  for (const r of writes) {
    lines.push(`- ${r.server === 'parley' ? 'After' : 'Before'}, ${r.scenario}: ${int(r.load.writes)} messages sent, ${int(r.load.writesWithReply)} with an assistant \`reply\` in the payload.`);
  }
  lines.push(
    errors.length
      ? `- **Errors**: ${errors.map((r) => `${r.server}/${r.scenario}: ${r.load.errors} (${r.load.errorSample})`).join('; ')}`
      : `- Every one of the ${int(result.runs.reduce((n, r) => n + r.load.requests, 0))} measured requests was answered without error.`,
    `- Wall time of the whole run, dataset included: ${result.wallSeconds.toFixed(0)} s (dataset: ${d.generatedInSeconds.toFixed(1)} s).`,
    `- Commit ${result.git.commit?.slice(0, 12) ?? 'unknown'}${result.git.dirtyPaths.length ? ` with uncommitted changes to ${result.git.dirtyPaths.length} files` : ''}.`,
    '',
  );
  return lines.join('\n');
}

/** Replaces the README's table between the bench markers; false when the markers are missing. */
export function updateReadme(path: string, result: BenchResult): boolean {
  const readme = readFileSync(path, 'utf8');
  const start = readme.indexOf(README_START);
  const end = readme.indexOf(README_END);
  if (start === -1 || end < start) return false;
  const d = result.dataset;
  const m = result.machine;
  const block = [
    README_START,
    `Measured by \`npm run bench\` on ${result.startedAt.slice(0, 10)} (${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}; ` +
      `${result.database.version}, ${result.database.source}; ${int(d.conversations)} conversations, ${int(d.messages)} messages; ` +
      `${result.settings.connections} connections, ${result.settings.seconds} s per run). Details: [bench/results/latest.md](bench/results/latest.md).`,
    '',
    renderTable(result),
    README_END,
  ].join('\n');
  writeFileSync(path, readme.slice(0, start) + block + readme.slice(end + README_END.length));
  return true;
}
