import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DOCUMENTS } from '../../bench/scenarios.js';
import { createTestApp, rawPost, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { CONVERSATION_EVENTS } from '../helpers/live.js';
import { sample } from '../helpers/metrics.js';

/**
 * Query safety with the documented defaults: depth 10, cost 100,000, 15
 * aliases, 1,000 tokens, 50 directives, 1 MiB bodies, CSRF prevention,
 * introspection off in production. Every refusal carries `extensions.code`,
 * and what Parley's own clients send (the bench's documents, the live
 * subscription) stays well inside the limits.
 */

/** `conversation(id) { messages { edges { node { conversation { … __typename } } } } }`, exactly `depth` fields deep. */
function deep(depth: number): string {
  const path = ['messages(first: 1)', 'edges', 'node', 'conversation'];
  let document = '__typename';
  for (let level = depth - 2; level >= 0; level--) document = `${level === 0 ? 'conversation(id: "x")' : path[(level - 1) % 4]} { ${document} }`;
  return `{ ${document} }`;
}

describe('query safety', () => {
  const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
  let t: TestApp;
  let production: TestApp;
  let key: string;

  beforeAll(async () => {
    t = await createTestApp(pglite);
    key = (await t.product('Limits')).key;
    production = await createTestApp(pglite, { NODE_ENV: 'production' }, { shared: t.database });
  });
  afterAll(async () => {
    await production?.dispose();
    await t?.dispose();
  });

  const refused = (result: { errors?: { message: string; extensions?: Record<string, any> }[] | undefined; data?: unknown }, limit: string) => {
    expect(result.errors?.[0]?.extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', limit });
    expect(result.data ?? null).toBeNull();
  };

  it('accepts what Parley’s own clients send: the bench’s documents and the live subscription', async () => {
    for (const [name, document] of Object.entries(DOCUMENTS)) {
      const result = await t.gql(document, { key, variables: { query: 'parcel', input: { conversationId: 'x', content: 'hi' } } });
      const codes = (result.errors ?? []).map((e) => e.extensions?.code);
      expect(codes, name).not.toContain('QUERY_TOO_COMPLEX');
    }
    const events = await t.gql(CONVERSATION_EVENTS.replace('subscription', 'query'), { key });
    expect((events.errors ?? []).map((e) => e.extensions?.code)).not.toContain('QUERY_TOO_COMPLEX');
  });

  it('refuses an operation deeper than 10', async () => {
    const ten = await t.gql(deep(10), { key });
    expect(ten.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT'); // executed: "x" is not an id
    const result = await t.gql(deep(11), { key });
    refused(result, 'depth');
    expect(result.errors?.[0]?.message).toMatch(/depth limit of 10 exceeded/);
  });

  it('refuses an operation that could return more than 100,000 values (first/last multiply)', async () => {
    const page = (fields: string) => `{ conversations(first: 100) { edges { node { id messages(first: 100) { edges { node { ${fields} } } } } } } }`;
    // 100 × 100 messages with a few fields: the largest two-level page, accepted.
    expect((await t.gql(page('id role content createdAt'), { key })).errors).toBeUndefined();
    refused(
      await t.gql(page('id role content createdAt model latencyMs cached feedback { rating comment } conversation { id title }'), { key }),
      'cost',
    );
    const nested =
      '{ conversations(first: 100) { edges { node { messages(first: 100) { edges { node { conversation { messages(first: 100) { edges { node { id } } } } } } } } } } }';
    refused(await t.gql(nested, { key }), 'cost');
  });

  it('computes the cost with the variables: page sizes passed as $n count as their values (issue 13 point 4)', async () => {
    const query =
      'query($n: Int) { conversations(first: $n) { nodes { messages(first: $n) { nodes { conversation { messages(first: $n) { nodes { id content } } } } } } } }';
    const started = performance.now();
    const hundred = await t.gql(query, { key, variables: { n: 100 } });
    refused(hundred, 'cost');
    expect(hundred.sql).toEqual([]);
    expect(performance.now() - started).toBeLessThan(1_000);
    expect((await t.gql(query, { key, variables: { n: 5 } })).errors).toBeUndefined();
    // A default value counts as well.
    refused(await t.gql(query.replace('$n: Int', '$n: Int = 100'), { key }), 'cost');
    // The same query with literals was refused before; still is.
    refused(await t.gql(query.replaceAll('$n', '100').replace('(100: Int)', ''), { key }), 'cost');
  });

  it('refuses more than 15 aliases, 1,000 tokens or 50 directives', async () => {
    const aliases = (n: number) => `{ viewer { ${Array.from({ length: n }, (_, i) => `a${i}: name`).join(' ')} } }`;
    expect((await t.gql(aliases(15), { key })).errors).toBeUndefined();
    refused(await t.gql(aliases(16), { key }), 'aliases');
    refused(await t.gql(`{ viewer { ${'name '.repeat(1_000)} } }`, { key }), 'tokens');
    refused(await t.gql(`{ viewer { name ${'@include(if: true) '.repeat(51)} } }`, { key }), 'directives');
  });

  it('answers a refused operation with 400 under application/graphql-response+json, 200 under application/json', async () => {
    const aliases = `{ viewer { ${Array.from({ length: 16 }, (_, i) => `a${i}: name`).join(' ')} } }`;
    const costly =
      '{ conversations(first: 100) { edges { node { messages(first: 100) { edges { node { conversation { messages(first: 100) { edges { node { id } } } } } } } } } } }';
    const cases: Array<[string, string]> = [
      [deep(11), 'QUERY_TOO_COMPLEX'],
      [aliases, 'QUERY_TOO_COMPLEX'],
      [costly, 'QUERY_TOO_COMPLEX'],
      [`{ viewer { ${'name '.repeat(1_000)} } }`, 'QUERY_TOO_COMPLEX'],
      ['{ conversations(first: 1000) { edges { node { id } } } }', 'BAD_USER_INPUT'],
    ];
    for (const [query, code] of cases) {
      for (const [accept, status] of [
        ['application/graphql-response+json', 400],
        ['application/json', 200],
      ] as const) {
        const response = await t.app.yoga.fetch('http://parley.test/graphql', {
          method: 'POST',
          headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', accept },
          body: JSON.stringify({ query }),
        });
        const body = (await response.json()) as { data?: unknown; errors: Array<{ extensions: { code: string } }> };
        expect([query.slice(0, 40), accept, response.status]).toEqual([query.slice(0, 40), accept, status]);
        expect(body.data).toBeUndefined();
        expect(body.errors[0]!.extensions.code).toBe(code);
      }
    }
  });

  it('caps list arguments at 100 items, like pages: nodes(ids:) with 10,000 ids is refused at once', async () => {
    const ids = (n: number) =>
      Array.from({ length: n }, (_, i) => Buffer.from(`Conversation:00000000-0000-4000-8000-${String(i).padStart(12, '0')}`).toString('base64'));
    const byVariable = `query($ids: [ID!]!) { nodes(ids: $ids) { id } }`;
    const hundred = await t.gql(byVariable, { key, variables: { ids: ids(100) } });
    expect(hundred.errors).toBeUndefined();
    expect(hundred.data.nodes).toHaveLength(100);
    const started = performance.now();
    const many = await t.gql(byVariable, { key, variables: { ids: ids(10_000) } });
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(many.errors?.[0]?.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'nodes.ids' });
    expect(many.errors?.[0]?.message).toBe('nodes.ids takes at most 100 items, got 10000');
    expect(many.sql).toEqual([]);
    const literal = await t.gql(`{ nodes(ids: ${JSON.stringify(ids(101))}) { id } }`, { key });
    expect(literal.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('counts refusals in the metrics', async () => {
    refused(await t.gql(deep(11), { key }), 'depth');
    const text = await t.app.deps.metrics!.text();
    expect(sample(text, 'parley_requests_rejected_total', { reason: 'query_depth' })).toBeGreaterThanOrEqual(1);
  });

  describe('request body', () => {
    let port: number;
    beforeAll(async () => {
      port = (await t.app.start(0, '127.0.0.1')).port;
    });

    const post = (body: string, headers: Record<string, string | number>) => rawPost(port, body, { authorization: `Bearer ${key}`, ...headers });

    it('refuses a body over 1 MiB announced by Content-Length with 413 PAYLOAD_TOO_LARGE, and takes one just under', async () => {
      const padding = (bytes: number) => JSON.stringify({ query: '{ viewer { name } }', variables: { pad: 'x'.repeat(bytes) } });
      const big = padding(1024 * 1024);
      const res = await post(big, { 'content-length': Buffer.byteLength(big) });
      expect(res.status).toBe(413);
      expect(res.body.errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
      const ok = padding(1024 * 1024 - 100);
      const accepted = await post(ok, { 'content-length': Buffer.byteLength(ok) });
      expect(accepted.status).toBe(200);
      expect(accepted.body.data.viewer.name).toBe('Limits');
    });

    it('refuses a chunked body (no Content-Length) once it passes 1 MiB', async () => {
      const big = JSON.stringify({ query: '{ viewer { name } }', variables: { pad: 'x'.repeat(2 * 1024 * 1024) } });
      const res = await post(big, { 'transfer-encoding': 'chunked' });
      expect(res.status).toBe(413);
      expect(res.body.errors[0].extensions.code).toBe('PAYLOAD_TOO_LARGE');
      const small = await post(JSON.stringify({ query: '{ viewer { name } }' }), { 'transfer-encoding': 'chunked' });
      expect(small.status).toBe(200);
      expect(small.body.data.viewer.name).toBe('Limits');
    });
  });

  describe('CSRF', () => {
    const send = (init: RequestInit, url = 'http://parley.test/graphql') => t.app.yoga.fetch(url, init);

    it('refuses a "simple" browser request (no preflight) with 403 and a code', async () => {
      for (const res of [
        await send({ method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ query: '{ __typename }' }) }),
        await send({ method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: 'query=%7B__typename%7D' }),
        await send({ method: 'GET', headers: { accept: 'application/json' } }, 'http://parley.test/graphql?query=%7B__typename%7D'),
      ]) {
        expect(res.status).toBe(403);
        const body = (await res.json()) as any;
        expect(body.errors[0].extensions.code).toBe('CSRF_PREVENTED');
      }
    });

    it('lets through JSON posts and any request carrying a key, a token or a CSRF header', async () => {
      const json = await send({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
      expect(json.status).toBe(200);
      const allowed: Record<string, string>[] = [{ 'x-product-key': key }, { authorization: `Bearer ${key}` }, { 'x-graphql-yoga-csrf': '1' }];
      for (const headers of allowed) {
        const res = await send(
          { method: 'GET', headers: { accept: 'application/json', ...headers } },
          'http://parley.test/graphql?query=%7B__typename%7D',
        );
        expect(res.status).toBe(200);
      }
    });
  });

  describe('introspection', () => {
    const INTROSPECT = '{ __schema { queryType { name } } }';

    it('is on outside production', async () => {
      expect((await t.gql(INTROSPECT)).data.__schema.queryType.name).toBe('Query');
      expect((await t.gql('{ viewr { name } }', { key })).errors?.[0]?.message).toMatch(/Did you mean/);
    });

    it('is off in production, with schema hints hidden, and a code', async () => {
      const result = await production.gql(INTROSPECT);
      expect(result.data ?? null).toBeNull();
      expect(result.errors?.[0]?.message).toMatch(/introspection/i);
      expect(result.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      const typo = await production.gql('{ viewr { name } }', { key });
      expect(typo.errors?.[0]?.extensions?.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(typo.errors?.[0]?.message).not.toMatch(/Did you mean/);
      // __typename is not introspection of the schema.
      expect((await production.gql('{ __typename }')).data).toEqual({ __typename: 'Query' });
    });

    it('can be switched on in production with PARLEY_INTROSPECTION=true', async () => {
      const on = await createTestApp(pglite, { NODE_ENV: 'production', PARLEY_INTROSPECTION: 'true' }, { shared: t.database });
      try {
        expect((await on.gql(INTROSPECT)).data.__schema.queryType.name).toBe('Query');
      } finally {
        await on.dispose();
      }
    });
  });
});
