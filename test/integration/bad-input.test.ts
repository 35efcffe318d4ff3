import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { disposeClients, liveClient, subscribe } from '../helpers/live.js';

/**
 * Client mistakes are the client's: a 4xx with a code that says what was
 * wrong, never a 5xx or INTERNAL_SERVER_ERROR (issue 13 point 5). The cases
 * found from outside first, then a property over arbitrary request bodies and
 * GET parameters. The embedded database is enough: nothing here reaches SQL
 * except by mistake.
 */

const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
const URL_ = 'http://parley.test/graphql';
const HASH = 'a'.repeat(64);

describe('bad input', () => {
  let t: TestApp;
  let key: string;
  const send = async (init: RequestInit & { search?: string }) => {
    const response = await t.app.yoga.fetch(`${URL_}${init.search ?? ''}`, init);
    const text = await response.text();
    let body: any = null;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: a 405 or 415 from Yoga, say; the status says it all.
    }
    return { status: response.status, body, text };
  };
  const post = (body: string, headers: Record<string, string> = {}) =>
    send({ method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers }, body });

  beforeAll(async () => {
    t = await createTestApp(pglite);
    key = (await t.product('Fuzzed')).key;
  });
  afterAll(() => t?.dispose());

  it('GET with variables or extensions that are not JSON: 400 BAD_REQUEST, even anonymously', async () => {
    for (const search of ['?query=%7Bviewer%7Bname%7D%7D&variables=%7B', '?query=%7Bviewer%7Bname%7D%7D&extensions=%7B']) {
      for (const headers of [{ 'x-graphql-yoga-csrf': '1' }, { authorization: `Bearer ${key}` }] as Record<string, string>[]) {
        const reply = await send({ method: 'GET', search, headers });
        expect(reply.status).toBe(400);
        expect(reply.body.errors[0].extensions.code).toBe('BAD_REQUEST');
        expect(reply.body.errors[0].message).toMatch(/JSON/);
      }
    }
  });

  it('a query that is not text beside a persisted-query hash: 400 BAD_REQUEST', async () => {
    for (const query of [1, true, {}, []]) {
      const reply = await post(JSON.stringify({ query, extensions: { persistedQuery: { version: 1, sha256Hash: HASH } } }));
      expect(reply.status).toBe(400);
      expect(reply.body.errors[0].extensions.code).toBe('BAD_REQUEST');
    }
  });

  it('variables nested 100,000 levels deep: 400 BAD_REQUEST at once, and the node still answers', async () => {
    let deep = '1';
    for (let i = 0; i < 100_000; i++) deep = `{"a":${deep}}`;
    const started = performance.now();
    const reply = await post(`{"query":"query($v: JSON) { viewer { name } }","variables":{"v":${deep}}}`);
    expect(reply.status).toBe(400);
    expect(reply.body.errors[0].extensions.code).toBe('BAD_REQUEST');
    expect(reply.body.errors[0].message).toMatch(/nested deeper than 64/);
    expect(performance.now() - started).toBeLessThan(5_000);
    // Just under the limit goes on to validation (which finds $v unused: the depth check let it through).
    let fine = '1';
    for (let i = 0; i < 60; i++) fine = `{"a":${fine}}`;
    const under = await post(`{"query":"query($v: JSON) { viewer { name } }","variables":{"v":${fine}}}`);
    expect(under.body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
    expect((await post(JSON.stringify({ query: '{ viewer { name } }' }))).body.data.viewer.name).toBe('Fuzzed');
  });

  it('the same variables over graphql-ws: that operation fails with BAD_REQUEST, the socket carries on', async () => {
    const { port } = await t.app.start(0, '127.0.0.1');
    const { client } = liveClient(`ws://127.0.0.1:${port}/graphql`, { connectionParams: { authorization: `Bearer ${key}` } });
    try {
      // As deep as the client library can still serialize; past 64 levels is what is refused.
      let deep: unknown = 1;
      for (let i = 0; i < 2_000; i++) deep = { a: deep };
      const refused = subscribe(client, 'query($v: JSON) { viewer { name } }', { v: deep });
      await refused.ended;
      expect(refused.errors.flat()[0].extensions.code).toBe('BAD_REQUEST');
      const fine = subscribe(client, '{ viewer { name } }');
      await fine.ended;
      expect(fine.results).toEqual([{ viewer: { name: 'Fuzzed' } }]);
    } finally {
      await disposeClients();
    }
  });

  it('no request body or GET parameters a client can send gets a 5xx or INTERNAL_SERVER_ERROR', async () => {
    const queries = fc.oneof(
      fc.constantFrom(
        '{ viewer { name } }',
        'query Q($n: Int) { conversations(first: $n) { nodes { id } } }',
        'query($id: ID!) { node(id: $id) { id } }',
        'query($v: JSON) { viewer { name } }',
        'mutation($i: StartConversationInput!) { startConversation(input: $i) { id } }',
        'subscription { conversationEvents(conversationId: "x") { __typename } }',
        '{ viewer { name } } { viewer { id } }',
        '{',
        '',
      ),
      fc.string(),
      fc.jsonValue(),
    );
    const params = fc.record(
      {
        query: queries,
        variables: fc.oneof(fc.jsonValue(), fc.dictionary(fc.constantFrom('n', 'id', 'v', 'i'), fc.jsonValue())),
        operationName: fc.oneof(fc.constantFrom('Q', ''), fc.jsonValue()),
        extensions: fc.oneof(
          fc.jsonValue(),
          fc.record({
            persistedQuery: fc.oneof(fc.jsonValue(), fc.record({ version: fc.jsonValue(), sha256Hash: fc.oneof(fc.constant(HASH), fc.string()) })),
          }),
        ),
        [fc.string() as unknown as string]: fc.jsonValue(),
      },
      { requiredKeys: [] },
    );
    const request = fc.oneof(
      params.map((p) => ({ kind: 'json' as const, body: JSON.stringify(p) })),
      fc.array(params, { maxLength: 3 }).map((list) => ({ kind: 'json' as const, body: JSON.stringify(list) })),
      fc.string().map((body) => ({ kind: 'json' as const, body })),
      fc
        .tuple(fc.constantFrom('text/plain', 'application/x-www-form-urlencoded', 'application/graphql', 'multipart/form-data', ''), fc.string())
        .map(([type, body]) => ({ kind: 'other' as const, type, body })),
      fc
        .dictionary(
          fc.constantFrom('query', 'variables', 'extensions', 'operationName', 'x'),
          fc.oneof(
            fc.string(),
            fc.jsonValue().map((v) => JSON.stringify(v)),
          ),
        )
        .map((search) => ({ kind: 'get' as const, search: `?${new URLSearchParams(search as Record<string, string>)}` })),
    );
    const credentials = fc.constantFrom<Record<string, string>>(
      {},
      { 'x-graphql-yoga-csrf': '1' },
      { authorization: 'Bearer wrong' },
      { authorization: 'KEY' },
    );

    await fc.assert(
      fc.asyncProperty(request, credentials, async (req, creds) => {
        const headers: Record<string, string> = { ...creds };
        if (headers.authorization === 'KEY') headers.authorization = `Bearer ${key}`;
        let reply;
        if (req.kind === 'get') reply = await send({ method: 'GET', search: req.search, headers });
        else {
          headers['content-type'] = req.kind === 'json' ? 'application/json' : req.type;
          if (!headers['content-type']) delete headers['content-type'];
          reply = await send({ method: 'POST', headers, body: req.body });
        }
        expect(reply.status, reply.text).toBeLessThan(500);
        expect(reply.text).not.toContain('INTERNAL_SERVER_ERROR');
      }),
      { numRuns: 400 },
    );
    // Whatever was thrown at it, it still answers.
    expect((await post(JSON.stringify({ query: '{ viewer { name } }' }))).body.data.viewer.name).toBe('Fuzzed');
  });
});
