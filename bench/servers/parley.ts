import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { databaseOptions, openDatabase } from '../../src/infra/db.js';
import { serveControl } from './control.js';
import { captureRequestSql } from './sql-capture.js';

/**
 * Server (a): Parley as built — the configuration read from the environment by
 * loadConfig, the app from buildApp, its own HTTP server from app.start — in a
 * process of its own. The one addition is the database handle passed in, whose
 * Prisma client remembers each request's SQL scope for the statement count.
 */

// The per-product rate limit stays on (its cost is part of what is measured) but out of reach:
// a small dataset sends thousands of requests per second for one product, which production
// would refuse (RATE_LIMITED) and the bench would count as errors.
const config = loadConfig({ PARLEY_RATE_LIMIT_PRODUCT_PER_MIN: '100000000', ...process.env });
const db = await openDatabase(databaseOptions(config));
const sql = captureRequestSql(db);
const app = await buildApp(config, { db: sql.db });
const { port } = await app.start(0, '127.0.0.1');

serveControl(
  { port, description: `Parley (${db.description}${config.redis.url ? ', REDIS_URL set' : ''})` },
  { sqlReset: sql.reset, sqlRead: sql.read, caches: app.localCaches },
  async () => {
    await app.stop();
    await db.close();
  },
);
