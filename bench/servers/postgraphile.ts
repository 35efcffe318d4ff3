// Before anything of PostGraphile loads: it calls Promise.withResolvers, which Node 20 lacks.
import './promise-with-resolvers.js';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { postgraphile } from 'postgraphile';
import { makePgService } from 'postgraphile/adaptors/pg';
import { grafserv } from 'postgraphile/grafserv/node';
import { PostGraphileAmberPreset } from 'postgraphile/presets/amber';
import { serveControl } from './control.js';
import { countRequestStatements } from './sql-capture.js';

/**
 * The peer: PostGraphile 5 — a GraphQL server that compiles each request into
 * a few SQL statements — on the same PostgreSQL database and rows, as a
 * PostGraphile user would deploy it: the standard Amber preset on the public
 * schema, the `pg` adaptor, grafserv's node adapter, no GraphiQL, no watch
 * mode, a pool of DATABASE_POOL_SIZE connections (the same as Parley's).
 *
 * Product scoping: PostGraphile has no product keys; the bench passes the
 * product's id as a `condition: { productId }` variable (see bench/scenarios.ts),
 * so it authenticates nothing — in its favour. PostgreSQL only: embedded
 * PGlite cannot be opened by a second process (the harness leaves it out there).
 */

const url = process.env.DATABASE_URL;
if (!url) throw new Error('PostGraphile needs DATABASE_URL (PostgreSQL)');
const poolSize = Number(process.env.DATABASE_POOL_SIZE ?? 10);

const sql = countRequestStatements();
const pool = new pg.Pool({ connectionString: url, max: poolSize });
pool.on('connect', (client) => {
  const query = client.query.bind(client) as (...args: unknown[]) => unknown;
  (client as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
    sql.charge();
    return query(...args);
  };
});

const preset: GraphileConfig.Preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [makePgService({ pool, schemas: ['public'] })],
  grafserv: { graphqlPath: '/graphql', graphiql: false, watch: false },
  grafast: { explain: false },
};

const pgl = postgraphile(preset);
const serv = pgl.createServ(grafserv);
const server = createServer();
server.keepAliveTimeout = 30_000;
serv.addTo(server).catch((error) => {
  console.error(error);
  process.exit(1);
});
// The schema is built before the first request: do it now, not during the warm-up.
await pgl.getSchema();

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  serveControl(
    { port, description: `PostGraphile 5 (Amber preset, grafserv node adapter, pg pool ${poolSize})` },
    { sqlReset: sql.reset, sqlRead: sql.read },
    async () => {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await pgl.release();
      await pool.end();
    },
  );
});
