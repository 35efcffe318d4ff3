import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { databaseVariants, describeEachDatabase } from '../helpers/db.js';
import { gid, seedConversations } from '../helpers/fixtures.js';

// Whole responses cached per product, document and variables: a hit runs no
// SQL and no execution, answers the same bytes with an ETag (a GET revalidating
// gets a 304), and any write to what the response shows makes it miss.

const NESTED = `query Nested($n: Int!) { conversations(first: $n) { edges { node { id title messageCount lastMessage { content } messages(first: 5) { edges { node { id role content feedback { rating } } } } } } } }`;
const VIEWER = `{ viewer { name stats { conversationCount messageCount feedbackUp feedbackDown } knowledge(first: 5) { edges { node { title } } } } }`;
const WIDGET = `query Widget($id: ID!) { conversation(id: $id) { id messages(last: 3) { edges { node { content } } } } }`;

type Stat = { cache: string; layer: string; hits: number; misses: number; sets: number; skipped: number };

async function responseStats(t: TestApp): Promise<{ l1: Stat | undefined; l2: Stat | undefined }> {
  const { data } = await t.gql(`{ cacheStats { cache layer hits misses sets skipped } }`, { admin: true });
  const rows = (data.cacheStats as Stat[]).filter((s) => s.cache === 'response');
  return { l1: rows.find((s) => s.layer === 'L1'), l2: rows.find((s) => s.layer === 'L2') };
}

