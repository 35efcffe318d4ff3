import { createHash } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import WebSocket from 'ws';
import { ORIGIN_REFUSED, SECRET_KEY_IN_BROWSER } from '../../src/services/origins.js';
import { createTestApp, TEST_ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
import { databaseVariants, describeEachDatabase } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';
import { disposeClients, eventually, liveClient, openSse, subscribe, uniquePrefix } from '../helpers/live.js';
import { migrate, readMigrations } from '../../src/infra/migrate.js';
import { uuidv7 } from '../../src/services/ids.js';
import { within } from '../helpers/time.js';

// Issue 16 point 2, probed from the outside on a real HTTP server and real sockets: a
// product's allowed origins bind its keys in browsers, CORS answers accordingly, and a
// secret key stops working in a web page (but not in Parley's own GraphiQL, nor on servers).
//
// Decisions asserted here:
// - a key used from a page its product does not allow   -> FORBIDDEN (403), no Access-Control-Allow-Origin, nothing written
// - a preflight                                          -> answered for any origin (it carries no key); the actual request decides
// - a graphql-ws upgrade from such a page                -> closed with 4403 and the reason
// - no Origin (servers, curl), the admin token           -> as before

const SHOP = 'https://shop.example';
const DASH = 'https://dash.example';
const EVIL = 'https://evil.example';

const START = /* GraphQL */ `mutation($s: String!) { startConversation(input: { sessionId: $s }) { id conversationToken } }`;
const READ = /* GraphQL */ `query($id: ID!) { conversation(id: $id) { id } }`;
const SEND = /* GraphQL */ `mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "Hello from the page" }) { message { id } } }`;
const RULES = /* GraphQL */ `{ viewer { allowedOrigins secretKeyInBrowser } }`;
const SET_RULES = /* GraphQL */ `
  mutation($id: ID!, $origins: [String!], $secret: Boolean) {
    updateProduct(input: { id: $id, allowedOrigins: $origins, secretKeyInBrowser: $secret }) { allowedOrigins secretKeyInBrowser publishableSearch }
  }
`;

interface Answer {
  status: number;
  headers: Headers;
  body: { data?: any; errors?: { message: string; extensions?: Record<string, any> }[] };
}

interface Call {
  origin?: string;
  key?: string;
  token?: string;
  admin?: boolean;
  ip?: string;
  variables?: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** A POST to the server as a browser (with `origin`) or a server (without) sends it. */
function poster(port: () => number) {
  return async (query: string, call: Call = {}): Promise<Answer> => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...call.headers };
    if (call.origin) headers.origin = call.origin;
    if (call.key) headers.authorization = `Bearer ${call.key}`;
    if (call.token) headers['x-conversation-token'] = call.token;
    if (call.admin) headers['x-admin-token'] = TEST_ADMIN_TOKEN;
    if (call.ip) headers['x-forwarded-for'] = call.ip;
    const res = await fetch(`http://127.0.0.1:${port()}/graphql`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query, variables: call.variables }),
    });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Answer['body'] };
  };
}

function ok(answer: Answer): any {
  expect(answer.body.errors, JSON.stringify(answer.body.errors)).toBeUndefined();
  expect(answer.status).toBe(200);
  return answer.body.data;
}

function expectRefused(answer: Answer, reason: 'ORIGIN_NOT_ALLOWED' | 'SECRET_KEY_IN_BROWSER') {
  expect(answer.status, JSON.stringify(answer.body)).toBe(403);
  expect(answer.body.errors?.[0]?.extensions).toMatchObject({ code: 'FORBIDDEN', reason });
  expect(answer.body.data ?? null).toBeNull();
  // The page cannot even read the refusal; caches keep answers to other pages apart.
  expect(answer.headers.get('access-control-allow-origin')).toBeNull();
  expect(answer.headers.get('vary')).toMatch(/\bOrigin\b/i);
}

function expectShared(answer: Answer, origin: string) {
  expect(answer.headers.get('access-control-allow-origin')).toBe(origin);
  expect(answer.headers.get('vary')).toMatch(/\bOrigin\b/i);
  expect(answer.headers.get('access-control-allow-credentials')).toBeNull();
}

