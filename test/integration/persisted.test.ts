import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, inject, it } from 'vitest';
import { buildApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { sha256 } from '../../src/infra/hash.js';
import { createTestApp, TEST_ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { disposeClients, liveClient, uniquePrefix } from '../helpers/live.js';
import { within } from '../helpers/time.js';

/**
 * Persisted operations (automatic persisted queries and the allow-list mode)
 * over POST, GET and WebSocket, and GET results cached by the client with
 * Cache-Control + ETag / 304.
 */

const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
const redisUrl = inject('redisUrl');

const VIEWER = `query Viewer { viewer { name knowledge(first: 5) { edges { node { title } } } } }`;
const VIEWER_HASH = sha256(VIEWER);
const ADD = `mutation($t: String!) { addKnowledge(input: { title: $t, content: "Opening hours are nine to five." }) { id } }`;

interface Reply {
  status: number;
  headers: Headers;
  body: any;
}

function persistedQuery(hash: string) {
  return { persistedQuery: { version: 1, sha256Hash: hash } };
}

async function post(t: TestApp, key: string | undefined, body: Record<string, unknown>): Promise<Reply> {
  const response = await t.app.yoga.fetch('http://parley.test/graphql', {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: response.status, headers: response.headers, body: await response.json() };
}

async function get(t: TestApp, key: string, params: Record<string, unknown>, headers: Record<string, string> = {}): Promise<Reply> {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params)) search.set(name, typeof value === 'string' ? value : JSON.stringify(value));
  const response = await t.app.yoga.fetch(`http://parley.test/graphql?${search}`, {
    method: 'GET',
    headers: { accept: 'application/json', authorization: `Bearer ${key}`, ...headers },
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, body: text ? JSON.parse(text) : null };
}

/** One operation over graphql-ws: its result, or the errors it ended with. */
function overSocket(client: Client, payload: { query: string; extensions?: Record<string, unknown> }): Promise<{ data?: any; errors?: any[] }> {
  return within(
    new Promise((resolve) => {
      let last: { data?: any; errors?: any[] } = {};
      client.subscribe(payload, {
        next: (result) => void (last = result as typeof last),
        error: (error) => resolve({ errors: Array.isArray(error) ? error : [error] }),
        complete: () => resolve(last),
      });
    }),
    10_000,
    'graphql-ws operation',
  );
}

const codes = (reply: { errors?: { extensions?: { code?: string } }[] }) => reply.errors?.map((e) => e.extensions?.code);

describe('automatic persisted queries', () => {
  let t: TestApp;
  let key: string;
  let ws: string;

  beforeAll(async () => {
    t = await createTestApp(pglite);
    key = (await t.product('APQ')).key;
    await post(t, key, { query: ADD, variables: { t: 'Hours' } });
    ws = `ws://127.0.0.1:${(await t.app.start(0, '127.0.0.1')).port}/graphql`;
  });
  afterEach(() => disposeClients());
  afterAll(() => t?.dispose());

  it('answers an unknown hash with PERSISTED_QUERY_NOT_FOUND, then runs it by hash once sent with its document', async () => {
    const query = `query Fresh { viewer { name } }`;
    const hash = sha256(query);
    const unknown = await post(t, key, { extensions: persistedQuery(hash) });
    expect(unknown.status).toBe(200);
    expect(unknown.body.errors[0]).toMatchObject({ message: 'PersistedQueryNotFound', extensions: { code: 'PERSISTED_QUERY_NOT_FOUND' } });
    expect(unknown.headers.get('cache-control')).toBe('no-store');

    const registered = await post(t, key, { query, extensions: persistedQuery(hash) });
    expect(registered.body).toEqual({ data: { viewer: { name: 'APQ' } } });
    const byHash = await post(t, key, { extensions: persistedQuery(hash) });
    expect(byHash.body).toEqual({ data: { viewer: { name: 'APQ' } } });
  });

  it('refuses a document that does not match its hash, and malformed persistedQuery extensions', async () => {
    const wrong = await post(t, key, { query: `{ viewer { id } }`, extensions: persistedQuery(VIEWER_HASH) });
    expect(wrong.status).toBe(400);
    expect(codes(wrong.body)).toEqual(['BAD_USER_INPUT']);
    // The mismatched document was not stored under the hash.
    expect(codes((await post(t, key, { extensions: persistedQuery(VIEWER_HASH) })).body)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);

    for (const extensions of [
      { persistedQuery: { version: 2, sha256Hash: VIEWER_HASH } },
      { persistedQuery: 'abc' },
      { persistedQuery: { version: 1, sha256Hash: 'not-hex' } },
      { persistedQuery: { version: 1, sha256Hash: VIEWER_HASH.toUpperCase() } },
      { persistedQuery: { version: 1 } },
    ]) {
      const reply = await post(t, key, { extensions });
      expect(reply.status, JSON.stringify(extensions)).toBe(400);
      expect(['BAD_USER_INPUT', 'PERSISTED_QUERY_NOT_SUPPORTED']).toContain(codes(reply.body)![0]);
      expect(reply.body.data).toBeUndefined();
    }
  });

  it('remembers a document only once it validated and its caller authenticated', async () => {
    const invalid = `query Invalid { viewer { nope } }`;
    expect(codes((await post(t, key, { query: invalid, extensions: persistedQuery(sha256(invalid)) })).body)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    expect(codes((await post(t, key, { extensions: persistedQuery(sha256(invalid)) })).body)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);

    const anonymous = `query Anonymous { viewer { id } }`;
    const refused = await post(t, 'pk_live_wrong_wrong_wrong_wrong', { query: anonymous, extensions: persistedQuery(sha256(anonymous)) });
    expect(refused.status).toBe(401);
    expect(codes((await post(t, key, { extensions: persistedQuery(sha256(anonymous)) })).body)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
  });

  it('still applies the query limits to a document found by hash', async () => {
    const deep = `query Deep { viewer { conversations(first: 1) { edges { node { messages(first: 1) { edges { node { conversation { messages(first: 1) { edges { node { conversation { id } } } } } } } } } } } } }`;
    const first = await post(t, key, { query: deep, extensions: persistedQuery(sha256(deep)) });
    expect(first.body.errors).toBeDefined();
    expect((await post(t, key, { extensions: persistedQuery(sha256(deep)) })).body.errors[0].extensions.code).toBe('PERSISTED_QUERY_NOT_FOUND');
  });

  it('works over GET, with the hash in the URL', async () => {
    await post(t, key, { query: VIEWER, extensions: persistedQuery(VIEWER_HASH) });
    const reply = await get(t, key, { extensions: persistedQuery(VIEWER_HASH), operationName: 'Viewer' });
    expect(reply.status).toBe(200);
    expect(reply.body.data.viewer.name).toBe('APQ');
  });

  it('works over graphql-ws, for queries and subscriptions alike', async () => {
    const client = liveClient(ws, { connectionParams: { productKey: key } }).client;
    const query = `query OverSocket { viewer { name } }`;
    const hash = sha256(query);
    expect(codes(await overSocket(client, { query: '', extensions: persistedQuery(hash) }))).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    expect(await overSocket(client, { query, extensions: persistedQuery(hash) })).toMatchObject({ data: { viewer: { name: 'APQ' } } });
    expect(await overSocket(client, { query: '', extensions: persistedQuery(hash) })).toMatchObject({ data: { viewer: { name: 'APQ' } } });
  });

  it('can be turned off (PARLEY_APQ=false): a hash alone is PERSISTED_QUERY_NOT_SUPPORTED', async () => {
    const off = await createTestApp(pglite, { PARLEY_APQ: 'false' }, { shared: t.database });
    try {
      const reply = await post(off, key, { query: VIEWER, extensions: persistedQuery(VIEWER_HASH) });
      expect(codes(reply.body)).toEqual(['PERSISTED_QUERY_NOT_SUPPORTED']);
      expect((await post(off, key, { query: VIEWER })).body.data.viewer.name).toBe('APQ');
    } finally {
      await off.dispose();
    }
  });
});

describe.skipIf(!redisUrl)('automatic persisted queries across nodes', () => {
  it('a document registered on one node is found by hash on another (through Redis), and not across prefixes', async () => {
    const prefix = uniquePrefix('apq');
    const a = await createTestApp(pglite, { REDIS_URL: redisUrl!, PARLEY_REDIS_PREFIX: prefix });
    const b = await createTestApp(pglite, { REDIS_URL: redisUrl!, PARLEY_REDIS_PREFIX: prefix }, { shared: a.database });
    const other = await createTestApp(pglite, { REDIS_URL: redisUrl!, PARLEY_REDIS_PREFIX: `${prefix}other:` }, { shared: a.database });
    try {
      const { key } = await a.product('Shared');
      const query = `query Shared${Date.now()} { viewer { name } }`;
      const hash = sha256(query);
      expect((await post(a, key, { query, extensions: persistedQuery(hash) })).body.data.viewer.name).toBe('Shared');
      // Registration is written after the response: allow it a moment to land.
      let found;
      for (let i = 0; i < 50; i += 1) {
        found = await post(b, key, { extensions: persistedQuery(hash) });
        if (!found.body.errors) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      expect(found!.body).toEqual({ data: { viewer: { name: 'Shared' } } });
      expect(codes((await post(other, key, { extensions: persistedQuery(hash) })).body)).toEqual(['PERSISTED_QUERY_NOT_FOUND']);
    } finally {
      await other.dispose();
      await b.dispose();
      await a.dispose();
    }
  });
});

describe('persisted-only mode (PARLEY_PERSISTED_ONLY)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-persisted-'));
  const manifest = join(dir, 'operations.json');
  const SUBSCRIBE = `subscription Feedback { productFeedback { id rating } }`;
  let t: TestApp;
  let key: string;
  let ws: string;

  beforeAll(async () => {
    writeFileSync(manifest, JSON.stringify({ [VIEWER_HASH]: VIEWER, [sha256(ADD)]: ADD, [sha256(SUBSCRIBE)]: SUBSCRIBE }));
    t = await createTestApp(pglite, { PARLEY_PERSISTED_ONLY: 'true', PARLEY_PERSISTED_OPERATIONS: manifest });
    key = (await t.product('Locked')).key;
    ws = `ws://127.0.0.1:${(await t.app.start(0, '127.0.0.1')).port}/graphql`;
  });
  afterEach(() => disposeClients());
  afterAll(async () => {
    await t?.dispose();
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs listed operations by hash or by their exact text', async () => {
    expect((await post(t, key, { extensions: persistedQuery(sha256(ADD)), variables: { t: 'Listed' } })).body.data.addKnowledge.id).toBeTruthy();
    const byHash = await post(t, key, { extensions: persistedQuery(VIEWER_HASH) });
    expect(byHash.body.data.viewer).toEqual({ name: 'Locked', knowledge: { edges: [{ node: { title: 'Listed' } }] } });
    expect((await post(t, key, { query: VIEWER })).body.data.viewer.name).toBe('Locked');
  });

  it('refuses everything else, APQ registration included, before it runs', async () => {
    const other = `{ viewer { id } }`;
    for (const body of [
      { query: other },
      { query: `${VIEWER} ` },
      { query: other, extensions: persistedQuery(sha256(other)) },
      { extensions: persistedQuery(sha256(other)) },
      { query: `mutation { addKnowledge(input: { title: "sneaky", content: "x" }) { id } }` },
    ]) {
      const reply = await post(t, key, body);
      expect(reply.status, JSON.stringify(body)).toBe(400);
      expect(codes(reply.body)).toEqual(['PERSISTED_QUERY_NOT_ALLOWED']);
    }
    const knowledge = await t.prisma.knowledgeEntry.findMany({ where: { title: 'sneaky' } });
    expect(knowledge).toEqual([]);
    // Refused before authentication too: nothing to learn about keys from an unlisted document.
    expect(codes((await post(t, undefined, { query: other })).body)).toEqual(['PERSISTED_QUERY_NOT_ALLOWED']);
  });

  it('applies to WebSocket operations too', async () => {
    const client = liveClient(ws, { connectionParams: { productKey: key } }).client;
    expect(codes(await overSocket(client, { query: `{ viewer { id } }` }))).toEqual(['PERSISTED_QUERY_NOT_ALLOWED']);
    expect(codes(await overSocket(client, { query: `subscription { productFeedback { id } }` }))).toEqual(['PERSISTED_QUERY_NOT_ALLOWED']);
    expect((await overSocket(client, { query: '', extensions: persistedQuery(VIEWER_HASH) })).data.viewer.name).toBe('Locked');
  });

  it('refuses to start on an allow-list that is not the sha256 of its documents, or does not validate', async () => {
    const start = (contents: unknown) => {
      const file = join(dir, `bad-${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(file, typeof contents === 'string' ? contents : JSON.stringify(contents));
      const config = loadConfig({
        NODE_ENV: 'test',
        PARLEY_DATA_DIR: dir,
        PARLEY_ADMIN_TOKEN: TEST_ADMIN_TOKEN,
        PARLEY_DEMO: 'false',
        PARLEY_LOG_LEVEL: 'silent',
        PARLEY_PERSISTED_ONLY: 'true',
        PARLEY_PERSISTED_OPERATIONS: file,
      });
      return buildApp(config, { db: t.database.db });
    };
    await expect(start({ [sha256('{ a }')]: VIEWER })).rejects.toThrow(/not the sha256 of its document/);
    await expect(start({ [sha256('{ viewer { nope } }')]: '{ viewer { nope } }' })).rejects.toThrow(/not valid against the schema/);
    await expect(start({ [sha256('{ viewer ')]: '{ viewer ' })).rejects.toThrow(/does not parse/);
    await expect(start('not json')).rejects.toThrow(/cannot read/);
    await expect(start({})).rejects.toThrow(/holds no operations/);
    // An array of documents is accepted as well (hashed here).
    const app = await start([VIEWER]);
    await app.stop();
  });
});

describe('GET results cached by the client', () => {
  let t: TestApp;
  let key: string;

  beforeAll(async () => {
    t = await createTestApp(pglite, { PARLEY_GET_MAX_AGE_S: '5' });
    key = (await t.product('Cached')).key;
  });
  afterAll(() => t?.dispose());

  it('sends Cache-Control private with max-age, Vary on credentials and an ETag; 304 while the result is unchanged', async () => {
    const first = await get(t, key, { query: VIEWER });
    expect(first.status).toBe(200);
    expect(first.headers.get('cache-control')).toBe('private, max-age=5');
    expect(first.headers.get('vary')).toMatch(/authorization/);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^W\/"[A-Za-z0-9_-]+"$/);

    const again = await get(t, key, { query: VIEWER }, { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(again.body).toBeNull();
    expect(again.headers.get('etag')).toBe(etag);
    // Any of several tags, weak or strong, matches (RFC 9110).
    expect((await get(t, key, { query: VIEWER }, { 'if-none-match': `"x", ${etag.slice(2)}` })).status).toBe(304);

    await post(t, key, { query: ADD, variables: { t: 'Changed' } });
    const changed = await get(t, key, { query: VIEWER }, { 'if-none-match': etag });
    expect(changed.status).toBe(200);
    expect(changed.body.data.viewer.knowledge.edges).toEqual([{ node: { title: 'Changed' } }]);
    expect(changed.headers.get('etag')).not.toBe(etag);
  });

  it('labels GET results application/json over real HTTP, with the response cache on and off', async () => {
    const off = await createTestApp(pglite, { PARLEY_RESPONSE_CACHE: 'false' });
    try {
      for (const app of [t, off]) {
        const url = (await app.app.start(0, '127.0.0.1')).url.replace('localhost', '127.0.0.1');
        const productKey = app === t ? key : (await app.product('Off')).key;
        for (const query of [VIEWER, `{ viewer { id } }`]) {
          for (let i = 0; i < 2; i++) {
            const response = await fetch(`${url}?query=${encodeURIComponent(query)}`, { headers: { authorization: `Bearer ${productKey}` } });
            expect(response.status).toBe(200);
            expect(response.headers.get('content-type')).toBe('application/json; charset=utf-8');
            expect(response.headers.get('etag')).toMatch(/^W\//);
          }
        }
        const strict = await fetch(`${url}?query=${encodeURIComponent(VIEWER)}`, {
          headers: { authorization: `Bearer ${productKey}`, accept: 'application/graphql-response+json' },
        });
        expect(strict.headers.get('content-type')).toBe('application/graphql-response+json; charset=utf-8');
      }
    } finally {
      await off.dispose();
    }
  });

  it('never lets results with errors, POST results or mutations over GET be cached', async () => {
    const failed = await get(t, key, { query: `{ viewer { nope } }` });
    expect(failed.headers.get('cache-control')).toBe('no-store');
    expect(failed.headers.get('etag')).toBeNull();

    const partial = await get(t, key, { query: `{ node(id: "bm90LWEtaWQ=") { id } viewer { name } }` });
    expect(partial.body.errors).toBeDefined();
    expect(partial.headers.get('cache-control')).toBe('no-store');

    expect((await post(t, key, { query: VIEWER })).headers.get('cache-control')).toBe('no-store');

    const mutation = await get(t, key, { query: ADD, variables: { t: 'via GET' } });
    expect(mutation.status).toBe(405);
    expect(await t.prisma.knowledgeEntry.count({ where: { title: 'via GET' } })).toBe(0);
  });

  it("ETags differ per product: one product never revalidates into another one's result", async () => {
    const other = (await t.product('Other')).key;
    const mine = await get(t, key, { query: `{ viewer { id } }` });
    const theirs = await get(t, other, { query: `{ viewer { id } }` }, { 'if-none-match': mine.headers.get('etag')! });
    expect(theirs.status).toBe(200);
    expect(theirs.body.data.viewer.id).not.toBe(mine.body.data.viewer.id);
  });
});
