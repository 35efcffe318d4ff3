import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { clientIp } from '../../src/http/client-ip.js';
import { messageBudget } from '../../src/services/rate-limits.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { disposeClients, liveClient, subscribe, uniquePrefix } from '../helpers/live.js';
import { within } from '../helpers/time.js';

/**
 * Rate limits: per product key (all of a site's traffic, whatever its
 * addresses), per IP for requests without credentials, wrong credentials per
 * IP, graphql-ws messages per socket. A refusal is `RATE_LIMITED` with
 * `retryAfter` (and HTTP 429 + Retry-After). Addresses are simulated behind
 * one trusted proxy (X-Forwarded-For), as in the docker-compose set-up.
 */

const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
const redisUrl = inject('redisUrl');

interface Answer {
  status: number;
  retryAfterHeader: string | null;
  body: { data?: any; errors?: { message: string; extensions?: Record<string, any> }[] };
}

function client(port: number) {
  return async (
    query: string,
    { ip = '203.0.113.1', key, headers = {} }: { ip?: string; key?: string; headers?: Record<string, string> } = {},
  ): Promise<Answer> => {
    const res = await fetch(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': ip, ...(key ? { authorization: `Bearer ${key}` } : {}), ...headers },
      body: JSON.stringify({ query }),
    });
    return { status: res.status, retryAfterHeader: res.headers.get('retry-after'), body: (await res.json()) as Answer['body'] };
  };
}

function expectLimited(answer: Answer, maxSeconds: number) {
  expect(answer.status).toBe(429);
  const extensions = answer.body.errors?.[0]?.extensions;
  expect(extensions?.code).toBe('RATE_LIMITED');
  expect(extensions?.retryAfter).toBeGreaterThanOrEqual(1);
  expect(extensions?.retryAfter).toBeLessThanOrEqual(maxSeconds);
  expect(answer.retryAfterHeader).toBe(String(extensions?.retryAfter));
  expect(answer.body.data ?? null).toBeNull();
}

