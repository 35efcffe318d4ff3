import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, TEST_ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { gid } from '../helpers/fixtures.js';

// Issue 16 point 2: the admin sets a product's browser rules (allowed origins, the secret key in a page).

const SHOP = 'https://shop.example';
const DASH = 'https://dash.example';
const EVIL = 'https://evil.example';

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
    const res = await fetch(`http://127.0.0.1:${port()}/graphql`, { method: 'POST', headers, body: JSON.stringify({ query, variables: call.variables }) });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Answer['body'] };
  };
}

function ok(answer: Answer): any {
  expect(answer.body.errors, JSON.stringify(answer.body.errors)).toBeUndefined();
  expect(answer.status).toBe(200);
  return answer.body.data;
}

describeEachDatabase('browser rules', (variant) => {
  let t: TestApp;
  let port: number;
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
    shop = await t.product('Shop');
    open = await t.product('Open');
    dash = await t.product('Dashboard');
    ok(await setRules(shop.id, { origins: [SHOP, 'http://localhost:3000'] }));
    ok(await setRules(dash.id, { origins: [DASH], secret: true }));
  });
  afterAll(() => t?.dispose());

  describe('the admin sets the rules', () => {
    it('origins are stored normalised and deduplicated; the admin and the secret key read them, the publishable key cannot', async () => {
      const set = ok(await setRules(open.id, { origins: ['HTTPS://Shop.Example:443/', 'https://shop.example', 'http://LOCALHOST:3000', 'https://bücher.example:8443', 'https://xn--bcher-kva.example:8443'] }));
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
});
