import { createConnection } from 'node:net';
import type { Client, ClientOptions } from 'graphql-ws';
import WebSocket from 'ws';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { createTestApp, TEST_ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { disposeClients, liveClient } from '../helpers/live.js';
import { within } from '../helpers/time.js';

/**
 * The real node:http server on a loopback port: health/readiness endpoints,
 * GraphiQL, GraphQL over HTTP and over graphql-ws (auth on connect), and a
 * stop() that closes websocket clients and the port.
 */

/** Outcome of one operation over graphql-ws: the results that arrived and how it ended. */
async function runOverWs(client: Client, query: string): Promise<{ results: any[]; error: unknown }> {
  const results: any[] = [];
  const error = await within(
    new Promise<unknown>((resolve) => {
      client.subscribe({ query }, { next: (r) => void results.push(r), error: (e) => resolve(e), complete: () => resolve(undefined) });
    }),
    10_000,
    'graphql-ws operation',
  );
  return { results, error };
}

/** A TCP connect to the port: true if something accepts it. */
function accepts(port: number): Promise<boolean> {
  return within(
    new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => {
        socket.destroy();
        resolve(false);
      });
    }),
    5_000,
    `connect to ${port}`,
  );
}

describeEachDatabase('HTTP + WebSocket server', (variant) => {
  let t: TestApp;
  let key: string;
  let base: string;
  let wsUrl: string;
  let port: number;
  const wsClient = (options: Partial<ClientOptions> = {}) => liveClient(wsUrl, options);

  beforeAll(async () => {
    t = await createTestApp(variant, { PARLEY_SHUTDOWN_MS: '2000' });
    key = (await t.product('Server test')).key;
    const started = await t.app.start(0, '127.0.0.1');
    port = started.port;
    base = `http://127.0.0.1:${port}`;
    wsUrl = `ws://127.0.0.1:${port}/graphql`;
    expect(started.url).toBe(`http://localhost:${port}/graphql`);
  });
  afterEach(async () => {
    await disposeClients();
  });
  afterAll(() => t?.dispose());

  it('GET /healthz answers 200', async () => {
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 200 with JSON once the database is migrated', async () => {
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/application\/json/);
    const body = (await res.json()) as any;
    if (variant.name === 'pglite') {
      expect(body).toEqual({ ok: true, database: 'ok', migrations: 'applied' });
    } else {
      // PostgreSQL: the pool too, already holding DATABASE_POOL_MIN (2) connections.
      const pool = { pool: 'primary', total: expect.any(Number), idle: expect.any(Number), waiting: 0, max: 5 };
      expect(body).toEqual({ ok: true, database: 'ok', migrations: 'applied', pools: [pool] });
      expect(body.pools[0].total).toBeGreaterThanOrEqual(2);
    }
  });

  it('serves GraphiQL to a browser on GET /graphql', async () => {
    const res = await fetch(`${base}/graphql`, { headers: { accept: 'text/html' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/html/);
    const html = await res.text();
    expect(html).toMatch(/<html/i);
    expect(html).toMatch(/graphiql/i);
    expect(html).toContain('Parley');
  });

  it('answers a POST query over real HTTP with a product key', async () => {
    const res = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query: '{ viewer { name keyPrefix } }' }),
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as any;
    expect(body.errors).toBeUndefined();
    expect(body.data.viewer).toEqual({ name: 'Server test', keyPrefix: key.slice(0, 12) });
  });

  it('rejects a POST with a wrong product key', async () => {
    const res = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer pk_live_not_a_real_key_0000000000' },
      body: JSON.stringify({ query: '{ viewer { name } }' }),
    });
    const body = (await res.json()) as any;
    expect(body.data ?? null).toBeNull();
    expect(body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  it('runs a query over graphql-ws with connectionParams.productKey', async () => {
    const { client } = wsClient({ connectionParams: { productKey: key } });
    const { results, error } = await runOverWs(client, '{ viewer { name } }');
    expect(error).toBeUndefined();
    expect(results).toEqual([{ data: { viewer: { name: 'Server test' } } }]);
  });

  it('accepts the key as connectionParams.authorization and as an upgrade header', async () => {
    const byParam = wsClient({ connectionParams: { authorization: `Bearer ${key}` } });
    expect((await runOverWs(byParam.client, '{ viewer { name } }')).results).toEqual([{ data: { viewer: { name: 'Server test' } } }]);

    class WithHeader extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { headers: { authorization: `Bearer ${key}` } });
      }
    }
    const byHeader = wsClient({ webSocketImpl: WithHeader });
    expect((await runOverWs(byHeader.client, '{ viewer { name } }')).results).toEqual([{ data: { viewer: { name: 'Server test' } } }]);
  });

  it('refuses a graphql-ws connection with a wrong key: 4403 Forbidden, no data', async () => {
    const { client, closed } = wsClient({ connectionParams: { productKey: 'pk_live_wrong_key_00000000000000000000' } });
    const { results, error } = await runOverWs(client, '{ viewer { name } }');
    expect(results).toEqual([]);
    expect(error).toMatchObject({ code: 4403, reason: 'Forbidden' });
    expect(closed).toEqual([{ code: 4403, reason: 'Forbidden' }]);
  });

  it('refuses a graphql-ws connection without credentials: 4401 Unauthorized, no data', async () => {
    // A socket with no key at all would only ever get UNAUTHENTICATED: it is not let in.
    const { client, closed } = wsClient();
    const { results, error } = await runOverWs(client, '{ viewer { name } }');
    expect(results).toEqual([]);
    expect(error).toMatchObject({ code: 4401, reason: 'Unauthorized' });
    expect(closed).toEqual([{ code: 4401, reason: 'Unauthorized' }]);
  });

  it('lets a graphql-ws connection with only the admin token in: admin fields work, product fields are UNAUTHENTICATED', async () => {
    const { client } = wsClient({ connectionParams: { adminToken: TEST_ADMIN_TOKEN } });
    const { results } = await runOverWs(client, '{ products(first: 1) { edges { node { id } } } }');
    expect(results[0].errors).toBeUndefined();
    const viewer = await runOverWs(client, '{ viewer { name } }');
    expect(viewer.results[0].errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });

  // Runs last in this file: it stops the server the tests above share.
  it('stop() closes open websocket clients, cuts a stalled request after a grace period, and closes the port', async () => {
    const { client, closed } = wsClient({ connectionParams: { productKey: key }, lazy: false });
    await within(new Promise<void>((resolve) => client.on('connected', () => resolve())), 10_000, 'graphql-ws connected');
    // A raw websocket too, that never says connection_init.
    const raw = new WebSocket(wsUrl, 'graphql-transport-ws');
    const rawClosed = new Promise<number>((resolve) => raw.once('close', (code) => resolve(code)));
    await within(new Promise((resolve, reject) => raw.once('open', resolve).once('error', reject)), 5_000, 'raw ws open');
    // And an HTTP request that never finishes its body: stop() must not wait for it forever.
    const stalled = createConnection({ port, host: '127.0.0.1' });
    const stalledClosed = new Promise<void>((resolve) => stalled.once('close', () => resolve()));
    stalled.on('error', () => {});
    await within(new Promise((resolve) => stalled.once('connect', resolve)), 5_000, 'stalled connect');
    stalled.write('POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n{"query":');
    try {
      expect(await accepts(port)).toBe(true);
      await within(t.app.stop(), 15_000, 'app.stop() with a stalled request open');
      await within(stalledClosed, 5_000, 'stalled request cut');
      expect(await within(rawClosed, 5_000, 'raw ws closed')).toBe(1001);
      await within(
        (async () => {
          while (!closed.length) await new Promise((r) => setTimeout(r, 20));
        })(),
        5_000,
        'graphql-ws client closed',
      );
      expect(closed[0]?.code).toBe(1001);
      expect(await accepts(port)).toBe(false);
      await expect(fetch(`${base}/healthz`)).rejects.toThrow();
    } finally {
      raw.terminate();
      stalled.destroy();
    }
  });
});
