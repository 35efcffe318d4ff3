import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga } from 'graphql-yoga';
import { loadConfig } from '../../src/config.js';
import { databaseOptions, openDatabase } from '../../src/infra/db.js';
import { newSqlScope, runInSqlScope } from '../../src/infra/sql-stats.js';
import { baselineSchema, productForRequest, type BaselineContext } from '../baseline/schema.js';
import { serveControl } from './control.js';
import { captureRequestSql } from './sql-capture.js';

/**
 * Server (b): the "before" — bench/baseline/schema.ts on graphql-yoga, on the
 * same database through the same openDatabase and environment (so the same
 * driver adapter, pool size and statement counter as Parley), one SQL scope
 * per request as Parley's server does.
 */

// Parley's configuration, for the same database options (URL or data dir, pool size).
const db = await openDatabase(databaseOptions(loadConfig()));
const sql = captureRequestSql(db);
const prisma = sql.db.prisma;

const yoga = createYoga<object, BaselineContext>({
  schema: baselineSchema,
  graphqlEndpoint: '/graphql',
  landingPage: false,
  graphiql: false,
  logging: 'warn',
  context: async ({ request }) => ({ prisma, product: await productForRequest(prisma, request) }),
});

const server = createServer((req, res) => runInSqlScope(newSqlScope(), () => yoga(req, res)));
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  serveControl(
    { port, description: `before: graphql-yoga + per-field Prisma resolvers (${db.description})` },
    { sqlReset: sql.reset, sqlRead: sql.read },
    async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await yoga.dispose();
      await db.close();
    },
  );
});
