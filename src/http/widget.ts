import { existsSync, readdirSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import type { Config } from '../config.js';
import type { Logger } from '../infra/log.js';
import type { DemoSeed } from '../services/seed.js';
import type { Store } from '../services/store.js';
import { createDemoPage } from './demo-page.js';

/**
 * The chat widget (widget/) as Parley serves it, in every environment:
 *
 * - `/widget/<hash>.js` — the launcher and its chunks, named by content hash:
 *   cached for good (immutable), CORS-open (module scripts from other sites'
 *   pages are fetched in CORS mode), gzip when accepted; any other name 404.
 * - `/widget/parley-chat.js` — the stable URL pages embed: a redirect to the
 *   current launcher, revalidated on every use (no-cache).
 * - `/widget/manifest.json` — the launcher's URL and the measured sizes.
 *
 * Which build: a Parley compiled to dist/ serves dist/widget/, written by
 * `npm run build` next to it (the two always come from the same checkout). A
 * Parley running from source (`npm start`, the tests) builds widget/src in
 * memory with esbuild on the first request for it (about a second, once per
 * process), so `npm start` needs no build step and never serves a widget
 * older than its sources.
 */

export const WIDGET_PREFIX = '/widget/';
export const WIDGET_LAUNCHER = `${WIDGET_PREFIX}parley-chat.js`;
const MANIFEST = 'manifest.json';
const IMMUTABLE = 'public, max-age=31536000, immutable';
const CORS = { 'access-control-allow-origin': '*', 'cross-origin-resource-policy': 'cross-origin' };

export interface WidgetFiles {
  /** The launcher's file name, `<hash>.js`. */
  launcher: string;
  files: ReadonlyMap<string, { body: Buffer; gzipped: Buffer }>;
  sizes: unknown;
}

/** What widget/build.ts exports, as far as this module uses it (it is outside src/, so not imported for its types). */
interface WidgetBuilder {
  buildWidget(): Promise<{
    launcher: string;
    files: { name: string; body: Uint8Array; gzipped: Uint8Array }[];
    sizes: unknown;
    overBudget: string[];
  }>;
}

export interface WidgetRoutesOptions {
  config: Config;
  log: Logger;
  store: Store;
  demo: DemoSeed | null;
  /** Where the files come from. @default the build next to this module, or widget/src built in memory */
  load?: () => Promise<WidgetFiles>;
}

export interface WidgetRoutes {
  /** Answers a request for the widget or the demo page; false when `req` is neither. */
  serve(req: IncomingMessage, res: ServerResponse): boolean;
}

export function createWidgetRoutes(options: WidgetRoutesOptions): WidgetRoutes {
  const { log } = options;
  let files: Promise<WidgetFiles | null> | undefined;
  // Loaded once; a build that failed is not retried per request (fix the sources and restart).
  const loaded = () =>
    (files ??= (options.load ?? loadWidget)(log).catch((error: Error) => {
      log.warn('widget unavailable: /widget/* answers 404', { error: error.message });
      return null;
    }));
  // Development only, as GraphiQL: a page with the demo product's publishable key in it.
  const demo = options.config.env !== 'production' ? createDemoPage(options) : null;

  return {
    serve(req, res) {
      const path = (req.url ?? '/').split('?', 1)[0]!;
      if (demo?.serve(path, req, res)) return true;
      if (!path.startsWith(WIDGET_PREFIX)) return false;
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', ...CORS }).end();
        return true;
      }
      void loaded()
        .then((widget) => answer(widget, path.slice(WIDGET_PREFIX.length), req, res))
        .catch((error: Error) => {
          log.error('widget: request failed', { error });
          if (!res.headersSent) res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
          res.end();
        });
      return true;
    },
  };
}

function answer(widget: WidgetFiles | null, name: string, req: IncomingMessage, res: ServerResponse): void {
  const body = (status: number, type: string, text: string, headers: Record<string, string> = {}) => {
    res.writeHead(status, { 'content-type': type, 'content-length': Buffer.byteLength(text), ...CORS, ...headers });
    res.end(req.method === 'HEAD' ? undefined : text);
  };
  const notFound = (why: string) => body(404, 'text/plain; charset=utf-8', `${why}\n`, { 'cache-control': 'no-store' });
  if (!widget) {
    notFound('The widget is not built: run npm run build (or npm run build:widget).');
    return;
  }
  const launcherUrl = WIDGET_PREFIX + widget.launcher;
  if (name === 'parley-chat.js') {
    // Revalidated each time: a deploy moves it to the new launcher at once.
    res.writeHead(302, { location: launcherUrl, 'cache-control': 'no-cache', 'content-length': 0, ...CORS });
    return void res.end();
  }
  if (name === MANIFEST) {
    const manifest = { launcher: launcherUrl, files: [...widget.files.keys()].map((file) => WIDGET_PREFIX + file), sizes: widget.sizes };
    body(200, 'application/json; charset=utf-8', JSON.stringify(manifest, null, 2), { 'cache-control': 'no-cache' });
    return;
  }
  const file = widget.files.get(name);
  if (!file) {
    notFound('Not found');
    return;
  }
  const gzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
  const bytes = gzip ? file.gzipped : file.body;
  res.writeHead(200, {
    'content-type': 'text/javascript; charset=utf-8',
    'content-length': bytes.length,
    // The name is the content's hash: these bytes never change under it.
    'cache-control': IMMUTABLE,
    vary: 'accept-encoding',
    'x-content-type-options': 'nosniff',
    ...CORS,
    ...(gzip ? { 'content-encoding': 'gzip' } : {}),
  });
  res.end(req.method === 'HEAD' ? undefined : bytes);
}

/** The build that goes with this module: dist/widget/ when compiled, widget/src built in memory when run from source. */
async function loadWidget(log: Logger): Promise<WidgetFiles> {
  if (!import.meta.url.endsWith('.ts')) return readWidgetDir(fileURLToPath(new URL('../widget/', import.meta.url)));
  const started = performance.now();
  const builder = (await import(new URL('../../widget/build.ts', import.meta.url).href)) as WidgetBuilder;
  const built = await builder.buildWidget();
  if (built.overBudget.length) log.warn('widget over budget (npm run build:widget fails)', { overBudget: built.overBudget });
  log.info('widget built from source', { ms: Math.round(performance.now() - started), launcher: built.launcher });
  const files = new Map(built.files.map((f) => [f.name, { body: Buffer.from(f.body), gzipped: Buffer.from(f.gzipped) }] as const));
  return { launcher: built.launcher, files, sizes: built.sizes };
}

/** Files written by `npm run build:widget` (widget/build.ts writeWidget). */
export function readWidgetDir(dir: string): WidgetFiles {
  if (!existsSync(join(dir, MANIFEST))) throw new Error(`no widget build in ${dir}: run npm run build`);
  const manifest = JSON.parse(readFileSync(join(dir, MANIFEST), 'utf8')) as { launcher: string; sizes: unknown };
  const files = new Map<string, { body: Buffer; gzipped: Buffer }>();
  // parley-chat.js there is the npm package's entry; here that name is the redirect.
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.js') && n !== 'parley-chat.js')) {
    const body = readFileSync(join(dir, name));
    files.set(name, { body, gzipped: gzipSync(body, { level: 9 }) });
  }
  if (!files.has(manifest.launcher)) throw new Error(`widget build in ${dir}: the launcher ${manifest.launcher} is missing`);
  return { launcher: manifest.launcher, files, sizes: manifest.sizes };
}
