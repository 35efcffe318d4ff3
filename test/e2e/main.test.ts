import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, inject, it } from 'vitest';
import { createPostgresDatabase } from '../helpers/db.js';
import { freePort } from '../helpers/servers.js';
import { within } from '../helpers/time.js';

/**
 * The real entry point as an operator runs it: `node --import tsx src/main.ts`
 * in its own process, on a loopback port, with a fresh data dir. Every process
 * is bounded in time and killed in afterEach if a test left it running.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
// A bound, not a performance claim: PGlite's first start took 6–28 s here depending on load.
const READY_WITHIN_MS = 90_000;
const EXIT_WITHIN_MS = 20_000;

interface Running {
  child: ChildProcess;
  port: number;
  base: string;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
const tempDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'parley-e2e-'));
  tempDirs.push(dir);
  return dir;
}

/** Only what the server needs: nothing of the test runner's environment leaks in. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { NODE_ENV: 'development', PARLEY_LOG_LEVEL: 'info', HOST: '127.0.0.1' };
  for (const name of ['PATH', 'HOME', 'TMPDIR', 'LANG']) if (process.env[name]) env[name] = process.env[name];
  return { ...env, ...extra };
}

/** `npm start`'s command by default; `['dist/main.js']` for the built server. */
function launch(env: Record<string, string>, args = ['--import', 'tsx', 'src/main.ts']): Omit<Running, 'port' | 'base'> {
  const child = spawn(process.execPath, args, {
    cwd: ROOT,
    env: cleanEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null) resolve({ code: child.exitCode, signal: null });
    child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  return { child, exited, stdout: () => out, stderr: () => err };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts Parley and waits (bounded) until /readyz says 200 and the banner is printed. */
async function startParley(dataDir: string, env: Record<string, string> = {}, args?: string[]): Promise<Running & { readyMs: number }> {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  const running = launch({ PORT: String(port), PARLEY_DATA_DIR: dataDir, ...env }, args);
  let exitedEarly = false;
  void running.exited.then(() => (exitedEarly = true));
  const deadline = Date.now() + READY_WITHIN_MS;
  let readyMs = -1;
  while (Date.now() < deadline && !exitedEarly) {
    const status = await fetch(`${base}/readyz`, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.status,
      () => 0,
    );
    if (status === 200) {
      readyMs = Math.round(performance.now() - t0);
      break;
    }
    await sleep(100);
  }
  if (readyMs < 0) {
    throw new Error(
      `Parley was not ready within ${READY_WITHIN_MS} ms (exited early: ${exitedEarly})\n--- stdout\n${running.stdout()}\n--- stderr\n${running.stderr()}`,
    );
  }
  // The banner (development only) is written right after listen(); give it a moment.
  const banner = env.NODE_ENV === 'production' ? /"msg":"Parley ready"/ : /Try it:[\s\S]*-d '/;
  while (Date.now() < deadline && !banner.test(running.stdout())) await sleep(50);
  return { ...running, port, base, readyMs };
}

async function stopParley(running: Running): Promise<number | null> {
  running.child.kill('SIGTERM');
  const { code, signal } = await within(running.exited, EXIT_WITHIN_MS, 'exit after SIGTERM');
  expect(signal, `stderr:\n${running.stderr()}`).toBeNull();
  return code;
}

async function gql(base: string, query: string, headers: Record<string, string>): Promise<any> {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query }),
    signal: AbortSignal.timeout(15_000),
  });
  const body = (await res.json()) as any;
  expect(body.errors, JSON.stringify(body.errors)).toBeUndefined();
  return body.data;
}

const VIEWER = /* GraphQL */ `{
  viewer {
    name
    knowledge(first: 20) { edges { node { title content } } }
    conversations(first: 10) { edges { node { title messageCount messages(first: 10) { edges { node { role content } } } } } }
  }
}`;

function banner(stdout: string) {
  return {
    demoKey: /Demo product key: (sk_live_[\w-]+)/.exec(stdout)?.[1],
    adminToken: /Admin token: (adm_[\w-]+)/.exec(stdout)?.[1],
  };
}