/** A graphql-ws client whose upgrade carries `origin` (as a browser's always does) and `ip`; `lazy: false` keeps one socket. */
function socketFrom(
  port: number,
  origin: string | undefined,
  connectionParams: Record<string, string>,
  { ip, lazy = true }: { ip?: string; lazy?: boolean } = {},
) {
  return liveClient(`ws://127.0.0.1:${port}/graphql`, {
    connectionParams,
    lazy,
    webSocketImpl: class extends WebSocket {
      constructor(url: string, protocols?: string | string[]) {
        super(url, protocols, { ...(origin ? { origin } : {}), headers: ip ? { 'x-forwarded-for': ip } : {} });
      }
    },
  });
}

describeEachDatabase('browser rules', (variant) => {
  let t: TestApp;
  let port: number;
  let self: string;
  const post = poster(() => port);
  /** Origins listed; a secret key that stays on servers. */
  let shop: { id: string; key: string; publishableKey: string };
  /** Made as every product before this change: no list, no secret key in pages. */
  let open: { id: string; key: string; publishableKey: string };
  /** A dashboard in the browser: its secret key allowed there, from its own origin only. */
  let dash: { id: string; key: string; publishableKey: string };

  const setRules = (productId: string, rules: { origins?: string[] | null; secret?: boolean | null }) =>
    post(SET_RULES, { admin: true, variables: { id: gid('Product', productId), origins: rules.origins ?? null, secret: rules.secret ?? null } });

  beforeAll(async () => {
    t = await createTestApp(variant);
    port = (await t.app.start(0, '127.0.0.1')).port;
    self = `http://127.0.0.1:${port}`;
    shop = await t.product('Shop');
    open = await t.product('Open');
    dash = await t.product('Dashboard');
    ok(await setRules(shop.id, { origins: [SHOP, 'http://localhost:3000'] }));
    ok(await setRules(dash.id, { origins: [DASH], secret: true }));
  });
  afterEach(() => disposeClients());
  afterAll(() => t?.dispose());

  describe('the admin sets the rules', () => {
    it('origins are stored normalised and deduplicated; the admin and the secret key read them, the publishable key cannot', async () => {
      const set = ok(
        await setRules(open.id, {
          origins: [
            'HTTPS://Shop.Example:443/',
            'https://shop.example',
            'http://LOCALHOST:3000',
            'https://bücher.example:8443',
            'https://xn--bcher-kva.example:8443',
          ],
        }),
      );
      expect(set.updateProduct).toEqual({
        allowedOrigins: ['https://shop.example', 'http://localhost:3000', 'https://xn--bcher-kva.example:8443'],
        secretKeyInBrowser: false,
        publishableSearch: false,
      });
      expect(ok(await post(RULES, { key: open.key })).viewer.allowedOrigins).toHaveLength(3);
      expect((await post(RULES, { key: open.publishableKey })).status).toBe(403);
      // A setting left out keeps its value; [] empties the list.
      expect(ok(await setRules(open.id, { secret: false })).updateProduct.allowedOrigins).toHaveLength(3);
      expect(ok(await setRules(open.id, { origins: [] })).updateProduct.allowedOrigins).toEqual([]);
    });

    it.each([
      ['no scheme', ['shop.example'], 'input.allowedOrigins.0'],
      ['another scheme', ['ftp://shop.example'], 'input.allowedOrigins.0'],
      ['a path', [SHOP, 'https://shop.example/checkout'], 'input.allowedOrigins.1'],
      ['a query', ['https://shop.example?x=1'], 'input.allowedOrigins.0'],
      ['a fragment', ['https://shop.example#top'], 'input.allowedOrigins.0'],
      ['a user', ['https://admin@shop.example'], 'input.allowedOrigins.0'],
      ['a wildcard', ['https://*.shop.example'], 'input.allowedOrigins.0'],
      ['a wildcard alone', ['*'], 'input.allowedOrigins.0'],
      ['an opaque origin', ['null'], 'input.allowedOrigins.0'],
      ['a bad port', ['https://shop.example:99999'], 'input.allowedOrigins.0'],
      ['spaces inside', ['https://shop .example'], 'input.allowedOrigins.0'],
      ['an empty string', [''], 'input.allowedOrigins.0'],
      ['too long', [`https://${'a'.repeat(250)}.example`], 'input.allowedOrigins.0'],
      ['too many', Array.from({ length: 51 }, (_, i) => `https://site${i}.example`), 'input.allowedOrigins'],
    ])('an origin with %s is BAD_USER_INPUT, and the rules stay as they were', async (_what, origins, field) => {
      const answer = await setRules(shop.id, { origins, secret: true });
      expect(answer.body.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
      expect(ok(await post(RULES, { key: shop.key })).viewer).toEqual({ allowedOrigins: [SHOP, 'http://localhost:3000'], secretKeyInBrowser: false });
    });

    it('only the admin sets them', async () => {
      for (const key of [shop.key, shop.publishableKey]) {
        const answer = await post(SET_RULES, { key, variables: { id: gid('Product', shop.id), origins: [EVIL] } });
        expect(answer.body.errors?.[0]?.extensions?.code).toBe('FORBIDDEN');
      }
    });
  });

  describe('the publishable key in a browser', () => {
    it('from a page not in the list: FORBIDDEN, unreadable by the page, and nothing is written', async () => {
      const before = await t.prisma.conversation.count({ where: { productId: shop.id } });
      for (const origin of [EVIL, 'http://shop.example', 'https://shop.example:8443', 'https://sub.shop.example', 'null']) {
        expectRefused(await post(START, { origin, key: shop.publishableKey, variables: { s: 'attacker' } }), 'ORIGIN_NOT_ALLOWED');
      }
      // With a conversation token taken from the shop's page, another site cannot use it either.
      const mine = ok(await post(START, { origin: SHOP, key: shop.publishableKey, variables: { s: 'visitor' } })).startConversation;
      expectRefused(
        await post(SEND, { origin: EVIL, key: shop.publishableKey, token: mine.conversationToken, variables: { c: mine.id } }),
        'ORIGIN_NOT_ALLOWED',
      );
      expectRefused(
        await post(READ, { origin: EVIL, key: shop.publishableKey, token: mine.conversationToken, variables: { id: mine.id } }),
        'ORIGIN_NOT_ALLOWED',
      );
      expect(await t.prisma.conversation.count({ where: { productId: shop.id } })).toBe(before + 1);
      expect(await t.prisma.message.count({ where: { conversation: { productId: shop.id } } })).toBe(0);
    });

    it('over SSE from a page not in the list: 403 before any stream', async () => {
      const mine = ok(await post(START, { origin: SHOP, key: shop.publishableKey, variables: { s: 'sse' } })).startConversation;
      const query = `subscription($id: ID!) { conversationEvents(conversationId: $id) { __typename } }`;
      const stream = await openSse(
        port,
        { origin: EVIL, authorization: `Bearer ${shop.publishableKey}`, 'x-conversation-token': mine.conversationToken },
        { query, variables: { id: mine.id } },
      );
      try {
        expect(stream.status).toBe(403);
        expect(stream.headers['access-control-allow-origin']).toBeUndefined();
      } finally {
        stream.close();
      }
    });

    it('from a listed page: the preflight and the request are answered for that page', async () => {
      const preflight = await fetch(`${self}/graphql`, {
        method: 'OPTIONS',
        headers: {
          origin: SHOP,
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'authorization, content-type, x-conversation-token',
        },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(SHOP);
      expect(preflight.headers.get('access-control-allow-methods')).toMatch(/\bPOST\b/);
      const allowed = (preflight.headers.get('access-control-allow-headers') ?? '').split(/,\s*/);
      expect(allowed).toEqual(expect.arrayContaining(['authorization', 'content-type', 'x-conversation-token', 'x-request-id', 'x-product-key']));
      expect(Number(preflight.headers.get('access-control-max-age'))).toBeGreaterThan(0);
      expect(preflight.headers.get('vary')).toMatch(/\bOrigin\b/i);
      expect(preflight.headers.get('access-control-allow-credentials')).toBeNull();

      const started = await post(START, { origin: SHOP, key: shop.publishableKey, variables: { s: 'welcome' } });
      const { id, conversationToken } = ok(started).startConversation;
      expectShared(started, SHOP);
      expect(started.headers.get('access-control-expose-headers')).toMatch(/retry-after/);
      const sent = await post(SEND, { origin: 'http://localhost:3000', key: shop.publishableKey, token: conversationToken, variables: { c: id } });
      expect(ok(sent).sendMessage.message.id).toBeTruthy();
      expectShared(sent, 'http://localhost:3000');
    });

    it('a preflight carries no key, so it is answered for any page: the request that follows is what is refused', async () => {
      const preflight = await fetch(`${self}/graphql`, { method: 'OPTIONS', headers: { origin: EVIL, 'access-control-request-method': 'POST' } });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe(EVIL);
      expectRefused(await post(START, { origin: EVIL, key: shop.publishableKey, variables: { s: 'x' } }), 'ORIGIN_NOT_ALLOWED');
    });

    it('a product with no list (every product made before) accepts it from any page, as before', async () => {
      ok(await setRules(open.id, { origins: [] }));
      for (const origin of [EVIL, SHOP, 'null']) {
        const answer = await post(START, { origin, key: open.publishableKey, variables: { s: 'anywhere' } });
        expect(ok(answer).startConversation.id).toBeTruthy();
        expectShared(answer, origin);
      }
    });

    it('a change of the list applies to the next request, on a key already in use', async () => {
      const other = await t.product('Changing');
      expect(ok(await post(START, { origin: EVIL, key: other.publishableKey, variables: { s: 'a' } })).startConversation.id).toBeTruthy();
      ok(await setRules(other.id, { origins: [SHOP] }));
      expectRefused(await post(START, { origin: EVIL, key: other.publishableKey, variables: { s: 'b' } }), 'ORIGIN_NOT_ALLOWED');
      ok(await setRules(other.id, { origins: [] }));
      expect(ok(await post(START, { origin: EVIL, key: other.publishableKey, variables: { s: 'c' } })).startConversation.id).toBeTruthy();
    });

    it('without an Origin (a server, curl) the list does not apply', async () => {
      expect(ok(await post(START, { key: shop.publishableKey, variables: { s: 'server-side' } })).startConversation.id).toBeTruthy();
    });
  });

  describe('the secret key in a browser', () => {
    it('from another page: FORBIDDEN, saying a secret key must not be used in a web page', async () => {
      for (const origin of [EVIL, SHOP, 'null']) {
        const answer = await post(RULES, { origin, key: shop.key });
        expectRefused(answer, 'SECRET_KEY_IN_BROWSER');
        expect(answer.body.errors?.[0]?.message).toMatch(/secret key must not be used in a web page/);
      }
      // Pages of a product that lists no origins too: every product made before.
      expectRefused(await post(RULES, { origin: EVIL, key: open.key }), 'SECRET_KEY_IN_BROWSER');
    });

    it('is not served a response cached for a server', async () => {
      const query = `{ viewer { name } }`;
      expect(ok(await post(query, { key: shop.key })).viewer.name).toBe('Shop');
      expect(ok(await post(query, { key: shop.key })).viewer.name).toBe('Shop');
      expectRefused(await post(query, { origin: EVIL, key: shop.key }), 'SECRET_KEY_IN_BROWSER');
    });

    it('without an Origin (servers, curl) and from Parley’s own page (GraphiQL) it works', async () => {
      expect(ok(await post(RULES, { key: shop.key })).viewer.allowedOrigins).toEqual([SHOP, 'http://localhost:3000']);
      expect(ok(await post(RULES, { origin: self, key: shop.key })).viewer.secretKeyInBrowser).toBe(false);
      // Another port of the same host is another page.
      expectRefused(await post(RULES, { origin: `http://127.0.0.1:${port + 1}`, key: shop.key }), 'SECRET_KEY_IN_BROWSER');
    });

    it('works in the pages of a product that allows it, at its allowed origins only', async () => {
      const answer = await post(RULES, { origin: DASH, key: dash.key });
      expect(ok(answer).viewer).toEqual({ allowedOrigins: [DASH], secretKeyInBrowser: true });
      expectShared(answer, DASH);
      expectRefused(await post(RULES, { origin: EVIL, key: dash.key }), 'ORIGIN_NOT_ALLOWED');
      // Allowed with no list: from any page.
      const anywhere = await t.product('Anywhere');
      ok(await setRules(anywhere.id, { secret: true }));
      expect(ok(await post(RULES, { origin: EVIL, key: anywhere.key })).viewer.secretKeyInBrowser).toBe(true);
    });

    it('the admin token and requests without a key are not concerned', async () => {
      expect(ok(await post(`{ products(first: 1) { nodes { id } } }`, { origin: EVIL, admin: true })).products.nodes).toHaveLength(1);
      const anonymous = await post(`{ __typename }`, { origin: EVIL });
      expect(ok(anonymous).__typename).toBe('Query');
      expectShared(anonymous, EVIL);
    });
  });

  describe('graphql-ws', () => {
    it('an upgrade from a page not in the list is closed with 4403, saying why', async () => {
      const { client, closed } = socketFrom(port, EVIL, { productKey: shop.publishableKey });
      const refused = subscribe(client, START, { s: 'ws' });
      await within(refused.ended, 10_000, 'refused socket');
      await eventually(() => closed.length > 0, 'closed');
      expect(closed[0]).toEqual({ code: 4403, reason: ORIGIN_REFUSED });
      expect(refused.results).toEqual([]);
    });

    it('a secret key from another page is closed with 4403; from no page or Parley’s own it works', async () => {
      const refused = socketFrom(port, EVIL, { productKey: shop.key });
      const sub = subscribe(refused.client, RULES);
      await within(sub.ended, 10_000, 'refused socket');
      await eventually(() => refused.closed.length > 0, 'closed');
      expect(refused.closed[0]).toEqual({ code: 4403, reason: SECRET_KEY_IN_BROWSER });
      for (const origin of [undefined, self]) {
        const { client } = socketFrom(port, origin, { productKey: shop.key });
        expect(await subscribe(client, RULES).next(1)).toEqual([
          { viewer: { allowedOrigins: [SHOP, 'http://localhost:3000'], secretKeyInBrowser: false } },
        ]);
      }
    });

    it('from a listed page it works; a list changed afterwards refuses the socket’s next operations', async () => {
      const other = await t.product('Socket page');
      ok(await setRules(other.id, { origins: [SHOP] }));
      const mine = ok(await post(START, { origin: SHOP, key: other.publishableKey, variables: { s: 'ws' } })).startConversation;
      const { client, closed } = socketFrom(
        port,
        SHOP,
        { productKey: other.publishableKey, conversationToken: mine.conversationToken },
        { lazy: false },
      );
      expect(await subscribe(client, READ, { id: mine.id }).next(1)).toEqual([{ conversation: { id: mine.id } }]);
      ok(await setRules(other.id, { origins: [DASH] }));
      const after = subscribe(client, READ, { id: mine.id });
      await within(after.ended, 10_000, 'refused operation');
      expect(after.errors[0]).toMatchObject([{ extensions: { code: 'FORBIDDEN', reason: 'ORIGIN_NOT_ALLOWED' } }]);
      expect(closed).toEqual([]);
    });
  });
});

// Per-visitor limits of the publishable key: per product and client IP, and per conversation
// (its token). Addresses are simulated behind one trusted proxy (X-Forwarded-For).
const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
const redisUrl = inject('redisUrl');

function expectLimited(answer: Answer, message: RegExp) {
  expect(answer.status, JSON.stringify(answer.body)).toBe(429);
  const extensions = answer.body.errors?.[0]?.extensions;
  expect(extensions?.code).toBe('RATE_LIMITED');
  expect(answer.headers.get('retry-after')).toBe(String(extensions?.retryAfter));
  expect(extensions?.retryAfter).toBeGreaterThanOrEqual(1);
  expect(answer.body.errors?.[0]?.message).toMatch(message);
  expect(answer.body.data ?? null).toBeNull();
}

for (const store of ['in-process', 'redis'] as const) {
  describe.skipIf(store === 'redis' && !redisUrl)(`per-visitor limits of the publishable key (${store})`, () => {
    let base: TestApp;
    const apps: TestApp[] = [];
    const app = async (env: Record<string, string>) => {
      const redis: Record<string, string> = store === 'redis' ? { REDIS_URL: redisUrl, PARLEY_REDIS_PREFIX: uniquePrefix('visitor') } : {};
      const t = await createTestApp(pglite, { PARLEY_TRUST_PROXY: '1', ...redis, ...env }, { shared: base.database });
      apps.push(t);
      const { port } = await t.app.start(0, '127.0.0.1');
      return { t, port, post: poster(() => port) };
    };

    beforeAll(async () => {
      base = await createTestApp(pglite);
    });
    afterEach(async () => {
      await disposeClients();
      await Promise.all(apps.splice(0).map((t) => t.dispose()));
    });
    afterAll(() => base?.dispose());

    it('one visitor at its limit is refused while another keeps working, and its refused requests cost the product nothing', async () => {
      const { t, post } = await app({ PARLEY_RATE_LIMIT_VISITOR_IP_PER_MIN: '3', PARLEY_RATE_LIMIT_PRODUCT_PER_MIN: '6' });
      const { key, publishableKey } = await t.product('Busy shop');
      const start = (ip: string) => post(START, { origin: SHOP, key: publishableKey, ip, variables: { s: ip } });
      // The abusive page: 3 requests pass, the next 7 are refused for its address alone.
      for (let i = 0; i < 3; i++) ok(await start('203.0.113.1'));
      for (let i = 0; i < 7; i++) expectLimited(await start('203.0.113.1'), /from this address/);
      // Another visitor of the same product: its own 3, from a product budget the refusals did not spend.
      for (let i = 0; i < 3; i++) ok(await start('203.0.113.2'));
      // The product's budget counted what was served, 3 + 3 = 6: now it is spent, for the secret key too.
      expectLimited(await post(`{ viewer { name } }`, { key, ip: '198.51.100.1' }), /for this product key/);
      expect(await t.prisma.conversation.count({ where: { product: { name: 'Busy shop' } } })).toBe(6);
    });

    it('per conversation: a conversation at its limit is refused, another from the same address is not', async () => {
      const { t, post } = await app({ PARLEY_RATE_LIMIT_VISITOR_CONVERSATION_PER_MIN: '2', PARLEY_RATE_LIMIT_VISITOR_IP_PER_MIN: '100' });
      const { publishableKey } = await t.product('Chatty');
      const ip = '203.0.113.7';
      const started = async (s: string) => ok(await post(START, { key: publishableKey, ip, variables: { s } })).startConversation;
      const x = await started('x');
      const y = await started('y');
      const read = (c: { id: string; conversationToken: string }) =>
        post(READ, { key: publishableKey, token: c.conversationToken, ip, variables: { id: c.id } });
      for (let i = 0; i < 2; i++) expect(ok(await read(x)).conversation.id).toBe(x.id);
      expectLimited(await read(x), /for this conversation/);
      for (let i = 0; i < 2; i++) expect(ok(await read(y)).conversation.id).toBe(y.id);
    });

    it('graphql-ws operations count per visitor: a refused one fails alone, another address’s socket works', async () => {
      const { t, port } = await app({ PARLEY_RATE_LIMIT_VISITOR_IP_PER_MIN: '2' });
      const { publishableKey } = await t.product('Sockets');
      const abusive = socketFrom(port, SHOP, { productKey: publishableKey }, { ip: '203.0.113.9', lazy: false });
      for (let i = 0; i < 2; i++) expect((await subscribe(abusive.client, START, { s: `ws-${i}` }).next(1))[0].startConversation.id).toBeTruthy();
      const refused = subscribe(abusive.client, START, { s: 'ws-3' });
      await within(refused.ended, 10_000, 'refused operation');
      expect(refused.errors[0]).toMatchObject([{ extensions: { code: 'RATE_LIMITED' } }]);
      expect(abusive.closed).toEqual([]);
      const other = socketFrom(port, SHOP, { productKey: publishableKey }, { ip: '203.0.113.10' });
      expect((await subscribe(other.client, START, { s: 'other' }).next(1))[0].startConversation.id).toBeTruthy();
    });

    it('the secret key is limited per product only, never per visitor', async () => {
      const { t, post } = await app({ PARLEY_RATE_LIMIT_VISITOR_IP_PER_MIN: '1', PARLEY_RATE_LIMIT_VISITOR_CONVERSATION_PER_MIN: '1' });
      const { key } = await t.product('Server');
      for (let i = 0; i < 5; i++) expect(ok(await post(`{ viewer { name } }`, { key, ip: '203.0.113.20' })).viewer.name).toBe('Server');
    });
  });
}

// Upgrading: products made before this migration keep working as they did, except a secret key in a page.
describeEachDatabase('upgrade to browser rules', (variant) => {
  const BROWSER_RULES_MIGRATION = '20261228000000_browser_rules';
  const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');
  const secretKey = `sk_live_${'S'.repeat(32)}`;
  const publishableKey = `pk_pub_${'P'.repeat(32)}`;
  let t: TestApp;
  let port: number;
  let productId: string;
  const post = poster(() => port);

  beforeAll(async () => {
    const database = await variant.open();
    // The database as the release before left it, with a product that has both kinds of key.
    const before = readMigrations().filter((m) => m.name < BROWSER_RULES_MIGRATION);
    expect(before.length).toBe(readMigrations().findIndex((m) => m.name === BROWSER_RULES_MIGRATION));
    await migrate(database.db.prisma, before);
    const [product] = await database.db.prisma.$queryRawUnsafe<{ id: string }[]>(
      `INSERT INTO "Product" (id, name, "keyPrefix", "keyHash", "publishableKeyPrefix", "publishableKeyHash", "conversationTokenSecret")
       VALUES ($1::uuid, 'Before', 'sk_live_SSSS', $2, 'pk_pub_PPPP', $3, $4) RETURNING id::text AS id`,
      uuidv7(),
      sha256(secretKey),
      sha256(publishableKey),
      'ab'.repeat(32),
    );
    productId = product!.id;
    // Starting the app applies the rest (as a deploy does).
    t = await createTestApp(variant, {}, { shared: database });
    t.dispose = ((dispose) => async () => {
      await dispose();
      await database.dispose();
    })(t.dispose);
    port = (await t.app.start(0, '127.0.0.1')).port;
  });
  afterAll(() => t?.dispose());

  it('the product lists no origins and keeps its secret key out of pages', async () => {
    const row = await t.prisma.product.findUniqueOrThrow({ where: { id: productId } });
    expect(row.allowedOrigins).toEqual([]);
    expect(row.secretKeyInBrowser).toBe(false);
  });

  it('its publishable key works from any page, its secret key from servers; only a secret key in a page is refused', async () => {
    const started = await post(START, { origin: EVIL, key: publishableKey, variables: { s: 'after-upgrade' } });
    expect(ok(started).startConversation.conversationToken).toMatch(/^ct_/);
    expectShared(started, EVIL);
    expect(ok(await post(`{ viewer { name allowedOrigins } }`, { key: secretKey })).viewer).toEqual({ name: 'Before', allowedOrigins: [] });
    expectRefused(await post(`{ viewer { name } }`, { origin: EVIL, key: secretKey }), 'SECRET_KEY_IN_BROWSER');
  });
});
