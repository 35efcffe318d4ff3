import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { findPostgresBin, findRedisServer, freePort, startPostgres, startRedis, within, type Throwaway } from '../scripts/servers.js';

/**
 * npm run bench:subscriptions [-- --subscribers 1000 --messages 50 --embedded]
 *
 * N graphql-ws clients (one socket each) subscribe to one conversation; M
 * messages are sent one after another, each once every client has the one
 * before (closed loop). Prints p50/p95/p99 delivery latency (from sending the
 * mutation to a client having the event), deliveries per second, and the
 * server's RSS per connection; writes JSON to bench/results/.
 *
 * Parley runs as an operator runs it (`src/main.ts`) in a process of its own on
 * a loopback port; the clients run here. PostgreSQL + Redis when DATABASE_URL /
 * REDIS_URL are set or local binaries exist (throwaway servers), else embedded
 * (PGlite, in-process events); --embedded forces embedded. Every phase is
 * bounded and everything started is stopped.
 */

const { values: flags } = parseArgs({
  options: {
    subscribers: { type: 'string', default: '1000' },
    messages: { type: 'string', default: '50' },
    'connect-concurrency': { type: 'string', default: '100' },
    embedded: { type: 'boolean', default: false },
    'timeout-s': { type: 'string', default: '900' },
    /** e.g. --server-node-args=--cpu-prof to see where the server's time goes */
    'server-node-args': { type: 'string', default: '' },
    help: { type: 'boolean', default: false },
  },
});
if (flags.help) {
  process.stdout.write(
    'npm run bench:subscriptions -- [--subscribers N] [--messages M] [--connect-concurrency C] [--embedded] [--timeout-s S] [--server-node-args ARGS]\n',
  );
  process.exit(0);
}
const N = positive('subscribers');
const M = positive('messages');
const CONCURRENCY = positive('connect-concurrency');
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ADMIN_TOKEN = 'adm_bench_subscriptions_0123456789abcdef';
const started: Throwaway[] = [];
let server: ChildProcess | undefined;
const clients: Client[] = [];

const deadline = setTimeout(() => {
  process.stderr.write(`bench:subscriptions: no result within ${flags['timeout-s']} s, giving up\n`);
  void cleanup().finally(() => process.exit(1));
}, positive('timeout-s') * 1000);
deadline.unref();

async function main(): Promise<void> {
  const env = await infrastructure();
  const mode = env.DATABASE_URL ? `PostgreSQL${env.REDIS_URL ? ' + Redis' : ''}` : `embedded PGlite${env.REDIS_URL ? ' + Redis' : ''}`;
  log(`mode: ${mode}; ${N} subscribers, ${M} messages`);
  const dataDir = mkdtempSync(join(tmpdir(), 'parley-bench-subs-'));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const nodeArgs = flags['server-node-args'].split(' ').filter(Boolean);
  server = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      NODE_ENV: 'production',
      HOST: '127.0.0.1',
      PORT: String(port),
      PARLEY_DATA_DIR: dataDir,
      PARLEY_ADMIN_TOKEN: ADMIN_TOKEN,
      PARLEY_DEMO: 'false',
      PARLEY_LOG_LEVEL: 'warn',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let serverErr = '';
  server.stderr!.setEncoding('utf8').on('data', (d: string) => (serverErr = (serverErr + d).slice(-4_000)));
  server.once('exit', () => rmSync(dataDir, { recursive: true, force: true }));
  await within(
    waitReady(base, () => serverErr),
    180_000,
    'server ready',
  );

  const admin = (query: string, variables = {}) => gql(base, { 'x-admin-token': ADMIN_TOKEN }, query, variables);
  const key = (await admin(`mutation { createProduct(input: { name: "Bench subscriptions" }) { key } }`)).createProduct.key as string;
  const api = (query: string, variables = {}) => gql(base, { authorization: `Bearer ${key}` }, query, variables);
  const conversationId = (await api(`mutation { startConversation(input: { sessionId: "bench" }) { id } }`)).startConversation.id as string;
  const send = (content: string) =>
    api(`mutation($c: ID!, $t: String!) { sendMessage(input: { conversationId: $c, content: $t }) { message { id } } }`, {
      c: conversationId,
      t: content,
    });
  const typing = (isTyping: boolean) =>
    api(`mutation($c: ID!, $t: Boolean!) { setTyping(input: { conversationId: $c, isTyping: $t }) }`, { c: conversationId, t: isTyping });

  // Warm-up: the code paths of a subscription and a delivery, once.
  await runWave(base, key, conversationId, 10, 5, send, typing);
  const rssIdle = rssOf(server.pid!);
  log(`server RSS before clients: ${mb(rssIdle)} MB`);

  const result = await runWave(base, key, conversationId, N, M, send, typing);
  const payload = {
    benchmark: 'subscriptions',
    mode,
    subscribers: N,
    messages: M,
    deliveries: result.latencies.length,
    latencyMs: { p50: pct(result.latencies, 50), p95: pct(result.latencies, 95), p99: pct(result.latencies, 99), max: pct(result.latencies, 100) },
    deliveriesPerSecond: Math.round(result.latencies.length / (result.sendingMs / 1000)),
    fanOutMs: { mean: round(mean(result.fanOuts)), p95: pct(result.fanOuts, 95) },
    connectSeconds: round(result.connectMs / 1000),
    serverRss: {
      beforeClientsMB: mb(rssIdle),
      withClientsMB: mb(result.rssConnected),
      peakMB: mb(result.rssPeak),
      perConnectionKB: round(result.perConnection / 1024),
    },
    machine: { cpu: cpus()[0]?.model.trim(), cores: cpus().length, node: process.version, loadAverageAtStart: loadavg() },
    at: new Date().toISOString(),
  };
  const dir = join(ROOT, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `subscriptions-${N}-${env.DATABASE_URL ? 'postgres' : 'embedded'}.json`);
  writeFileSync(file, `${JSON.stringify(payload, null, 2)}\n`);
  process.stdout.write(
    `\n  ${N} subscribers × ${M} messages (${mode})\n` +
      `  delivery latency  p50 ${payload.latencyMs.p50} ms   p95 ${payload.latencyMs.p95} ms   p99 ${payload.latencyMs.p99} ms\n` +
      `  deliveries/s      ${payload.deliveriesPerSecond}   (fan-out of one message: mean ${payload.fanOutMs.mean} ms)\n` +
      `  server RSS        ${payload.serverRss.withClientsMB} MB with clients, ${payload.serverRss.perConnectionKB} KB per connection\n` +
      `  written to ${file}\n\n`,
  );
}