/** The whole operator story on one data dir (and optionally one PostgreSQL database). */
async function firstRunThenRestart(label: string, env: Record<string, string>): Promise<void> {
  const dataDir = tempDir();

  // First start on an empty data dir: migrates, seeds the demo product, prints the banner.
  const first = await startParley(dataDir, env);
  const startupLog = /"msg":"Parley ready".*"startupMs":(\d+)/.exec(first.stdout())?.[1];
  console.log(
    `[e2e] start-up to ready on an empty data dir (${label}): ${first.readyMs} ms from spawn to /readyz 200` +
      ` (server's own startupMs: ${startupLog ?? '?'})`,
  );
  const out = first.stdout();
  const { demoKey, adminToken } = banner(out);
  expect(demoKey, out).toMatch(/^sk_live_[\w-]{20,}$/);
  expect(adminToken, out).toMatch(/^adm_[\w-]{20,}$/);
  expect(out).toContain(`http://localhost:${first.port}/graphql`);
  expect(out).toContain(`curl -s http://localhost:${first.port}/graphql`);
  expect(out).toContain(`authorization: Bearer ${demoKey}`);
  expect(out).toMatch(/"query":"\{ viewer \{/);
  // npm start serves the chat widget (built from source on first use) and its demo page, with no build step.
  expect(out).toContain(`Chat widget demo: http://localhost:${first.port}/demo`);
  const demo = await fetch(`${first.base}/demo`);
  expect(demo.status).toBe(200);
  expect(await demo.text()).toMatch(/<parley-chat endpoint="\/graphql" publishable-key="pk_pub_/);
  expect((await fetch(`${first.base}/widget/parley-chat.js`)).headers.get('content-type')).toBe('text/javascript; charset=utf-8');
  expect(readFileSync(join(dataDir, 'admin-token'), 'utf8').trim()).toBe(adminToken);
  expect(readFileSync(join(dataDir, 'demo-key'), 'utf8').trim()).toBe(demoKey);

  const health = await fetch(`${first.base}/healthz`);
  expect(health.status).toBe(200);

  const { viewer } = await gql(first.base, VIEWER, { authorization: `Bearer ${demoKey}` });
  expect(viewer.name).toBe('Demo shop assistant');
  expect(viewer.knowledge.edges.length).toBeGreaterThan(0);
  expect(viewer.knowledge.edges.map((e: any) => e.node.title)).toContain('Shipping times');
  expect(viewer.conversations.edges).toHaveLength(1);
  const conversation = viewer.conversations.edges[0].node;
  expect(conversation.messageCount).toBe(2);
  expect(conversation.messages.edges.map((e: any) => e.node.role)).toEqual(['USER', 'ASSISTANT']);

  const products = await gql(first.base, '{ products(first: 10) { edges { node { name } } } }', { 'x-admin-token': adminToken! });
  expect(products.products.edges).toEqual([{ node: { name: 'Demo shop assistant' } }]);

  expect(await stopParley(first)).toBe(0);
  expect(first.stderr()).not.toMatch(/"level":"error"/);

  // Second start on the same data dir: nothing re-seeded, same key and token.
  const second = await startParley(dataDir, env);
  console.log(`[e2e] restart on a seeded data dir (${label}): ${second.readyMs} ms to /readyz 200`);
  const again = banner(second.stdout());
  expect(again.demoKey).toBe(demoKey);
  expect(again.adminToken).toBe(adminToken);
  expect(second.stdout()).not.toMatch(/migrations applied/);

  const reread = await gql(second.base, VIEWER, { authorization: `Bearer ${demoKey}` });
  expect(reread.viewer.name).toBe('Demo shop assistant');
  expect(reread.viewer.conversations.edges).toHaveLength(1);
  expect(reread.viewer.knowledge.edges).toHaveLength(viewer.knowledge.edges.length);
  const productsAgain = await gql(second.base, '{ products(first: 10) { edges { node { name } } } }', {
    authorization: `Bearer ${adminToken}`,
  });
  expect(productsAgain.products.edges).toHaveLength(1);

  expect(await stopParley(second)).toBe(0);
}

describe('src/main.ts as a process', () => {
  afterEach(async () => {
    // Anything a failed test left running is killed and awaited.
    await Promise.all(
      children.splice(0).map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const gone = new Promise((r) => child.once('exit', r));
        child.kill('SIGKILL');
        await within(gone, 10_000, 'SIGKILL').catch(() => {});
      }),
    );
  });
  afterAll(() => {
    for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('embedded: starts on an empty data dir, serves the demo, stops on SIGTERM, restarts without re-seeding', async () => {
    await firstRunThenRestart('embedded PGlite', {});
  }, 240_000);

  const postgresUrl = inject('postgresUrl');
  it.skipIf(!postgresUrl)(
    `PostgreSQL via DATABASE_URL: same story on a fresh database${postgresUrl ? '' : ' — SKIPPED: no PostgreSQL available (set DATABASE_URL or install postgresql)'}`,
    async () => {
      const database = await createPostgresDatabase(postgresUrl);
      try {
        await firstRunThenRestart('PostgreSQL', { DATABASE_URL: database.url, DATABASE_POOL_SIZE: '4' });
      } finally {
        // Make sure no Parley holds a connection before the database is dropped.
        for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await database.drop();
      }
    },
    240_000,
  );

  const redisUrl = inject('redisUrl');
  it.skipIf(!postgresUrl || !redisUrl)(
    'says it is ready in one line at any log level: version, URL, database and Redis, no credentials',
    async () => {
      const database = await createPostgresDatabase(postgresUrl);
      try {
        // A password in the URL (the throwaway server trusts loopback and ignores it) must not be printed.
        const withPassword = database.url.replace('://postgres@', '://postgres:hunter2-secret@');
        expect(withPassword).toContain('hunter2-secret');
        const running = await startParley(tempDir(), {
          NODE_ENV: 'production',
          PARLEY_LOG_LEVEL: 'warn',
          DATABASE_URL: withPassword,
          DATABASE_POOL_SIZE: '2',
          REDIS_URL: redisUrl,
          PARLEY_REDIS_PREFIX: `e2e${Date.now()}:`,
          PARLEY_ADMIN_TOKEN: 'adm_e2e_ready_line_0123456789',
        });
        const lines = running.stdout().trim().split('\n');
        expect(lines, running.stdout()).toHaveLength(1);
        const ready = JSON.parse(lines[0]!) as Record<string, unknown>;
        const { version } = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };
        const { hostname, port } = new URL(redisUrl);
        expect(ready).toMatchObject({
          level: 'info',
          msg: 'Parley ready',
          version,
          url: `http://localhost:${running.port}/graphql`,
          database: expect.stringMatching(/^PostgreSQL 127\.0\.0\.1:\d+\/\w+ \(pool 2\)$/),
          redis: `${hostname}:${port}`,
        });
        expect(running.stdout() + running.stderr()).not.toContain('hunter2-secret');
        expect(await stopParley(running)).toBe(0);
      } finally {
        for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
        await database.drop();
      }
    },
    120_000,
  );

  it('npm run build compiles to dist/, and node dist/main.js serves the API and the widget and stops on SIGTERM', async () => {
    const built = spawnSync('npm', ['run', 'build'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 });
    expect(built.status, built.stdout + built.stderr).toBe(0);
    const env: Record<string, string> = { NODE_ENV: 'production', PARLEY_ADMIN_TOKEN: 'adm_e2e_built_0123456789abcdef' };
    const database = postgresUrl ? await createPostgresDatabase(postgresUrl) : undefined;
    if (database) Object.assign(env, { DATABASE_URL: database.url, DATABASE_POOL_SIZE: '2' });
    try {
      const running = await startParley(tempDir(), env, ['dist/main.js']);
      expect(running.stdout()).toMatch(/"msg":"Parley ready"/);
      const created = await gql(running.base, `mutation { createProduct(input: { name: "Built" }) { key } }`, {
        authorization: `Bearer ${env.PARLEY_ADMIN_TOKEN}`,
      });
      const { viewer } = await gql(running.base, `{ viewer { name } }`, { authorization: `Bearer ${created.createProduct.key}` });
      expect(viewer.name).toBe('Built');
      // The build wrote the widget next to the server (dist/widget): served at its hash, immutable; no /demo in production.
      const launcher = await fetch(`${running.base}/widget/parley-chat.js`);
      expect(launcher.status).toBe(200);
      expect(launcher.url).toMatch(/\/widget\/[A-Z0-9]{8}\.js$/);
      expect(launcher.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
      expect((await fetch(`${running.base}/demo`)).status).toBe(404);
      expect(await stopParley(running)).toBe(0);
    } finally {
      for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await database?.drop();
    }
  }, 240_000);

  it('refuses a bad configuration: PORT=abc exits non-zero naming PORT', async () => {
    const running = launch({ PORT: 'abc', PARLEY_DATA_DIR: tempDir() });
    const { code } = await within(running.exited, 30_000, 'exit on bad config');
    expect(code).not.toBe(0);
    expect(code).not.toBeNull();
    expect(running.stderr()).toMatch(/PORT/);
    expect(running.stderr()).toMatch(/Invalid configuration/);
    expect(running.stdout()).not.toMatch(/Parley is running/);
  }, 60_000);

  it('exits 1 with one clear line when the database cannot be reached', async () => {
    const nothing = await freePort();
    const running = launch({ DATABASE_URL: `postgresql://parley@127.0.0.1:${nothing}/parley`, PARLEY_DATA_DIR: tempDir() });
    const { code } = await within(running.exited, 45_000, 'exit on unreachable database');
    expect(code).toBe(1);
    expect(running.stderr()).toMatch(/Parley could not start: .*reach database server/s);
  }, 60_000);

  it('refuses a bad DATABASE_URL the same way', async () => {
    const running = launch({ DATABASE_URL: 'mysql://nope', PARLEY_DATA_DIR: tempDir() });
    const { code } = await within(running.exited, 30_000, 'exit on bad config');
    expect(code).not.toBe(0);
    expect(running.stderr()).toMatch(/DATABASE_URL/);
  }, 60_000);
});