describeEachDatabase('response cache', (variant) => {
  let t: TestApp;
  let a: { id: string; key: string };
  let b: { id: string; key: string };
  let conversations: { id: string }[];

  beforeAll(async () => {
    // Every response stored from its first request: what these tests look at (admission is tested below).
    t = await createTestApp(variant, { PARLEY_WARM_PRODUCTS: '0', PARLEY_RESPONSE_CACHE_ADMIT_AFTER: '1' });
    a = await t.product('A');
    b = await t.product('B');
    conversations = await seedConversations(t.prisma, a.id, { conversations: 3, messages: 4, feedbackEvery: 2 });
    await seedConversations(t.prisma, b.id, { conversations: 1, messages: 2 });
  });
  afterAll(() => t?.dispose());

  it('answers a repeated query from the cache: same bytes, no SQL, counted as a hit', async () => {
    const first = await t.gql(NESTED, { key: a.key, variables: { n: 3 } });
    expect(first.errors).toBeUndefined();
    expect(first.sql.length).toBeGreaterThan(0);
    const before = await responseStats(t);
    const again = await t.gql(NESTED, { key: a.key, variables: { n: 3 } });
    expect(again.data).toEqual(first.data);
    expect(again.sql).toEqual([]);
    const after = await responseStats(t);
    expect(after.l1!.hits - before.l1!.hits).toBe(1);
  });

  it('keys entries by variables and never shares them across products', async () => {
    const two = await t.gql(NESTED, { key: a.key, variables: { n: 2 } });
    expect(two.sql.length).toBeGreaterThan(0);
    expect(two.data.conversations.edges).toHaveLength(2);
    const other = await t.gql(NESTED, { key: b.key, variables: { n: 3 } });
    expect(other.data.conversations.edges).toHaveLength(1);
    const fromA = await t.gql(NESTED, { key: a.key, variables: { n: 3 } });
    expect(fromA.data.conversations.edges).toHaveLength(3);
  });

  it('misses after a write to what the response shows: message, feedback, knowledge, rename', async () => {
    const conversationId = gid('Conversation', conversations[0]!.id);
    await t.gql(WIDGET, { key: a.key, variables: { id: conversationId } });
    const sent = await t.gql(`mutation($id: ID!) { sendMessage(input: { conversationId: $id, content: "fresh question" }) { message { id } } }`, {
      key: a.key,
      variables: { id: conversationId },
    });
    expect(sent.errors).toBeUndefined();
    const widget = await t.gql(WIDGET, { key: a.key, variables: { id: conversationId } });
    expect(widget.data.conversation.messages.edges.map((e: any) => e.node.content)).toContain('fresh question');

    const viewer = await t.gql(VIEWER, { key: a.key });
    await t.gql(`mutation { addKnowledge(input: { title: "Opening hours", content: "nine to five" }) { id } }`, { key: a.key });
    const withEntry = await t.gql(VIEWER, { key: a.key });
    expect(withEntry.data.viewer.knowledge.edges.map((e: any) => e.node.title)).toContain('Opening hours');
    expect(withEntry.data).not.toEqual(viewer.data);

    const page = await t.gql(NESTED, { key: a.key, variables: { n: 3 } });
    const unrated = page.data.conversations.edges
      .flatMap((e: any) => e.node.messages.edges.map((m: any) => m.node))
      .find((m: any) => m.role === 'ASSISTANT' && m.feedback === null);
    expect(unrated).toBeDefined();
    await t.gql(`mutation($id: ID!) { submitFeedback(input: { messageId: $id, rating: UP }) { id } }`, { key: a.key, variables: { id: unrated.id } });
    const rated = await t.gql(NESTED, { key: a.key, variables: { n: 3 } });
    const same = rated.data.conversations.edges
      .flatMap((e: any) => e.node.messages.edges.map((m: any) => m.node))
      .find((m: any) => m.id === unrated.id);
    expect(same.feedback).toEqual({ rating: 'UP' });
  });

  it('never caches mutations, admin requests or results with errors', async () => {
    const before = await responseStats(t);
    const broken = `{ conversation(id: "not-a-global-id") { id } }`;
    const first = await t.gql(broken, { key: a.key });
    expect(first.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const again = await t.gql(broken, { key: a.key });
    expect(again.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    await t.gql(`{ products(first: 1) { edges { node { id } } } }`, { admin: true });
    await t.gql(`{ products(first: 1) { edges { node { id } } } }`, { admin: true });
    const after = await responseStats(t);
    expect(after.l1!.sets).toBe(before.l1!.sets);
    expect(after.l1!.hits).toBe(before.l1!.hits);
  });

  it('a rotated key is refused even for a response cached under it', async () => {
    const c = await t.product('C');
    await t.gql(VIEWER, { key: c.key });
    expect((await t.gql(VIEWER, { key: c.key })).sql).toEqual([]);
    const rotated = await t.gql(`mutation($id: ID!) { rotateProductKey(id: $id) { key } }`, { admin: true, variables: { id: gid('Product', c.id) } });
    expect(rotated.errors).toBeUndefined();
    const old = await t.gql(VIEWER, { key: c.key });
    expect(old.status).toBe(401);
    expect(old.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    const fresh = await t.gql(VIEWER, { key: rotated.data.rotateProductKey.key });
    expect(fresh.data.viewer.name).toBe('C');
  });

  it('a GET revalidating with the ETag gets a 304 without any execution', async () => {
    const url = `http://parley.test/graphql?query=${encodeURIComponent(VIEWER)}`;
    const headers = { authorization: `Bearer ${b.key}`, accept: 'application/json' };
    const first = await t.app.yoga.fetch(url, { headers });
    expect(first.status).toBe(200);
    const etag = first.headers.get('etag');
    expect(etag).toMatch(/^W\/"/);
    const body = await first.text();
    const hit = await t.app.yoga.fetch(url, { headers });
    expect(hit.headers.get('etag')).toBe(etag);
    expect(await hit.text()).toBe(body);
    const before = await responseStats(t);
    const revalidated = await t.app.yoga.fetch(url, { headers: { ...headers, 'if-none-match': etag! } });
    expect(revalidated.status).toBe(304);
    expect(await revalidated.text()).toBe('');
    const after = await responseStats(t);
    expect(after.l1!.hits - before.l1!.hits).toBe(1);
  });

  it('serves a cached response compressed, and the same bytes once decoded', async () => {
    const headers = { authorization: `Bearer ${a.key}`, 'content-type': 'application/json', 'accept-encoding': 'gzip' };
    const body = JSON.stringify({ query: NESTED, variables: { n: 3 } });
    const plain = await t.gql(NESTED, { key: a.key, variables: { n: 3 } });
    for (let i = 0; i < 2; i++) {
      const response = await t.app.yoga.fetch('http://parley.test/graphql', { method: 'POST', headers, body });
      expect(response.headers.get('content-encoding')).toBe('gzip');
      const { gunzipSync } = await import('node:zlib');
      expect(JSON.parse(gunzipSync(Buffer.from(await response.arrayBuffer())).toString()).data).toEqual(plain.data);
    }
  });

  describe('early lookup, before Yoga parses the request (real HTTP)', () => {
    let url: string;
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json', ...headers },
        body: JSON.stringify(body),
      });
    beforeAll(async () => {
      url = (await t.app.start(0, '127.0.0.1')).url.replace('localhost', '127.0.0.1');
    });

    it('answers a hit with the bytes and headers of the response that filled it', async () => {
      const body = { query: NESTED, variables: { n: 2 }, operationName: 'Nested' };
      const filled = await post(body, { 'x-request-id': 'fill-1' });
      const filledText = await filled.text();
      const before = await responseStats(t);
      const hit = await post(body, { 'x-request-id': 'hit-1' });
      expect(await hit.text()).toBe(filledText);
      expect((await responseStats(t)).l1!.hits - before.l1!.hits).toBe(1);
      expect(hit.status).toBe(200);
      for (const name of ['content-type', 'etag', 'cache-control', 'content-length']) expect(hit.headers.get(name)).toBe(filled.headers.get(name));
      expect(hit.headers.get('x-request-id')).toBe('hit-1');
      expect(hit.headers.get('cache-control')).toBe('no-store');
    });

    const served = async () => {
      const text = await (await fetch(url.replace('/graphql', '/metrics'))).text();
      const count = (by: string) => Number(new RegExp(`parley_response_cache_served_total\\{by="${by}"\\} (\\d+)`).exec(text)?.[1] ?? 0);
      return { server: count('server'), yoga: count('yoga') };
    };

    it("answers a hit before Yoga with the headers Yoga's plugins write on one (POST, GET, GET revalidated)", async () => {
      const viaYoga = (init: RequestInit, path = '/graphql') => t.app.yoga.fetch(`http://parley.test${path}`, init);
      const shown = (response: Response) =>
        Object.fromEntries([...response.headers].filter(([name]) => !['date', 'connection', 'keep-alive', 'x-request-id'].includes(name)));
      const body = JSON.stringify({ query: VIEWER });
      const postInit = {
        method: 'POST',
        headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json', 'content-length': String(body.length) },
        body,
      };
      await post({ query: VIEWER });
      const before = { stats: await responseStats(t), served: await served() };
      const [front, yoga] = [await fetch(url, postInit), await viaYoga(postInit)];
      expect(shown(front)).toEqual(shown(yoga));
      expect(await front.text()).toBe(await yoga.text());
      expect((await responseStats(t)).l1!.hits - before.stats.l1!.hits).toBe(2);
      const after = await served();
      expect([after.server - before.served.server, after.yoga - before.served.yoga]).toEqual([1, 1]);

      const search = `?query=${encodeURIComponent(VIEWER)}`;
      const getInit = { headers: { 'x-product-key': a.key } };
      const [frontGet, yogaGet] = [await fetch(url + search, getInit), await viaYoga(getInit, `/graphql${search}`)];
      expect(shown(frontGet)).toEqual(shown(yogaGet));
      expect(frontGet.headers.get('etag')).toMatch(/^W\//);
      const revalidate = { headers: { 'x-product-key': a.key, 'if-none-match': frontGet.headers.get('etag')! } };
      const [front304, yoga304] = [await fetch(url + search, revalidate), await viaYoga(revalidate, `/graphql${search}`)];
      expect([front304.status, yoga304.status]).toEqual([304, 304]);
      expect(shown(front304)).toEqual(shown(yoga304));
    });

    it('hands Yoga what it did not answer, with the body it read: misses, compressed hits, mutations, wrong keys', async () => {
      const count = async () => (await responseStats(t)).l1!;
      const before = await count();
      // A miss (new variables) executes from the body the server already read, and stores under its lookup.
      const miss = await post({ query: NESTED, variables: { n: 1 }, operationName: 'Nested' });
      expect(((await miss.json()) as any).data.conversations.edges).toHaveLength(1);
      const hit = await post({ query: NESTED, variables: { n: 1 }, operationName: 'Nested' });
      expect(((await hit.json()) as any).data.conversations.edges).toHaveLength(1);
      const after = await count();
      expect([after.misses - before.misses, after.hits - before.hits]).toEqual([1, 1]);
      // A hit the client takes compressed is answered by Yoga (its compression plugin keeps the compressed copies).
      const servedBefore = await served();
      const big = await post({ query: NESTED, variables: { n: 1 }, operationName: 'Nested' }, { 'accept-encoding': 'gzip' });
      expect(big.status).toBe(200);
      expect(big.headers.get('content-encoding')).toBe('gzip');
      expect((await served()).yoga - servedBefore.yoga).toBe(1);
      expect(((await big.json()) as any).data.conversations.edges).toHaveLength(1);
      // A mutation is not looked up, and runs once.
      const started = await post({ query: 'mutation { startConversation(input: { sessionId: "front" }) { id } }' });
      expect(((await started.json()) as any).data.startConversation.id).toBeTruthy();
      const wrong = await post({ query: VIEWER }, { authorization: 'Bearer sk_wrong' });
      expect(wrong.status).toBe(401);
      expect(wrong.headers.get('x-request-id')).toBeTruthy();
      const named = await post({ query: VIEWER }, { 'x-request-id': 'kept-1' });
      expect(named.headers.get('x-request-id')).toBe('kept-1');
    });

    it('answers in the media type the client asked for, and leaves streams to Yoga', async () => {
      const body = { query: VIEWER };
      await post(body);
      const strict = await post(body, { accept: 'application/graphql-response+json' });
      expect(strict.headers.get('content-type')).toBe('application/graphql-response+json; charset=utf-8');
      const either = await post(body, { accept: 'application/graphql-response+json, application/json;q=0.9' });
      expect(either.headers.get('content-type')).toBe('application/graphql-response+json; charset=utf-8');
      const sse = await post(body, { accept: 'text/event-stream' });
      expect(sse.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(await sse.text()).toContain('"viewer"');
    });

    it('leaves client mistakes to Yoga: unknown parameters, broken JSON, wrong keys', async () => {
      await post({ query: VIEWER });
      const extra = await post({ query: VIEWER, unexpected: 1 });
      expect(extra.status).toBe(400);
      const broken = await fetch(url, {
        method: 'POST',
        headers: { authorization: `Bearer ${a.key}`, 'content-type': 'application/json' },
        body: '{"query": ',
      });
      expect(broken.status).toBe(400);
      const wrongKey = await post({ query: VIEWER }, { authorization: 'Bearer pk_wrong' });
      expect(wrongKey.status).toBe(401);
      expect(((await wrongKey.json()) as any).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    });

    it('a GET hit keeps the CSRF rule: no credential header, no answer from the cache', async () => {
      const get = `${url}?query=${encodeURIComponent(VIEWER)}`;
      const withKey = await fetch(get, { headers: { 'x-product-key': a.key } });
      expect(withKey.status).toBe(200);
      const again = await fetch(get, { headers: { 'x-product-key': a.key } });
      expect(await again.text()).toContain('"viewer"');
      const anonymous = await fetch(get);
      expect(anonymous.status).toBe(403);
    });
  });
});

describeEachDatabase('response cache off (PARLEY_RESPONSE_CACHE=false)', (variant) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await createTestApp(variant, { PARLEY_WARM_PRODUCTS: '0', PARLEY_RESPONSE_CACHE: 'false' });
  });
  afterAll(() => t?.dispose());

  it('executes every query and shows no response cache', async () => {
    const a = await t.product('A');
    await t.gql(VIEWER, { key: a.key });
    await t.gql(VIEWER, { key: a.key });
    const { data } = await t.gql(`{ cacheStats { cache } }`, { admin: true });
    expect(data.cacheStats.map((s: { cache: string }) => s.cache)).not.toContain('response');
  });
});

const postgresUrl = inject('postgresUrl');
const redisUrl = inject('redisUrl');

describe.skipIf(!postgresUrl || !redisUrl)('response cache across two nodes on one Redis', () => {
  let nodeA: TestApp;
  let nodeB: TestApp;
  let product: { id: string; key: string };

  beforeAll(async () => {
    const env = {
      REDIS_URL: redisUrl,
      PARLEY_REDIS_PREFIX: `rc${randomBytes(4).toString('hex')}:`,
      PARLEY_WARM_PRODUCTS: '0',
      PARLEY_RESPONSE_CACHE_ADMIT_AFTER: '1',
    };
    const postgres = databaseVariants().find((v) => v.name === 'postgres')!;
    nodeA = await createTestApp(postgres, env);
    nodeB = await createTestApp(postgres, env, { shared: nodeA.database });
    product = await nodeA.product('Shared');
    await seedConversations(nodeA.prisma, product.id, { conversations: 2, messages: 2 });
  });
  afterAll(async () => {
    await nodeB?.dispose();
    await nodeA?.dispose();
  });

  it("serves node A's stored response on node B from Redis, and misses on B right after a write on A", async () => {
    const first = await nodeA.gql(NESTED, { key: product.key, variables: { n: 5 } });
    await new Promise((resolve) => setTimeout(resolve, 50)); // the L2 write is in the background
    const before = await responseStats(nodeB);
    const onB = await nodeB.gql(NESTED, { key: product.key, variables: { n: 5 } });
    expect(onB.data).toEqual(first.data);
    expect(onB.sql).toEqual([]);
    const after = await responseStats(nodeB);
    expect((after.l2?.hits ?? 0) - (before.l2?.hits ?? 0)).toBe(1);

    await nodeA.gql(`mutation { startConversation(input: { sessionId: "s", title: "Written on A" }) { id } }`, { key: product.key });
    const fresh = await nodeB.gql(NESTED, { key: product.key, variables: { n: 5 } });
    expect(fresh.data.conversations.edges.map((e: any) => e.node.title)).toContain('Written on A');
  });
});

describeEachDatabase('response cache admission (the default: stored when asked for again)', (variant) => {
  let t: TestApp;
  let key: string;

  beforeAll(async () => {
    t = await createTestApp(variant, { PARLEY_WARM_PRODUCTS: '0' });
    const product = await t.product('Admitted');
    key = product.key;
    await seedConversations(t.prisma, product.id, { conversations: 3, messages: 2 });
  });
  afterAll(() => t?.dispose());

  it('does not store a response asked for once, stores it on its second request, and serves the third', async () => {
    const none = { hits: 0, misses: 0, sets: 0, skipped: 0 } as Stat;
    const before = { l1: (await responseStats(t)).l1 ?? none };
    const once = await t.gql(NESTED, { key, variables: { n: 1 } });
    expect(once.errors).toBeUndefined();
    const first = await t.gql(NESTED, { key, variables: { n: 3 } });
    const afterFirst = await responseStats(t);
    expect(afterFirst.l1!.sets - before.l1!.sets).toBe(0);
    expect(afterFirst.l1!.skipped - before.l1!.skipped).toBe(2);

    const second = await t.gql(NESTED, { key, variables: { n: 3 } });
    expect(second.data).toEqual(first.data);
    // Not stored on its first request, so executed again (from the resolver caches); stored now.
    const afterSecond = await responseStats(t);
    expect(afterSecond.l1!.hits).toBe(afterFirst.l1!.hits);
    expect(afterSecond.l1!.sets - afterFirst.l1!.sets).toBe(1);

    const third = await t.gql(NESTED, { key, variables: { n: 3 } });
    expect(third.data).toEqual(first.data);
    expect(third.sql).toEqual([]);
    const afterThird = await responseStats(t);
    expect(afterThird.l1!.hits - afterSecond.l1!.hits).toBe(1);
    expect(afterThird.l1!.skipped).toBe(afterFirst.l1!.skipped);
  });

  it('counts the responses it did not store on /metrics', async () => {
    const { port } = await t.app.start(0, '127.0.0.1');
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(text).toMatch(/parley_cache_skipped_total\{cache="response",layer="L1"\} [1-9]/);
  });
});
