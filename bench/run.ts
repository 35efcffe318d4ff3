import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SIZES, type SizeName } from './dataset.js';
import { SCENARIO_NAMES, type ScenarioName } from './scenarios.js';
import { runBench } from './harness.js';
import { renderMarkdown, renderTable, updateReadme } from './report.js';

/**
 * `npm run bench [-- --size tiny|small|default] [--duration s] [--warmup s]
 * [--connections n] [--scenarios a,b] [--embedded] [--out dir]`
 *
 * Only a run with every default writes the results meant to be committed
 * (bench/results/latest.md, bench/results/<time>.json, the README table);
 * any other run writes bench/results/last-run.{md,json}.tmp, which git ignores.
 */

const DEFAULTS = { size: 'default', duration: '10', warmup: '2', connections: '10' } as const;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS = join(ROOT, 'bench', 'results');

const { values } = parseArgs({
  options: {
    size: { type: 'string', default: DEFAULTS.size },
    duration: { type: 'string', default: DEFAULTS.duration },
    warmup: { type: 'string', default: DEFAULTS.warmup },
    connections: { type: 'string', default: DEFAULTS.connections },
    scenarios: { type: 'string' },
    embedded: { type: 'boolean', default: false },
    out: { type: 'string' },
    /** e.g. --parley-node-args="--cpu-prof --cpu-prof-dir=/tmp/prof" to see where Parley's time goes. */
    'parley-node-args': { type: 'string', default: '' },
  },
});

function number(name: keyof typeof DEFAULTS, min: number, max: number): number {
  const value = Number(values[name]);
  if (!Number.isFinite(value) || value < min || value > max) fail(`--${name} must be a number from ${min} to ${max}`);
  return value;
}

/** `--scenarios nested,widget`: a subset, run in the usual order. */
function parseScenarios(list: string): ScenarioName[] {
  const wanted = list
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = wanted.filter((name) => !(SCENARIO_NAMES as readonly string[]).includes(name));
  if (!wanted.length || unknown.length)
    fail(`--scenarios takes a comma list of ${SCENARIO_NAMES.join(', ')}${unknown.length ? ` (not: ${unknown.join(', ')})` : ''}`);
  return SCENARIO_NAMES.filter((name) => wanted.includes(name));
}

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

if (!(values.size! in SIZES)) fail(`--size must be one of ${Object.keys(SIZES).join(', ')}`);
const size = values.size as SizeName;
const seconds = number('duration', 0.5, 600);
const warmupSeconds = number('warmup', 0, 120);
const connections = Math.round(number('connections', 1, 200));
const scenarios = values.scenarios === undefined ? undefined : parseScenarios(values.scenarios);
const commitWorthy =
  !values.out &&
  !values.embedded &&
  !scenarios &&
  !values['parley-node-args'] &&
  (['size', 'duration', 'warmup', 'connections'] as const).every((name) => values[name] === DEFAULTS[name]);

const result = await runBench({
  size,
  seconds,
  warmupSeconds,
  connections,
  ...(scenarios ? { scenarios } : {}),
  parleyNodeArgs: values['parley-node-args']!.split(' ').filter(Boolean),
  infra: {
    databaseUrl: values.embedded ? undefined : process.env.DATABASE_URL,
    redisUrl: values.embedded ? undefined : process.env.REDIS_URL,
    startLocalServers: !values.embedded,
  },
  log: (line) => process.stdout.write(`${line}\n`),
});

const failed = result.runs.some((r) => r.load.errors > 0 || r.load.requests === 0) || result.answerMismatches.length > 0;
const out = values.out ?? RESULTS;
mkdirSync(out, { recursive: true });
const markdown = renderMarkdown(result);
const stamp = result.startedAt.replace(/[:.]/g, '-');
const written: string[] = [];
const write = (name: string, text: string) => {
  writeFileSync(join(out, name), text);
  written.push(relative(process.cwd(), join(out, name)));
};
if (commitWorthy && !failed) {
  write(`${stamp}.json`, `${JSON.stringify(result, null, 2)}\n`);
  write('latest.md', markdown);
  if (updateReadme(join(ROOT, 'README.md'), result)) written.push('README.md (Benchmarks table)');
} else {
  write('last-run.json.tmp', `${JSON.stringify(result, null, 2)}\n`);
  write('last-run.md.tmp', markdown);
}

process.stdout.write(`\n${renderTable(result)}\n\nWall time ${result.wallSeconds.toFixed(0)} s. Wrote ${written.join(', ')}.\n`);
if (failed) {
  for (const line of result.answerMismatches) process.stderr.write(`bench: ANSWERS DIFFER: ${line}\n`);
  process.stderr.write('bench: some runs had errors or no requests, or a peer answered differently; results were not written as the latest.\n');
  process.exit(1);
}
