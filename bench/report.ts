import { readFileSync, writeFileSync } from 'node:fs';
import { ROUNDS, type BenchResult, type ServerRun } from './harness.js';
import { SCENARIO_NAMES, type ScenarioName } from './scenarios.js';

/**
 * The table (Parley beside its peer PostGraphile 5, the "before" server and
 * the ceiling of the machine) and the notes that say how each number was made.
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

const latency = (r: ServerRun | undefined) => (r ? `${ms(r.load.latencyMs.p50)} / ${ms(r.load.latencyMs.p95)} / ${ms(r.load.latencyMs.p99)}` : '—');
function statements(r: ServerRun | undefined): string {
  const n = r?.sql?.perRequest;
  if (n === undefined) return '—';
  if (n === 0) return '0';
  return n < 1 ? n.toFixed(2) : n < 10 ? n.toFixed(1) : int(n);
}
const cpu = (n: number | null | undefined) => (n === null || n === undefined ? 'n/a' : ms(n));
const hitRate = (r: ServerRun | undefined) => (r?.cache && r.cache.lookups > 0 ? percent(r.cache.hitRate) : 'n/a');
const responseHitRate = (r: ServerRun | undefined) =>
  r?.cache?.response && r.cache.response.lookups > 0 ? percent(r.cache.response.hitRate) : 'n/a';
const dedupShare = (r: ServerRun | undefined) =>
  r?.cache && r.cache.dedupJoins !== null && r.load.requests > 0 ? percent(r.cache.dedupJoins / r.load.requests) : 'n/a';

/** The command that reproduces the run. */
export function commandLine(result: BenchResult): string {
  const s = result.settings;
  const flags = [
    s.size !== 'default' ? `--size ${s.size}` : '',
    s.seconds !== 10 ? `--duration ${s.seconds}` : '',
    s.warmupSeconds !== 2 ? `--warmup ${s.warmupSeconds}` : '',
    s.connections !== 10 ? `--connections ${s.connections}` : '',
    result.scenarios.length !== SCENARIO_NAMES.length ? `--scenarios ${result.scenarios.map((sc) => sc.name).join(',')}` : '',
    result.database.source === 'embedded' ? '--embedded' : '',
  ].filter(Boolean);
  return flags.length ? `npm run bench -- ${flags.join(' ')}` : 'npm run bench';
}

/**
 * One block of rows per scenario: Parley, its peer PostGraphile 5, the
 * "before" server and the ceiling side by side, and how Parley compares with
 * the first two. "n/a" where a server has no equivalent (see the notes).
 */