interface Wave {
  latencies: number[];
  fanOuts: number[];
  sendingMs: number;
  connectMs: number;
  rssConnected: number;
  /** Bytes of server RSS per connected, subscribed client (marginal: second half of the clients). */
  perConnection: number;
  rssPeak: number;
}

/** Connects `n` clients, proves each listens (a typing event reaches all), sends `m` messages closed-loop, disconnects. */
async function runWave(
  base: string,
  key: string,
  conversationId: string,
  n: number,
  m: number,
  send: (content: string) => Promise<unknown>,
  typing: (isTyping: boolean) => Promise<unknown>,
): Promise<Wave> {
  const url = `${base.replace('http', 'ws')}/graphql`;
  const sentAt = new Map<string, number>();
  const delivered = new Map<string, number>(); // content -> deliveries so far
  const lastAt = new Map<string, number>();
  const latencies: number[] = [];
  const typingTrue = new Set<number>();
  const typingFalse = new Set<number>();
  let waiter: (() => void) | undefined;
  const wake = () => waiter?.();
  const until = (check: () => boolean, ms: number, what: string) =>
    within(
      new Promise<void>((resolve) => {
        waiter = () => check() && resolve();
        waiter();
      }),
      ms,
      what,
    );

  const connectStart = performance.now();
  const wave: Client[] = [];
  let failures = 0;
  const connectOne = async () => {
    const index = wave.length;
    const client = createClient({
      url,
      webSocketImpl: WebSocket,
      retryAttempts: 0,
      lazy: false,
      connectionParams: { productKey: key },
      onNonLazyError: () => {},
    });
    clients.push(client);
    wave.push(client);
    await new Promise<void>((resolve) => {
      client.on('connected', () => resolve());
      client.on('closed', () => resolve());
    });
    client.subscribe<any>(
      {
        query: `subscription($c: ID!) { conversationEvents(conversationId: $c) {
          ... on MessageAdded { message { id content createdAt } }
          ... on TypingChanged { isTyping } } }`,
        variables: { c: conversationId },
      },
      {
        next: ({ data }) => {
          const event = data?.conversationEvents;
          if (event?.message) {
            const now = performance.now();
            const content = event.message.content as string;
            const at = sentAt.get(content);
            if (at !== undefined) latencies.push(now - at);
            delivered.set(content, (delivered.get(content) ?? 0) + 1);
            lastAt.set(content, now);
          } else if (event) {
            (event.isTyping ? typingTrue : typingFalse).add(index);
          }
          wake();
        },
        error: () => void (failures += 1),
        complete: () => {},
      },
    );
  };
  // All listening is proven, not assumed: typing changes until every client has seen one (a
  // client whose subscribe the server has not finished yet misses the first), then one more.
  const listening = async (count: number) => {
    typingTrue.clear();
    for (let attempt = 0; typingTrue.size < count; attempt++) {
      if (attempt === 60) throw new Error(`only ${typingTrue.size} of ${count} clients listen (${failures} subscriptions failed)`);
      await typing(false);
      await typing(true);
      await until(() => typingTrue.size >= count, 2_000, 'typing').catch(() => undefined);
    }
    typingFalse.clear();
    await typing(false);
    await until(() => typingFalse.size >= count, 120_000, `typing false reached all ${count} clients (${typingFalse.size})`);
  };
  const connect = async (count: number) => {
    for (let i = 0; i < count; i += CONCURRENCY) {
      await within(Promise.all(Array.from({ length: Math.min(CONCURRENCY, count - i) }, connectOne)), 60_000, `connect clients ${i}..`);
    }
  };
  // RSS is noisy (the heap grows and shrinks with garbage): the cost of a connection is measured
  // at the margin, between half and all of the clients, each time once they all listen.
  const half = Math.floor(n / 2);
  await connect(half);
  if (half) await listening(half);
  const rssHalf = await steadyRss();
  await connect(n - half);
  await listening(n);
  const connectMs = performance.now() - connectStart;
  const rssConnected = await steadyRss();
  let rssPeak = rssConnected;

  const fanOuts: number[] = [];
  const sendingStart = performance.now();
  for (let i = 0; i < m; i++) {
    const content = `bench message ${i} ${Math.random().toString(36).slice(2)}`;
    const t0 = performance.now();
    sentAt.set(content, t0);
    await send(content);
    await until(() => (delivered.get(content) ?? 0) >= n, 120_000, `message ${i} reached all ${n} clients (${delivered.get(content) ?? 0})`);
    fanOuts.push(lastAt.get(content)! - t0);
    if (i % 10 === 0) rssPeak = Math.max(rssPeak, rssOf(server!.pid!));
  }
  const sendingMs = performance.now() - sendingStart;
  rssPeak = Math.max(rssPeak, rssOf(server!.pid!));
  await Promise.all(wave.map((c) => c.dispose()));
  clients.splice(0, clients.length, ...clients.filter((c) => !wave.includes(c)));
  const perConnection = half ? (rssConnected - rssHalf) / (n - half) : 0;
  return { latencies, fanOuts, sendingMs, connectMs, rssConnected, rssPeak, perConnection };
}

