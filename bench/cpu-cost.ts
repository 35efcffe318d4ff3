import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/infra/db.js';
import { migrate } from '../src/infra/migrate.js';
import { insertMessage } from '../src/services/messages.js';
import { createProduct } from '../src/services/products.js';
import { DOCUMENTS } from './scenarios.js';

/**
 * CPU time per request of one document with a setting on and off, in one
 * process (`--off NAME=VALUE`, e.g. `--off PARLEY_METRICS=false`). Two apps on
 * one embedded database, each warmed, then batches of sequential requests
 * through `yoga.fetch`, alternating A B A B …; CPU time (process.cpuUsage) per
 * request is what a busy machine disturbs least, unlike requests per second.
 *
 *   npx tsx bench/cpu-cost.ts --off PARLEY_METRICS=false --batches 20 --requests 200
 */

const { values } = parseArgs({
  options: {
    off: { type: 'string', multiple: true },
    document: { type: 'string', default: 'nested' },
    batches: { type: 'string', default: '20' },
    requests: { type: 'string', default: '200' },
  },
});
const off = Object.fromEntries((values.off ?? []).map((pair) => pair.split('=', 2) as [string, string]));
if (!Object.keys(off).length) throw new Error('--off NAME=VALUE is required');
const document = DOCUMENTS[values.document as keyof typeof DOCUMENTS];
if (!document) throw new Error(`--document must be one of ${Object.keys(DOCUMENTS).join(', ')}`);
const batches = Number(values.batches);
const perBatch = Number(values.requests);

const db = await openDatabase({ dataDir: 'memory://' });
await migrate(db.prisma);
const { product, key } = await createProduct(db.prisma, { name: 'CPU cost' });
// The bench's nested read over a full page: 20 conversations of 20 messages.
for (let c = 0; c < 20; c++) {
  const conversation = await db.prisma.conversation.create({ data: { productId: product.id, sessionId: 's', title: `Conversation ${c}` } });
  for (let m = 0; m < 20; m++) {
    await insertMessage(db.prisma, product.id, conversation.id, {
      role: m % 2 ? 'ASSISTANT' : 'USER',
      content: `Message ${m} of conversation ${c}: where is my parcel, and when will it arrive?`,
    });
  }
}

const dirs: string[] = [];
async function app(env: Record<string, string>): Promise<App> {
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-cpu-'));
  dirs.push(dataDir);
  const config = loadConfig({
    NODE_ENV: 'production',
    PARLEY_DATA_DIR: dataDir,
    PARLEY_ADMIN_TOKEN: 'adm_cpu_cost_0123456789abcdef',
    PARLEY_LOG_LEVEL: 'warn',
    ...env,
  });
  return buildApp(config, { db });
}
const sides = { on: await app({}), off: await app(off) };

const body = JSON.stringify({ query: document });
const one = async (target: App) => {
  const res = await target.yoga.fetch('http://parley.local/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body,
  });
  const text = await res.text();
  if (res.status !== 200 || text.includes('"errors"')) throw new Error(text.slice(0, 300));
};
for (const target of Object.values(sides)) for (let i = 0; i < 50; i++) await one(target);

const cpu: Record<'on' | 'off', number[]> = { on: [], off: [] };
for (let b = 0; b < batches; b++) {
  for (const side of b % 2 ? (['off', 'on'] as const) : (['on', 'off'] as const)) {
    const start = process.cpuUsage();
    for (let i = 0; i < perBatch; i++) await one(sides[side]);
    const used = process.cpuUsage(start);
    cpu[side].push((used.user + used.system) / perBatch);
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const on = median(cpu.on);
const offCpu = median(cpu.off);
process.stdout.write(
  `${values.document}: ${batches} batches of ${perBatch} requests per side; off = ${JSON.stringify(off)}\n` +
    `median CPU per request: on ${on.toFixed(0)} µs, off ${offCpu.toFixed(0)} µs: overhead ${(((on - offCpu) / offCpu) * 100).toFixed(1)} %\n`,
);
for (const target of Object.values(sides)) await target.stop();
await db.close();
for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