describe('rate limits (in-process)', () => {
  let base: TestApp;
  const apps: TestApp[] = [];
  const app = async (env: Record<string, string>) => {
    const t = await createTestApp(pglite, { PARLEY_TRUST_PROXY: '1', ...env }, { shared: base.database });
    apps.push(t);
    const { port } = await t.app.start(0, '127.0.0.1');
    return { t, port, send: client(port) };
  };

  beforeAll(async () => {
    base = await createTestApp(pglite);
  });
  afterEach(async () => {
    await disposeClients();
    await Promise.all(apps.splice(0).map((t) => t.dispose()));
  });
  afterAll(() => base?.dispose());

  it('limits requests without credentials per IP, never product traffic from that IP', async () => {
    const { t, send } = await app({ PARLEY_RATE_LIMIT_ANONYMOUS_PER_MIN: '3' });
    const { key } = await t.product('Busy office');
    for (let i = 0; i < 3; i++) expect((await send('{ __typename }', { ip: '198.51.100.7' })).status).toBe(200);
    expectLimited(await send('{ __typename }', { ip: '198.51.100.7' }), 60);
    // Another address has its own budget; the same address with a product key is not limited by it.
    expect((await send('{ __typename }', { ip: '198.51.100.8' })).status).toBe(200);
    for (let i = 0; i < 5; i++) expect((await send('{ viewer { name } }', { ip: '198.51.100.7', key })).body.data.viewer.name).toBe('Busy office');
  });

  it('limits requests per product key, whichever addresses they come from', async () => {
    const { t, send } = await app({ PARLEY_RATE_LIMIT_PRODUCT_PER_MIN: '4' });
    const a = await t.product('A');
    const b = await t.product('B');
    for (let i = 0; i < 4; i++) expect((await send('{ viewer { name } }', { ip: `192.0.2.${i}`, key: a.key })).status).toBe(200);
    expectLimited(await send('{ viewer { name } }', { ip: '192.0.2.99', key: a.key }), 60);
    expect((await send('{ viewer { name } }', { key: b.key })).body.data.viewer.name).toBe('B');
  });

  it('refuses the credentials of an IP that sent too many wrong ones', async () => {
    const { t, send, port } = await app({ PARLEY_RATE_LIMIT_BAD_CREDENTIALS: '3' });
    const { key } = await t.product('Target');
    const wrong = `pk_live_${'x'.repeat(32)}`;
    for (let i = 0; i < 3; i++) {
      const answer = await send('{ viewer { name } }', { ip: '198.51.100.66', key: wrong });
      expect(answer.status).toBe(401);
      expect(answer.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
    // Now even a right key from there waits (at most the 5-minute window); other addresses do not.
    expectLimited(await send('{ viewer { name } }', { ip: '198.51.100.66', key }), 300);
    expectLimited(await send('{ viewer { name } }', { ip: '198.51.100.66', headers: { 'x-admin-token': 'adm_wrong_wrong_wrong_wrong_wrong' } }), 300);
    expect((await send('{ viewer { name } }', { ip: '198.51.100.67', key })).body.data.viewer.name).toBe('Target');
    // A graphql-ws connection from that address is refused too (4429), even with the right key.
    const { client: ws, closed } = liveClient(`ws://127.0.0.1:${port}/graphql`, {
      connectionParams: { productKey: key },
      webSocketImpl: class extends WebSocket {
        constructor(url: string, protocols?: string | string[]) {
          super(url, protocols, { headers: { 'x-forwarded-for': '198.51.100.66' } });
        }
      },
    });
    const sub = subscribe(ws, '{ viewer { name } }');
    await within(sub.ended, 10_000, 'refused socket');
    expect(closed[0]?.code).toBe(4429);
  });

  it('limits graphql-ws operations per product, failing the operation and keeping the socket', async () => {
    const { t, port } = await app({ PARLEY_RATE_LIMIT_PRODUCT_PER_MIN: '3' });
    const { key } = await t.product('Socket');
    const { client: ws, closed } = liveClient(`ws://127.0.0.1:${port}/graphql`, { connectionParams: { productKey: key }, lazy: false });
    // The connection's own authentication is not an operation: three operations pass.
    for (let i = 0; i < 3; i++) expect(await subscribe(ws, '{ viewer { name } }').next(1)).toEqual([{ viewer: { name: 'Socket' } }]);
    const fourth = subscribe(ws, '{ viewer { name } }');
    await within(fourth.ended, 10_000, 'refused operation');
    expect(fourth.errors[0]).toMatchObject([{ extensions: { code: 'RATE_LIMITED' } }]);
    expect(closed).toEqual([]);
  });

  it('closes a graphql-ws socket that sends more messages per second than allowed (1008)', async () => {
    const { t, port } = await app({ PARLEY_WS_MESSAGES_PER_SEC: '5' });
    const { key } = await t.product('Chatty');
    const socket = new WebSocket(`ws://127.0.0.1:${port}/graphql`, 'graphql-transport-ws');
    const closed = new Promise<{ code: number; reason: string }>((resolve) =>
      socket.once('close', (code, reason) => resolve({ code, reason: String(reason) })),
    );
    await within(new Promise((resolve, reject) => socket.once('open', resolve).once('error', reject)), 5_000, 'ws open');
    socket.send(JSON.stringify({ type: 'connection_init', payload: { productKey: key } }));
    for (let i = 0; i < 20; i++) socket.send(JSON.stringify({ type: 'ping' }));
    expect(await within(closed, 5_000, 'socket closed')).toEqual({ code: 1008, reason: 'Rate limited' });
  });
});

describe.skipIf(!redisUrl)('rate limits on Redis (two nodes)', () => {
  let a: TestApp;
  let b: TestApp;
  beforeAll(async () => {
    const env = { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: uniquePrefix('rl'), PARLEY_RATE_LIMIT_PRODUCT_PER_MIN: '4', PARLEY_TRUST_PROXY: '1' };
    a = await createTestApp(pglite, env);
    b = await createTestApp(pglite, env, { shared: a.database });
  });
  afterAll(async () => {
    await b?.dispose();
    await a?.dispose();
  });

  it('shares one budget per product across nodes', async () => {
    const { key } = await a.product('Shared');
    const sendA = client((await a.app.start(0, '127.0.0.1')).port);
    const sendB = client((await b.app.start(0, '127.0.0.1')).port);
    for (const send of [sendA, sendB, sendA, sendB]) expect((await send('{ viewer { name } }', { key })).status).toBe(200);
    expectLimited(await sendB('{ viewer { name } }', { key }), 60);
    expectLimited(await sendA('{ viewer { name } }', { key }), 60);
  });
});

describe('clientIp', () => {
  const req = (remoteAddress: string, xff?: string) => ({ socket: { remoteAddress } as never, headers: xff ? { 'x-forwarded-for': xff } : {} });

  it('is the socket peer without trusted proxies, whatever X-Forwarded-For says', () => {
    expect(clientIp(req('::ffff:10.1.2.3', '1.1.1.1'), 0)).toBe('10.1.2.3');
    expect(clientIp(undefined, 0)).toBeUndefined();
  });

  it('is the entry the trusted proxies appended, never one the client wrote', () => {
    expect(clientIp(req('10.0.0.2', 'spoofed, 203.0.113.9'), 1)).toBe('203.0.113.9');
    expect(clientIp(req('10.0.0.2', 'spoofed, 203.0.113.9, 10.0.0.5'), 2)).toBe('203.0.113.9');
    expect(clientIp(req('10.0.0.2'), 1)).toBe('10.0.0.2');
  });
});

describe('messageBudget', () => {
  it('allows n messages per second, then again in the next second', () => {
    let now = 0;
    const allow = messageBudget(2, () => now);
    expect([allow(), allow(), allow()]).toEqual([true, true, false]);
    now = 1_000;
    expect(allow()).toBe(true);
    expect(messageBudget(0)()).toBe(true);
  });
});
