import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { prepareDatabase } from './harness.js';
import { provisionInfra } from './infra.js';
import { runLoad, type LoadResult } from './load.js';
import { buildScenarios, SCENARIO_NAMES, type ScenarioName } from './scenarios.js';
import { launchServer } from './servers/launch.js';
import { SIZES, type SizeName } from './dataset.js';

/**
 * What one setting costs: Parley with and without it (`--off NAME=VALUE`, e.g.
 * `--off PARLEY_METRICS=false`), on one read-only scenario, in alternating
 * rounds (A B A B …) so drift on a shared machine hits both sides alike.
 * Prints requests/s and latency per round and the median overhead.
 *
 *   npm run bench:overhead -- --off PARLEY_METRICS=false --scenario nested --rounds 3 --duration 10
 */

const { values } = parseArgs({
  options: {
    off: { type: 'string', multiple: true },
    scenario: { type: 'string', default: 'nested' },
    size: { type: 'string', default: 'small' },
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '10' },
    embedded: { type: 'boolean', default: false },
  },
});
const scenarioName = values.scenario as ScenarioName;
if (!SCENARIO_NAMES.includes(scenarioName)) throw new Error(`--scenario must be one of ${SCENARIO_NAMES.join(', ')}`);
if (!(values.size! in SIZES)) throw new Error(`--size must be one of ${Object.keys(SIZES).join(', ')}`);
const off = Object.fromEntries((values.off ?? []).map((pair) => pair.split('=', 2) as [string, string]));
if (!Object.keys(off).length) throw new Error('--off NAME=VALUE is required (the setting that turns the feature off)');
const rounds = Number(values.rounds);
const seconds = Number(values.duration);
const warmup = Number(values.warmup);
const connections = Number(values.connections);

const log = (line: string) => process.stdout.write(`${line}\n`);
const infra = await provisionInfra({
  databaseUrl: values.embedded ? undefined : process.env.DATABASE_URL,
  redisUrl: values.embedded ? undefined : process.env.REDIS_URL,
  startLocalServers: !values.embedded,
});
try {
  const { dataset } = await prepareDatabase(infra, values.size as SizeName, log);
  const scenario = buildScenarios(dataset)[scenarioName];
  if (!scenario.comparable) throw new Error('pick a read-only scenario: writes change what later rounds read');
  const results: Record<'on' | 'off', LoadResult[]> = { on: [], off: [] };
  for (let round = 0; round < rounds; round++) {
    for (const side of round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
      const server = await launchServer('parley', { ...infra.serverEnv(), ...(side === 'off' ? off : {}) });
      try {
        if (warmup > 0) await runLoad({ url: server.url, scenario, seconds: warmup, connections, seed: 2 });
        const load = await runLoad({ url: server.url, scenario, seconds, connections, seed: 1 });
        if (load.errors) throw new Error(`${side}: ${load.errors} errors, e.g. ${load.errorSample}`);
        results[side].push(load);
        const l = load.latencyMs;
        log(
          `round ${round + 1} ${side.padEnd(3)} ${load.requestsPerSecond.toFixed(1).padStart(8)} req/s  p50 ${l.p50.toFixed(2)} p95 ${l.p95.toFixed(2)} p99 ${l.p99.toFixed(2)} ms  (load ${loadavg()[0]!.toFixed(2)})`,
        );
      } finally {
        await server.stop();
      }
    }
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const rps = (side: 'on' | 'off') => median(results[side].map((r) => r.requestsPerSecond));
  const p50 = (side: 'on' | 'off') => median(results[side].map((r) => r.latencyMs.p50));
  log(
    `\n${scenarioName}, ${rounds} rounds of ${seconds} s, ${connections} connections; off = ${JSON.stringify(off)}\n` +
      `median req/s on ${rps('on').toFixed(1)} / off ${rps('off').toFixed(1)}: overhead ${((1 - rps('on') / rps('off')) * 100).toFixed(1)} %\n` +
      `median p50 on ${p50('on').toFixed(2)} ms / off ${p50('off').toFixed(2)} ms`,
  );
} finally {
  await infra.dispose();
}