export function renderTable(result: BenchResult): string {
  const rows = [
    '| Metric | Before | PostGraphile | Parley | Parley vs before | Parley vs PostGraphile | Ceiling | Parley ÷ ceiling |',
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const row = (...cells: string[]) => rows.push(`| ${cells.join(' | ')} |`);
  const compare = (
    a: ServerRun | undefined,
    b: ServerRun | undefined,
    value: (r: ServerRun) => number,
    higherBetter: boolean,
    more: string,
    less: string,
  ) => (a && b ? improvement(value(a), value(b), higherBetter, more, less) : '—');
  for (const { name, title, postgraphile } of result.scenarios) {
    const [a, g, b, c] = [
      run(result, 'parley', name),
      run(result, 'postgraphile', name),
      run(result, 'baseline', name),
      run(result, 'ceiling', name),
    ];
    const peer = (cell: string) => (postgraphile ? cell : 'n/a');
    const rps = (r: ServerRun | undefined) => (r ? int(r.load.requestsPerSecond) : '—');
    const reqs = (r: ServerRun) => r.load.requestsPerSecond;
    const p99 = (r: ServerRun) => r.load.latencyMs.p99;
    const sqlOf = (r: ServerRun) => r.sql?.perRequest ?? NaN;
    row(
      `**${title}** — requests/s`,
      rps(b),
      peer(rps(g)),
      `**${rps(a)}**`,
      compare(a, b, reqs, true, 'more', 'fewer'),
      peer(compare(a, g, reqs, true, 'more', 'fewer')),
      rps(c),
      a && c ? percent(a.load.requestsPerSecond / c.load.requestsPerSecond) : '—',
    );
    row(
      `${title} — latency p50 / p95 / p99 (ms)`,
      latency(b),
      peer(latency(g)),
      latency(a),
      `${compare(a, b, p99, false, 'higher', 'lower')} (p99)`,
      peer(`${compare(a, g, p99, false, 'higher', 'lower')} (p99)`),
      latency(c),
      a && c && p99(c) > 0 ? `${ratio(p99(a) / p99(c))}× (p99)` : '—',
    );
    row(
      `${title} — SQL statements / request`,
      statements(b),
      peer(statements(g)),
      statements(a),
      a?.sql && b?.sql ? sqlImprovement(a.sql.perRequest, b.sql.perRequest) : '—',
      peer(a?.sql && g?.sql ? sqlImprovement(sqlOf(a), sqlOf(g)) : '—'),
      '0',
      '—',
    );
    for (const [what, of] of [
      ['server', (r: ServerRun) => r.cpu.serverMs],
      ['PostgreSQL', (r: ServerRun) => r.cpu.postgresMs],
    ] as const) {
      row(
        `${title} — ${what} CPU ms / request`,
        cpu(b && of(b)),
        peer(cpu(g && of(g))),
        cpu(a && of(a)),
        compare(a, b, (r) => of(r) ?? NaN, false, 'more', 'less'),
        peer(compare(a, g, (r) => of(r) ?? NaN, false, 'more', 'less')),
        what === 'server' ? cpu(c && of(c)) : '0',
        '—',
      );
    }
    row(
      `${title} — Parley: cache hits · response cache hits · requests that shared an in-flight execution`,
      'n/a (no cache)',
      peer('n/a (no cache)'),
      `${hitRate(a)} · ${responseHitRate(a)} · ${dedupShare(a)}`,
      '—',
      '—',
      '—',
      '—',
    );
  }
  return rows.join('\n');
}

export function renderMarkdown(result: BenchResult): string {
  const s = result.settings;
  const d = result.dataset;
  const m = result.machine;
  const errors = result.runs.filter((r) => r.load.errors > 0);
  const writes = result.runs.filter((r) => r.load.writes > 0 && r.server !== 'ceiling');
  const names: Record<ServerRun['server'], string> = { parley: 'Parley', postgraphile: 'PostGraphile', baseline: 'Before', ceiling: 'Ceiling' };
  const peerRan = result.runs.some((r) => r.server === 'postgraphile');
  const lines = [
    `# Parley benchmark`,
    '',
    `\`${commandLine(result)}\` on ${result.startedAt.slice(0, 10)}: ` +
      `${int(d.products)} products (${int(d.readProducts)} read), ${int(d.conversations)} conversations, ${int(d.messages)} messages, ` +
      `${int(d.feedback)} feedback, ${int(d.knowledge)} knowledge entries · ${result.database.version} ` +
      `(${result.database.source}) · Redis: ${result.redis.source} · ${m.cpu}, ${m.cores} cores, ${m.memoryGiB} GiB, Node ${m.node}` +
      ` · load average ${m.loadAverageAtStart.map((n) => n.toFixed(2)).join(' ')} at the start.`,
    '',
    renderTable(result),
    '',
    `**Parley** = Parley as built. **PostGraphile** = PostGraphile 5 (Amber preset, grafserv's node adapter, no GraphiQL, no watch), ` +
      `a GraphQL server that compiles each request into SQL, on the same database and rows, asked the equivalent queries of its generated schema ` +
      `(bench/scenarios.ts, POSTGRAPHILE_DOCUMENTS) with the product's id as a \`condition\` variable (it checks no key). ` +
      `**Before** = the same schema.graphql on graphql-yoga with one Prisma call per field (bench/baseline/). ` +
      `**Ceiling** = bare node:http answering a fixed body of the size of Parley's answers. ` +
      `Same database, same requests (seeded), each server in its own process, one measured at a time` +
      (s.order === 'interleaved'
        ? `, interleaved: for one scenario all servers in turn, ${ROUNDS} rounds sharing the measured time, then the next scenario.`
        : ', one server after the other (embedded PGlite opens in one process at a time).'),
    '',
    '## Scenarios',
    '',
    ...result.scenarios.map(
      (sc) =>
        `- **${sc.title}** (\`${sc.name}\`): ${sc.description}.${sc.peerMissing ? ` PostGraphile: n/a — ${sc.peerMissing}.` : !sc.postgraphile ? ' PostGraphile: n/a (not run: it needs PostgreSQL).' : ''}`,
    ),
    '',
    '## How it was measured',
    '',
    `- Load: ${s.loadGenerator}, ${s.connections} keep-alive connections, no pipelining, ${s.seconds} s per scenario and server after ${s.warmupSeconds} s of warm-up, over 127.0.0.1. ` +
      `The machine's ${m.cores} cores are shared by the load generator, the server and the database.`,
    `- Latency percentiles are exact, over every response of the measured run (autocannon's per-response times).`,
    `- SQL statements / request: Parley's own counter (src/infra/sql-stats.ts wraps the Prisma driver adapter and charges every statement that reaches the database to the request that caused it). ` +
      `Parley and the "before" server open the database through Parley's openDatabase and run each HTTP request in its own scope; PostGraphile's \`pg\` pool clients count each statement they send. ` +
      `A bench-only wrapper (bench/servers/sql-capture.ts) ties each statement to its HTTP request through Node's \`http.server.request.start\` diagnostics channel and sums the statements of every request answered during the measured run, over their number: ` +
      `a request answered from cache without SQL counts as 0; requests still running when the run ended are waited for and counted.`,
    `- CPU ms / request: user + system time of the server's process (and its children) from /proc/<pid>/stat, read before and after the measured run, over the responses. ` +
      `PostgreSQL's is the same over every process of the local cluster (n/a when the database is not a process of this machine). ` +
      `Unlike requests/s, CPU per request is little disturbed by other work on the machine.`,
    `- Parley's caches, from its admin \`cacheStats\` read before and after the run: cache hits = resolver caches' L1 + L2 hits over L1 lookups; ` +
      `response cache hits = the same over the \`response\` rows (n/a while Parley has none); shared in-flight = \`dedupJoins\` of the \`operations\` row over the responses.`,
    `- Database: ${result.database.description}.`,
    `- Data: read scenarios use four fifths of the products (${int(d.readProducts)}), which nothing writes to during the bench, so every server reads the same rows; ` +
      `sendMessage and the mixed scenario use the other fifth, so the mixed scenario's reads are of products being written to. ` +
      `What a server wrote is deleted before the next server runs.`,
  ];
  const compared = Object.entries(result.sameAnswers);
  if (compared.length) {
    const peers = (['postgraphile', 'baseline'] as const).filter((p) => compared.some(([, v]) => v[p] !== undefined));
    for (const peer of peers) {
      const list = compared.filter(([, v]) => v[peer] !== undefined);
      const differ = list.filter(([, v]) => v[peer] === false).map(([n]) => n);
      lines.push(
        `- Same answers, ${names[peer]}: for ${list.map(([n]) => n).join(', ')}, the probe requests' \`data\`, put in one canonical shape (uuids, field names, ISO times), was ` +
          (differ.length ? `**DIFFERENT from Parley's for ${differ.join(', ')}**.` : "exactly Parley's."),
      );
    }
  }
  for (const line of result.answerMismatches) lines.push(`- **Answers differ**: ${line}`);
  if (!peerRan) lines.push('- PostGraphile did not run: it needs PostgreSQL (embedded PGlite opens in one process only).');
  for (const r of writes) {
    lines.push(
      `- ${names[r.server]}, ${r.scenario}: ${int(r.load.writes)} messages sent, ${int(r.load.writesWithReply)} with an assistant \`reply\` in the payload.`,
    );
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
      `${result.settings.connections} connections, ${result.settings.seconds} s per scenario and server${result.settings.order === 'interleaved' ? ` in ${ROUNDS} rounds` : ''}). ` +
      'Details: [bench/results/latest.md](bench/results/latest.md).',
    '',
    renderTable(result),
    README_END,
  ].join('\n');
  writeFileSync(path, readme.slice(0, start) + block + readme.slice(end + README_END.length));
  return true;
}
