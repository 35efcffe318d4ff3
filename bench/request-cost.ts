import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildApp, type App } from '../src/app.js';
import { loadConfig } from '../src/config.js';
import { openDatabase } from '../src/infra/db.js';
import { migrate } from '../src/infra/migrate.js';
import { startTracing } from '../src/infra/tracing.js';
import { newSqlScope, runInSqlScope } from '../src/infra/sql-stats.js';
import { insertMessage } from '../src/services/messages.js';
import { createProduct } from '../src/services/products.js';
import { startPostgres, startRedis } from '../scripts/servers.js';
import { countRedisCommands, type RedisTally } from './redis-commands.js';
import { DOCUMENTS } from './scenarios.js';

/**
 * What one request of each kind costs a node with Redis: Redis commands and
 * round trips (counted through ioredis' diagnostics channel), SQL statements,
 * and CPU time, over sequential requests through `yoga.fetch` from one client
 * address (so the per-address checks run as they do behind a socket).
 * Embedded database (`--postgres`: a throwaway PostgreSQL server, whose CPU
 * is then not in the figure), a throwaway redis-server (or REDIS_URL).
 * The npm script sets NODE_ENV=production in the process, as `npm run bench`
 * does for its servers: graphql-js reads it once at load, and outside
 * production its type checks take a slower path.
 *
 *   npm run bench:cost -- [--requests 200] [--postgres] [--only sendMessage] [--profile dir] [--show-sql] [--trace] [--env NAME=VALUE …]
 *   npm run bench:cost -- --postgres --only cursor --env PARLEY_RESPONSE_CACHE=false --profile /tmp/p   (a miss)
 */

const { values } = parseArgs({
  options: {
    requests: { type: 'string', default: '200' },
    env: { type: 'string', multiple: true },
    postgres: { type: 'boolean', default: false },
    /** Only the kinds whose name contains this. */
    only: { type: 'string' },
    /** Writes a V8 CPU profile of the measured requests of each kind into this directory. */
    profile: { type: 'string' },
    /** Prints the SQL text of one request of each kind. */
    'show-sql': { type: 'boolean', default: false },
    /** Traces every request (OpenTelemetry SDK, OTLP over HTTP to a sink in this process that drops them). */
    trace: { type: 'boolean', default: false },
  },
});
const requests = Number(values.requests);
const env = Object.fromEntries((values.env ?? []).map((pair) => pair.split('=', 2) as [string, string]));

const redis = process.env.REDIS_URL ? undefined : await startRedis();
const redisUrl = process.env.REDIS_URL ?? redis!.url;
const postgres = values.postgres ? await startPostgres() : undefined;
const db = await openDatabase(postgres ? { url: postgres.url, poolSize: 10 } : { dataDir: 'memory://' });
await migrate(db.prisma);
const { product, key } = await createProduct(db.prisma, { name: 'Request cost' });
const conversationIds: string[] = [];
for (let c = 0; c < 20; c++) {
  const conversation = await db.prisma.conversation.create({ data: { productId: product.id, sessionId: 's', title: `Conversation ${c}` } });
  conversationIds.push(conversation.id);
  for (let m = 0; m < 20; m++) {
    await insertMessage(db.prisma, product.id, conversation.id, {
      role: m % 2 ? 'ASSISTANT' : 'USER',
      content: `Message ${m} of conversation ${c}: where is my parcel?`,
    });
  }
}
const conversationGlobalId = (id: string) => Buffer.from(`Conversation:${id}`).toString('base64');

const dataDir = mkdtempSync(join(tmpdir(), 'parley-cost-'));
const configEnv = {
  NODE_ENV: 'production',
  PARLEY_DATA_DIR: dataDir,
  PARLEY_ADMIN_TOKEN: 'adm_request_cost_0123456789abcdef',
  PARLEY_LOG_LEVEL: 'warn',
  REDIS_URL: redisUrl,
  PARLEY_REDIS_PREFIX: `cost${Date.now()}:`,
  ...env,
};
const config = loadConfig(configEnv);
// The sink answers OTLP like a collector would (200, body read) and keeps nothing.
const sink = values.trace
  ? await new Promise<Server>((resolve) => {
      const server = createServer((req, res) => req.resume().on('end', () => res.end('{}')));
      server.listen(0, '127.0.0.1', () => resolve(server));
    })
  : undefined;
const tracing = sink
  ? startTracing({
      enabled: true,
      env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: `http://127.0.0.1:${(sink.address() as AddressInfo).port}/v1/traces` },
      log: { debug() {}, info() {}, warn() {}, error() {}, always() {} },
      version: 'bench',
    })
  : undefined;
