import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildApp, type App } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { openDatabase, type Database } from '../../src/infra/db.js';
import { createWidgetRoutes, readWidgetDir } from '../../src/http/widget.js';
import { BUDGETS, buildWidget, writeWidget, type WidgetBuild } from '../../widget/build.js';
import { disposeClients, eventually, liveClient, subscribe } from '../helpers/live.js';

/**
 * The widget as Parley serves it (issue 16 points 3-5) without a browser:
 * hashed immutable files, the stable launcher URL, 404s, the build's budgets,
 * the development-only /demo page and its publishable key, and the
 * `only:` filter that GraphiQL's LiveEvents example uses.
 */

const HASHED = /^\/widget\/[A-Z0-9]{8}\.js$/;
const IMMUTABLE = 'public, max-age=31536000, immutable';
const ADMIN = 'adm_widget_test_0123456789abcdef0123';

const tempDirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-widget-'));
  tempDirs.push(dir);
  return dir;
};

let db: Database;
let built: WidgetBuild;

beforeAll(async () => {
  [db, built] = await Promise.all([openDatabase({ dataDir: 'memory://' }), buildWidget()]);
}, 60_000);

afterAll(async () => {
  await disposeClients();
  await db?.close();
  for (const dir of tempDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

async function startApp(env: 'development' | 'production', dataDir = tempDir()): Promise<{ app: App; base: string }> {
  const config = loadConfig({
    NODE_ENV: env,
    PARLEY_DATA_DIR: dataDir,
    PARLEY_DEMO: 'true',
    PARLEY_ADMIN_TOKEN: ADMIN,
    PARLEY_LOG_LEVEL: 'silent',
    PARLEY_METRICS: 'false',
  });
  const app = await buildApp(config, { db });
  const { port } = await app.start(0, '127.0.0.1');
  return { app, base: `http://127.0.0.1:${port}` };
}

async function gql(base: string, query: string, headers: Record<string, string>, variables: Record<string, unknown> = {}) {
  const res = await fetch(`${base}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: any; errors?: { extensions?: { code?: string } }[] };
}

describe('the widget build', () => {
  it('splits the launcher from the panel, names files by content hash, and stays within its budgets', () => {
    console.log(
      `[widget] launcher ${built.sizes.launcherGz} B gz (budget ${BUDGETS.launcherGz}), launcher + panel ${built.sizes.totalGz} B gz (budget ${BUDGETS.totalGz}), ` +
        built.sizes.files.map((f) => `${f.name} ${f.bytes} B / ${f.gz} B gz`).join(', '),
    );
    expect(built.overBudget).toEqual([]);
    expect(built.sizes.launcherGz).toBeLessThanOrEqual(BUDGETS.launcherGz);
    expect(built.sizes.totalGz).toBeLessThanOrEqual(BUDGETS.totalGz);
    expect(built.files.length).toBeGreaterThanOrEqual(2);
    const launcher = built.files.find((f) => f.name === built.launcher)!;
    const text = Buffer.from(launcher.body).toString();
    // The panel is a dynamic import of another hashed file, not part of the launcher.
    const chunks = [...text.matchAll(/import\("\.\/([A-Z0-9]{8}\.js)"\)/g)].map((m) => m[1]);
    expect(chunks).toHaveLength(1);
    expect(built.files.map((f) => f.name)).toContain(chunks[0]);
    expect(text).not.toContain('conversationEvents');
    expect(text).toContain('parley-chat');
  });

  it('reports what is over a budget (npm run build:widget then exits 1)', async () => {
    const tight = await buildWidget({ launcherGz: 100, totalGz: 1_000 });
    expect(tight.overBudget).toEqual([
      expect.stringMatching(/^launcher \d+ B gz > 100 B$/),
      expect.stringMatching(/^launcher \+ panel \d+ B gz > 1000 B$/),
    ]);
  });

  it('the same sources give the same names; written and read back, it is what Parley compiled serves', async () => {
    const again = await buildWidget();
    expect(again.files.map((f) => f.name).sort()).toEqual(built.files.map((f) => f.name).sort());
    const dir = tempDir();
    writeWidget(built, dir);
    expect(readFileSync(join(dir, 'parley-chat.js'), 'utf8')).toBe(`export * from './${built.launcher}';\n`);
    const read = readWidgetDir(dir);
    expect(read.launcher).toBe(built.launcher);
    expect([...read.files.keys()].sort()).toEqual(built.files.map((f) => f.name).sort());

    // The routes on a bare server, loading from that directory (as dist/widget.js does).
    const config = loadConfig({ NODE_ENV: 'production', PARLEY_LOG_LEVEL: 'silent' });
    const log = { debug() {}, info() {}, warn() {}, error() {}, always() {} };
    const routes = createWidgetRoutes({ config, log, store: undefined as never, demo: null, load: async () => readWidgetDir(dir) });
    const server: Server = createServer((req, res) => routes.serve(req, res) || res.writeHead(418).end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const res = await fetch(`${base}/widget/${built.launcher}`);
      expect(res.status).toBe(200);
      expect(res.headers.get('cache-control')).toBe(IMMUTABLE);
      expect(Buffer.from(await res.arrayBuffer()).equals(Buffer.from(built.files.find((f) => f.name === built.launcher)!.body))).toBe(true);
      expect((await fetch(`${base}/widget/parley-chat.js`, { redirect: 'manual' })).headers.get('location')).toBe(`/widget/${built.launcher}`);
      expect((await fetch(`${base}/elsewhere`)).status).toBe(418);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('Parley serving the widget', () => {
  let dev: { app: App; base: string };
  let dataDir: string;

  beforeAll(async () => {
    dataDir = tempDir();
    dev = await startApp('development', dataDir);
  }, 60_000);
  afterAll(async () => {
    await dev?.app.stop();
  });

  it('/widget/parley-chat.js leads to the launcher at its hash: immutable, CORS-open, JavaScript, gzip when asked', async () => {
    const redirect = await fetch(`${dev.base}/widget/parley-chat.js`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('cache-control')).toBe('no-cache');
    expect(redirect.headers.get('access-control-allow-origin')).toBe('*');
    const location = redirect.headers.get('location')!;
    expect(location).toMatch(HASHED);
    expect(location).toBe(`/widget/${built.launcher}`);

    const manifest = (await (await fetch(`${dev.base}/widget/manifest.json`)).json()) as { launcher: string; files: string[] };
    expect(manifest.launcher).toBe(location);
    expect(manifest.files).toHaveLength(built.files.length);

    for (const path of manifest.files) {
      expect(path).toMatch(HASHED);
      const plain = await fetch(`${dev.base}${path}`, { headers: { 'accept-encoding': 'identity' } });
      expect(plain.status).toBe(200);
      expect(plain.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
      expect(plain.headers.get('cache-control')).toBe(IMMUTABLE);
      expect(plain.headers.get('access-control-allow-origin')).toBe('*');
      expect(plain.headers.get('content-encoding')).toBeNull();
      const body = Buffer.from(await plain.arrayBuffer());
      const file = built.files.find((f) => `/widget/${f.name}` === path)!;
      expect(body.equals(Buffer.from(file.body))).toBe(true);
      const head = await fetch(`${dev.base}${path}`, { method: 'HEAD' });
      expect(head.status).toBe(200);
    }
    // fetch() decodes gzip itself: read the raw bytes with node:http's view instead.
    const raw = await new Promise<{ encoding: string | undefined; body: Buffer }>((resolve, reject) => {
      import('node:http').then(({ get }) =>
        get(`${dev.base}${location}`, { headers: { 'accept-encoding': 'gzip' } }, (res) => {
          const parts: Buffer[] = [];
          res
            .on('data', (d: Buffer) => parts.push(d))
            .on('end', () => resolve({ encoding: res.headers['content-encoding'], body: Buffer.concat(parts) }));
        }).on('error', reject),
      );
    });
    expect(raw.encoding).toBe('gzip');
    expect(raw.body.length).toBe(built.sizes.launcherGz);
    expect(gunzipSync(raw.body).equals(Buffer.from(built.files.find((f) => f.name === built.launcher)!.body))).toBe(true);
  });

  it('answers 404 for any other name under /widget/, 405 for writes', async () => {
    for (const path of [
      '/widget/AAAAAAAA.js',
      '/widget/',
      '/widget/parley-chat.css',
      '/widget/%2e%2e%2fpackage.json',
      `/widget/${built.launcher}.map`,
      '/widget/x/parley-chat.js',
    ]) {
      const res = await fetch(`${dev.base}${path}`, { redirect: 'manual' });
      expect(res.status, path).toBe(404);
      expect(res.headers.get('cache-control'), path).toBe('no-store');
    }
    expect((await fetch(`${dev.base}/widget/${built.launcher}`, { method: 'POST' })).status).toBe(405);
  });

  it('/demo embeds the widget with a publishable key of the demo product, the same one after a restart', async () => {
    const page = await fetch(`${dev.base}/demo`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const html = await page.text();
    expect(html).toContain('<script type="module" src="/widget/parley-chat.js"></script>');
    const key = /<parley-chat endpoint="\/graphql" publishable-key="(pk_pub_[\w-]+)"/.exec(html)?.[1];
    expect(key).toBeDefined();
    expect(html).not.toContain(dev.app.demo!.key!);

    // A publishable key: it starts a conversation of the demo product, and reads nothing else.
    const started = await gql(dev.base, `mutation { startConversation(input: { sessionId: "demo-page" }) { id conversationToken } }`, {
      authorization: `Bearer ${key}`,
    });
    const { id, conversationToken } = started.data.startConversation;
    expect((await gql(dev.base, `{ viewer { name } }`, { authorization: `Bearer ${key}` })).errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
    const secret = await gql(
      dev.base,
      `query($id: ID!) { conversation(id: $id) { sessionId } }`,
      { authorization: `Bearer ${dev.app.demo!.key}` },
      { id },
    );
    expect(secret.data.conversation.sessionId).toBe('demo-page');

    // Restarted on the same database and data dir: the same key, and the visitor's token still opens the conversation.
    await dev.app.stop();
    dev = await startApp('development', dataDir);
    const again = await (await fetch(`${dev.base}/demo`)).text();
    expect(again).toContain(`publishable-key="${key}"`);
    const read = await gql(
      dev.base,
      `query($id: ID!) { conversation(id: $id) { id } }`,
      { authorization: `Bearer ${key}`, 'x-conversation-token': conversationToken },
      { id },
    );
    expect(read.errors).toBeUndefined();
    expect(read.data.conversation.id).toBe(id);
  }, 60_000);

  it('GraphiQL points to /demo, and its LiveEvents example asks for messages and ratings only', async () => {
    const html = await (await fetch(`${dev.base}/graphql`, { headers: { accept: 'text/html' } })).text();
    expect(html).toContain('open /demo on this server');
    expect(html).toContain('only: [MESSAGE_ADDED, FEEDBACK_ADDED]');
  });

  it('conversationEvents(only:) delivers those kinds alone: after a question, the reply is the last event', async () => {
    const key = dev.app.demo!.key!;
    const { data } = await gql(dev.base, `mutation { startConversation(input: { sessionId: "only" }) { id } }`, { authorization: `Bearer ${key}` });
    const conversationId = data.startConversation.id as string;
    const client = liveClient(`${dev.base.replace('http', 'ws')}/graphql`, { connectionParams: { productKey: key } }).client;
    const base = dev.app.deps.pubsub.stats().subscribed;
    const s = subscribe(
      client,
      `subscription($id: ID!) { conversationEvents(conversationId: $id, only: [MESSAGE_ADDED, FEEDBACK_ADDED]) { __typename ... on MessageAdded { message { role } } } }`,
      { id: conversationId },
    );
    await eventually(() => dev.app.deps.pubsub.stats().subscribed > base, 'subscribed');
    const sent = await gql(
      dev.base,
      `mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "How long does shipping take?" }) { reply { id } } }`,
      { authorization: `Bearer ${key}` },
      { c: conversationId },
    );
    expect(sent.errors).toBeUndefined();
    await s.next(2);
    // The typing events of the reply (sent after it is stored) would come within milliseconds: give them time to be left out.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(s.results.map((r) => [r.conversationEvents.__typename, r.conversationEvents.message?.role])).toEqual([
      ['MessageAdded', 'USER'],
      ['MessageAdded', 'ASSISTANT'],
    ]);
    s.unsubscribe();
  });
});

describe('in production', () => {
  it('serves the widget, but no /demo (and no publishable key issued for it)', async () => {
    const dataDir = tempDir();
    const { app, base } = await startApp('production', dataDir);
    try {
      expect((await fetch(`${base}/demo`)).status).toBe(404);
      expect(existsSync(join(dataDir, 'demo-publishable-key'))).toBe(false);
      expect((await fetch(`${base}/demo/`)).status).toBe(404);
      const launcher = await fetch(`${base}/widget/parley-chat.js`);
      expect(launcher.status).toBe(200);
      expect(launcher.url).toMatch(/\/widget\/[A-Z0-9]{8}\.js$/);
    } finally {
      await app.stop();
    }
  }, 60_000);
});
