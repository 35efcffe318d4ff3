import { buildApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './infra/log.js';

const started = performance.now();
let config;
try {
  config = loadConfig();
} catch (error) {
  if (error instanceof ConfigError) {
    process.stderr.write(error.message + '\n');
    process.exit(2);
  }
  throw error;
}
const log = createLogger(config.logLevel);
const app = await buildApp(config, { log });
const { url } = await app.start();
log.info('Parley ready', { url, database: app.deps.db.description, startupMs: Math.round(performance.now() - started) });

if (config.env !== 'production') {
  const lines = [
    '',
    `  Parley is running: ${url} (GraphiQL in your browser)`,
    `  Database: ${app.deps.db.description}`,
  ];
  if (!config.adminToken) lines.push(`  Admin token: ${app.deps.adminToken}   (kept in ${config.dataDir}/admin-token)`);
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
  process.stdout.write(lines.join('\n') + '\n\n');
}

let stopping = false;
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    log.info('stopping', { signal });
    app.stop().then(
      () => process.exit(0),
      (error) => {
        log.error('stop failed', { error });
        process.exit(1);
      },
    );
  });
}