const app: App = await buildApp(sink ? loadConfig({ ...configEnv, OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:1' }) : config, { db });
// What node:http gives Yoga for a request from 127.0.0.1: the client address of the per-address checks.
const serverContext = { req: { socket: { remoteAddress: '127.0.0.1' }, headers: {} } };

let sent = 0;
const kinds: Record<string, () => { query: string; variables?: Record<string, unknown> }> = {
  'read hit: viewer { name }': () => ({ query: DOCUMENTS.viewerName }),
  'read hit: nested': () => ({ query: DOCUMENTS.nested }),
  // With the response cache on, every request after the first 20 is a hit; profile the miss with PARLEY_RESPONSE_CACHE=false.
  'read: widget (conversation, messages last 20)': () => ({
    query: DOCUMENTS.widget,
    variables: { id: conversationGlobalId(conversationIds[sent++ % 20]!) },
  }),
  'sendMessage, new question': () => ({
    query: DOCUMENTS.sendMessage,
    variables: { input: { conversationId: conversationGlobalId(conversationIds[sent % 20]!), content: `Question ${sent++}: where is my parcel?` } },
  }),
  'sendMessage, answer cached': () => ({
    query: DOCUMENTS.sendMessage,
    variables: { input: { conversationId: conversationGlobalId(conversationIds[sent++ % 20]!), content: 'How long does shipping take?' } },
  }),
};

const one = async (request: { query: string; variables?: Record<string, unknown> }, showSql = false) => {
  const scope = newSqlScope(showSql);
  const res = await runInSqlScope(scope, () =>
    app.yoga.fetch(
      'http://parley.local/graphql',
      { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` }, body: JSON.stringify(request) },
      serverContext,
    ),
  );
  const text = await res.text();
  if (res.status !== 200 || text.includes('"errors"')) throw new Error(text.slice(0, 300));
  for (const sql of scope.log ?? []) process.stdout.write(`${sql}\n\n`);
  return scope.statements;
};

// Cursors as Parley issues them, for cursor pages (a response-cache miss with --env PARLEY_RESPONSE_CACHE=false).
const cursorsResponse = await app.yoga.fetch(
  'http://parley.local/graphql',
  {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
    body: JSON.stringify({ query: '{ conversations(first: 20) { edges { cursor } } }' }),
  },
  serverContext,
);
const cursors = ((await cursorsResponse.json()) as { data: { conversations: { edges: { cursor: string }[] } } }).data.conversations.edges.map(
  (e) => e.cursor,
);
let paged = 0;
kinds['read: cursor page (nested, after)'] = () => ({ query: DOCUMENTS.nestedAfter, variables: { cursor: cursors[paged++ % 10]! } });

const counter = countRedisCommands();
const rows: { kind: string; commands: number; roundTrips: number; sql: number; cpuUs: number; byCommand: RedisTally['byCommand'] }[] = [];
for (const [kind, make] of Object.entries(kinds).filter(([kind]) => !values.only || kind.includes(values.only))) {
  // Warm: caches filled, scripts loaded, leases taken.
  for (let i = 0; i < 20; i++) await one(make(), values['show-sql'] && i === 19);
  await new Promise((resolve) => setTimeout(resolve, 50));
  counter.reset();
  let sql = 0;
  // Only the measured requests are profiled (not start-up, seeding or warming).
  const profiler = values.profile ? new Session() : undefined;
  if (profiler) {
    profiler.connect();
    await profiler.post('Profiler.enable');
    await profiler.post('Profiler.start');
  }
  const cpu = process.cpuUsage();
  for (let i = 0; i < requests; i++) sql += await one(make());
  const used = process.cpuUsage(cpu);
  if (profiler) {
    const { profile } = await profiler.post('Profiler.stop');
    mkdirSync(values.profile!, { recursive: true });
    writeFileSync(join(values.profile!, `${kind.replace(/\W+/g, '-')}.cpuprofile`), JSON.stringify(profile));
    profiler.disconnect();
  }
  // Commands answered after the response (a background release) belong to this kind too.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const tally = counter.take();
  rows.push({
    kind,
    commands: tally.commands / requests,
    roundTrips: tally.roundTrips / requests,
    sql: sql / requests,
    cpuUs: (used.user + used.system) / requests,
    byCommand: Object.fromEntries(Object.entries(tally.byCommand).map(([name, n]) => [name, Math.round((n / requests) * 100) / 100])),
  });
}
counter.dispose();

const pad = (s: string, n: number) => s.padEnd(n);
process.stdout.write(`${requests} sequential requests per kind, one node, Redis ${redisUrl}; env ${JSON.stringify(env)}\n\n`);
process.stdout.write(
  `${pad('kind', 30)} ${'redis cmds'.padStart(10)} ${'round trips'.padStart(11)} ${'SQL'.padStart(5)} ${'CPU µs'.padStart(7)}  commands per request\n`,
);
for (const r of rows) {
  const commands = Object.entries(r.byCommand)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ');
  process.stdout.write(
    `${pad(r.kind, 30)} ${r.commands.toFixed(2).padStart(10)} ${r.roundTrips.toFixed(2).padStart(11)} ${r.sql.toFixed(1).padStart(5)} ${r.cpuUs.toFixed(0).padStart(7)}  ${commands}\n`,
  );
}

await app.stop();
await tracing?.shutdown();
sink?.close();
await db.close();
await redis?.dispose();
await postgres?.dispose();
rmSync(dataDir, { recursive: true, force: true });
