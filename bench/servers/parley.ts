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

const config = loadConfig();
const db = await openDatabase(databaseOptions(config));
const sql = captureRequestSql(db);
const app = await buildApp(config, { db: sql.db });
const { port } = await app.start(0, '127.0.0.1');

serveControl(
  { port, description: `Parley (${db.description}${config.redis.url ? ', REDIS_URL set' : ''})` },
  { sqlReset: sql.reset, sqlRead: sql.read },
  async () => {
    await app.stop();
    await db.close();
  },
);
