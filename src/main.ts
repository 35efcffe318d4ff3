import { readFileSync } from 'node:fs';
import { buildApp, type App } from './app.js';
import { ConfigError, configSecrets, loadConfig, type Config } from './config.js';
import { createLogger } from './infra/log.js';
import { describeRedisUrl } from './infra/redis.js';
import { startTracing } from './infra/tracing.js';

const VERSION = (JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string }).version;

/** `host:port` of a connection URL: never its credentials. */
const started = performance.now();
let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(`${error.message}\n`);
    process.exit(2);
  }
  throw error;
}
const log = createLogger(config.logLevel, { secrets: configSecrets(config) });
const tracing = startTracing({ enabled: config.observability.tracing, log, version: VERSION });

// Signals are handled from the first moment: a SIGTERM during start-up (PGlite's
// first start takes seconds) stops cleanly once the app exists, instead of the
// default action killing the process half-way through writing its data dir.
// A second signal exits at once.
let app: App | undefined;
let stopRequested = false;
const stopAndExit = (running: App) =>
  running.stop().then(
    // Spans still batched are sent before the process goes.
    async () => {
      await tracing?.shutdown();
      process.exit(0);
    },
    (error) => {
      log.error('stop failed', { error });
      process.exit(1);
    },
  );
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopRequested) {
      log.warn('second signal: exiting without waiting for stop', { signal });
      process.exit(1);
    }
    stopRequested = true;
    log.info('stopping', { signal });
    if (app) void stopAndExit(app);
  });
}

try {
  app = await buildApp(config, { log });
  if (stopRequested) void stopAndExit(app);
  else await serve(app, config);
} catch (error) {
  // Database unreachable, migration refused, port taken...: one clear line, exit 1.
  log.error('start-up failed', { error });
  process.stderr.write(`Parley could not start: ${error instanceof Error ? error.message.trim() : String(error)}\n`);
  await app?.stop().catch(() => {});
  process.exit(1);
}

async function serve(app: App, config: Config): Promise<void> {
  const { url } = await app.start();
  // Whatever PARLEY_LOG_LEVEL says: that the node is up, where, on what, is the one line an operator always needs.
  log.always('Parley ready', {
    version: VERSION,
    url,
    database: app.deps.db.description,
    redis: config.redis.url ? describeRedisUrl(config.redis.url) : 'in-process',
    startupMs: Math.round(performance.now() - started),
  });
  if (config.env === 'production') return;
  const lines = ['', `  Parley is running: ${url} (GraphiQL in your browser)`, `  Database: ${app.deps.db.description}`];
  if (!config.adminToken) lines.push(`  Admin token: ${app.deps.adminToken}   (kept in ${config.dataDir}/admin-token)`);
  if (app.demo) lines.push(`  Chat widget demo: ${url.replace(/\/graphql$/, '')}/demo   (the demo product, live in a page)`);
  if (app.demo?.key) {
    lines.push(
      `  Demo product key: ${app.demo.key}`,
      '',
      '  Try it:',
      `  curl -s ${url} -H 'content-type: application/json' \\`,
      `    -H 'authorization: Bearer ${app.demo.key}' \\`,
      `    -d '{"query":"{ viewer { name conversations(first: 5) { edges { node { title messages(last: 10) { edges { node { role content } } } } } } } }"}'`,
    );
  }
  process.stdout.write(`${lines.join('\n')}\n\n`);
}
