import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { SIZES, type SizeName } from './dataset.js';
import { prepareDatabase } from './harness.js';
import { provisionInfra } from './infra.js';
import { runLoad } from './load.js';
import { buildScenarios } from './scenarios.js';
import { launchServer } from './servers/launch.js';
import type { ServerMemory } from './servers/control.js';

/**
 * `npm run soak [-- --minutes 30] [--connections 10] [--size small] [--embedded]`
 *
 * Memory under sustained load: one Parley server process (started with
 * --expose-gc) under the bench's mixed scenario (90 % reads of the products
 * being written to, 10 % sendMessage with replies) for N minutes; after each
 * minute the server runs a full GC and reports its heap and RSS. Growth is
 * measured from minute 5 (pools and JIT warm by then) to the end, on the
 * heap after GC with the in-process caches emptied (L1 and the response cache
 * fill towards PARLEY_CACHE_L1_MAX_MB and PARLEY_RESPONSE_CACHE_MAX_MB and
 * expire with load: growth there is by design and bounded, and swung the heap
 * 66-208 MB in one run), and on RSS. The heap with its caches and what they
 * held are reported beside it. Emptying them each minute costs the next
 * minute a few misses, the same every minute.
 * Bounded: it stops by itself after --minutes, and targets only 127.0.0.1.
 * A run of 30 minutes or more writes bench/results/soak-<time>.json.
 */

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '30' },
    connections: { type: 'string', default: '10' },
    size: { type: 'string', default: 'small' },
    embedded: { type: 'boolean', default: false },
  },
});
const minutes = Number(values.minutes);
if (!Number.isInteger(minutes) || minutes < 1 || minutes > 24 * 60) throw new Error('--minutes must be a whole number from 1 to 1440');
if (!(values.size! in SIZES)) throw new Error(`--size must be one of ${Object.keys(SIZES).join(', ')}`);
const connections = Number(values.connections);
const BASELINE_MINUTE = Math.min(5, minutes);
const mb = (bytes: number) => bytes / 1024 / 1024;
const log = (line: string) => process.stdout.write(`${line}\n`);

const infra = await provisionInfra({
  databaseUrl: values.embedded ? undefined : process.env.DATABASE_URL,
  redisUrl: values.embedded ? undefined : process.env.REDIS_URL,
  startLocalServers: !values.embedded,
});
const rows: {
  minute: number;
  requests: number;
  errors: number;
  requestsPerSecond: number;
  heapMb: number;
  cacheMb: number;
  liveMb: number;
  rssMb: number;
}[] = [];
try {
  const { dataset } = await prepareDatabase(infra, values.size as SizeName, log);
  const scenario = buildScenarios(dataset).mixed;
  const server = await launchServer('parley', infra.serverEnv(), ['--expose-gc']);
  try {
    const start = await server.memory();
    const columns = (minute: string, rate: string, errors: string, m: ServerMemory) =>
      log(
        `${minute.padStart(6)}  ${rate.padStart(6)}  ${errors.padStart(6)}  ${mb(m.heapUsed).toFixed(1).padStart(18)}  ${mb(m.cacheBytes).toFixed(1).padStart(11)}` +
          `  ${mb(m.heapWithoutCaches).toFixed(1).padStart(25)}  ${mb(m.rss).toFixed(1).padStart(8)}`,
      );
    log(`minute   req/s  errors  heap after GC (MB)  caches (MB)  heap, caches emptied (MB)  RSS (MB)`);
    columns('0', '', '', start);
    for (let minute = 1; minute <= minutes; minute++) {
      const load = await runLoad({ url: server.url, scenario, seconds: 60, connections, seed: minute });
      // The harness's per-request SQL records (bench/servers/sql-capture.ts) are kept until a reset:
      // not resetting them grew the heap ~1.2 MB a minute, all of it the harness's.
      await server.resetSql();
      const memory = await server.memory();
      rows.push({
        minute,
        requests: load.requests,
        errors: load.errors,
        requestsPerSecond: load.requestsPerSecond,
        heapMb: mb(memory.heapUsed),
        cacheMb: mb(memory.cacheBytes),
        liveMb: mb(memory.heapWithoutCaches),
        rssMb: mb(memory.rss),
      });
      columns(String(minute), load.requestsPerSecond.toFixed(0), String(load.errors), memory);
    }
  } finally {
    await server.stop();
  }
} finally {
  await infra.dispose();
}

const base = rows[BASELINE_MINUTE - 1]!;
const last = rows.at(-1)!;
const growth = (from: number, to: number) => ((to - from) / from) * 100;
const heapGrowth = growth(base.heapMb, last.heapMb);
const rssGrowth = growth(base.rssMb, last.rssMb);
const live = (row: (typeof rows)[number]) => row.liveMb;
const liveGrowth = growth(live(base), live(last));
// Least squares over minute 5 to the end: one GC's noise at the last minute does not decide it.
const after = rows.slice(BASELINE_MINUTE - 1);
const meanMinute = after.reduce((s, r) => s + r.minute, 0) / after.length;
const meanLive = after.reduce((s, r) => s + live(r), 0) / after.length;
const slope =
  after.reduce((s, r) => s + (r.minute - meanMinute) * (live(r) - meanLive), 0) / (after.reduce((s, r) => s + (r.minute - meanMinute) ** 2, 0) || 1);
const errors = rows.reduce((sum, row) => sum + row.errors, 0);
log(
  `\nfrom minute ${BASELINE_MINUTE} to ${last.minute}: heap after GC, caches emptied, ${live(base).toFixed(1)} → ${live(last).toFixed(1)} MB ` +
    `(${liveGrowth.toFixed(1)} %, trend ${slope >= 0 ? '+' : ''}${slope.toFixed(2)} MB/minute); ` +
    `heap after GC ${base.heapMb.toFixed(1)} → ${last.heapMb.toFixed(1)} MB (${heapGrowth.toFixed(1)} %), ` +
    `RSS ${base.rssMb.toFixed(1)} → ${last.rssMb.toFixed(1)} MB (${rssGrowth.toFixed(1)} %); ${errors} errors in ${rows.reduce((s, r) => s + r.requests, 0)} requests`,
);
if (minutes >= 30) {
  const dir = join(fileURLToPath(new URL('.', import.meta.url)), 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `soak-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(
    file,
    `${JSON.stringify(
      {
        minutes,
        connections,
        size: values.size,
        baselineMinute: BASELINE_MINUTE,
        liveHeapGrowthPct: liveGrowth,
        liveHeapTrendMbPerMinute: slope,
        heapGrowthPct: heapGrowth,
        rssGrowthPct: rssGrowth,
        errors,
        rows,
      },
      null,
      2,
    )}\n`,
  );
  log(`Wrote ${file}`);
}
if (errors > 0) process.exitCode = 1;