/** The median of a few samples of the server's RSS, a tenth of a second apart. */
async function steadyRss(): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssOf(server!.pid!));
    await new Promise((r) => setTimeout(r, 100));
  }
  return samples.sort((a, b) => a - b)[2]!;
}

/** PostgreSQL + Redis from the environment or throwaway local servers; nothing in embedded mode. */
async function infrastructure(): Promise<Record<string, string>> {
  if (flags.embedded) return {};
  const env: Record<string, string> = {};
  if (process.env.DATABASE_URL) env.DATABASE_URL = process.env.DATABASE_URL;
  else if (findPostgresBin()) {
    const pg = await startPostgres();
    started.push(pg);
    env.DATABASE_URL = pg.url;
  }
  if (process.env.REDIS_URL) env.REDIS_URL = process.env.REDIS_URL;
  else if (findRedisServer()) {
    const redis = await startRedis();
    started.push(redis);
    env.REDIS_URL = redis.url;
  }
  if (env.REDIS_URL) env.PARLEY_REDIS_PREFIX = `bench-subs-${process.pid}:`;
  return env;
}

async function cleanup(): Promise<void> {
  await Promise.allSettled(clients.splice(0).map((c) => c.dispose()));
  const child = server;
  server = undefined;
  if (child && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(killer);
  }
  await Promise.allSettled(started.splice(0).map((s) => s.dispose()));
}

async function waitReady(base: string, stderr: () => string): Promise<void> {
  for (;;) {
    if (server?.exitCode !== null) throw new Error(`server exited: ${stderr()}`);
    const ok = await fetch(`${base}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function gql(base: string, headers: Record<string, string>, query: string, variables: Record<string, unknown>): Promise<any> {
  const response = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: any; errors?: unknown[] };
  if (body.errors) throw new Error(`GraphQL errors: ${JSON.stringify(body.errors)}`);
  return body.data;
}

function rssOf(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb ?? 0) * 1024;
}

function pct(values: number[], p: number): number {
  if (!values.length) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  return round(sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!);
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
const round = (value: number) => Math.round(value * 10) / 10;
const mb = (bytes: number) => Math.round(bytes / 1024 / 1024);
const log = (line: string) => process.stderr.write(`[bench:subscriptions] ${line}\n`);

function positive(name: 'subscribers' | 'messages' | 'connect-concurrency' | 'timeout-s'): number {
  const value = Number(flags[name]);
  if (!Number.isInteger(value) || value < 1) {
    process.stderr.write(`--${name} must be a positive whole number\n`);
    process.exit(2);
  }
  return value;
}

// Last, so every declaration above is initialised.
try {
  await main();
  await cleanup();
  process.exit(0);
} catch (error) {
  process.stderr.write(`bench:subscriptions failed: ${error instanceof Error ? error.stack : String(error)}\n`);
  await cleanup();
  process.exit(1);
}
