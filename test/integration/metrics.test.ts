import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../../src/infra/metrics.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { disposeClients, eventually, liveClient, openSse, subscribe, CONVERSATION_EVENTS } from '../helpers/live.js';
import { sample } from '../helpers/metrics.js';
import { seedConversations, gid } from '../helpers/fixtures.js';

/**
 * GET /metrics in Prometheus' text format: per-operation duration, SQL
 * statements and SQL time, errors by code; cache counters; graphql-ws
 * connections; subscriptions per transport; events published and delivered.
 * Metrics do not depend on the database: the embedded one is enough.
 */

const NESTED = `query NestedRead { conversations(first: 5) { edges { node { id messages(first: 5) { edges { node { id feedback { rating } } } } } } } }`;
const START = `mutation Start { startConversation(input: { sessionId: "metrics" }) { id } }`;
// One event, and only one: a sendMessage also brings the assistant's reply and its events.
const TYPING = `mutation Typing($c: ID!) { setTyping(input: { conversationId: $c, isTyping: true }) }`;

describe('GET /metrics', () => {
  const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
  let t: TestApp;
  let key: string;
  let port: number;
  const scrape = async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    return res.text();
  };

  beforeAll(async () => {
    t = await createTestApp(pglite);
    const product = await t.product('Metrics');
    key = product.key;
    await seedConversations(t.prisma, product.id, { conversations: 2, messages: 4 });
    port = (await t.app.start(0, '127.0.0.1')).port;
  });
  afterEach(disposeClients);
  afterAll(() => t?.dispose());

  it('has a duration histogram, SQL statements and SQL time per operation', async () => {
    const first = await t.gql(NESTED, { key });
    expect(first.errors).toBeUndefined();
    const second = await t.gql(NESTED, { key });
    const text = await scrape();
    const labels = { operation: 'NestedRead', type: 'query' };
    expect(sample(text, 'parley_graphql_operation_duration_seconds_count', labels)).toBe(2);
    // Buckets make p50/p95/p99 derivable (histogram_quantile): the +Inf bucket holds every sample.
    expect(sample(text, 'parley_graphql_operation_duration_seconds_bucket', { ...labels, le: '+Inf' })).toBe(2);
    expect(sample(text, 'parley_graphql_operation_duration_seconds_sum', labels)).toBeGreaterThan(0);
    // Exactly the statements the requests really sent (the first read the rows, the second may hit the cache).
    expect(first.sql.length).toBeGreaterThan(0);
    expect(sample(text, 'parley_graphql_operation_sql_statements_count', labels)).toBe(2);
    expect(sample(text, 'parley_graphql_operation_sql_statements_sum', labels)).toBe(first.sql.length + second.sql.length);
    const after = text;
    expect(sample(after, 'parley_graphql_operation_sql_seconds_count', labels)).toBe(2);
    expect(sample(after, 'parley_graphql_operation_sql_seconds_sum', labels)).toBeGreaterThan(0);
  });

  it('counts operations whose result has errors by code, anonymous ones as "anonymous"', async () => {
    await t.gql(`{ conversation(id: "${gid('Conversation', '00000000-0000-7000-8000-000000000000')}") { id } }`, { key });
    await t.gql(`mutation { startConversation(input: { sessionId: "" }) { id } }`, { key });
    const text = await scrape();
    expect(sample(text, 'parley_graphql_operation_duration_seconds_count', { operation: 'anonymous', type: 'query' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'parley_graphql_operation_errors_total', { operation: 'anonymous', type: 'mutation', code: 'BAD_USER_INPUT' })).toBe(1);
  });

  it('includes the cache counters and Node process metrics', async () => {
    await t.gql('{ viewer { name } }', { key });
    const text = await scrape();
    expect(text).toContain('# TYPE parley_cache_hits_total counter');
    expect(sample(text, 'parley_cache_hits_total', { cache: 'productByKey', layer: 'L1' })).toBeGreaterThan(0);
    expect(text).toContain('nodejs_eventloop_lag_seconds');
  });

  it('counts graphql-ws connections, subscriptions per transport, events published and delivered', async () => {
    const conversationId = (await t.gql(START, { key })).data.startConversation.id as string;
    const { client } = liveClient(`ws://127.0.0.1:${port}/graphql`, { connectionParams: { productKey: key }, lazy: false });
    const events = subscribe(client, CONVERSATION_EVENTS, { id: conversationId });
    const sse = await openSse(port, { authorization: `Bearer ${key}` }, { query: CONVERSATION_EVENTS, variables: { id: conversationId } });
    expect(sse.status).toBe(200);
    await eventually(async () => {
      const text = await scrape();
      return (
        sample(text, 'parley_graphql_ws_connections') === 1 &&
        sample(text, 'parley_subscriptions_active', { transport: 'ws' }) === 1 &&
        sample(text, 'parley_subscriptions_active', { transport: 'sse' }) === 1
      );
    }, 'one ws connection, one ws and one SSE subscription');

    const before = await scrape();
    const published = (text: string) => sample(text, 'parley_events_published_total', { topic: 'conversation', type: 'typingChanged' }) ?? 0;
    const delivered = (text: string) => sample(text, 'parley_events_delivered_total', { subscription: 'conversationEvents' }) ?? 0;
    expect((await t.gql(TYPING, { key, variables: { c: conversationId } })).data.setTyping).toBe(true);
    await events.next(1);
    await sse.next();
    const after = await eventually(async () => {
      const text = await scrape();
      return delivered(text) - delivered(before) === 2 ? text : undefined;
    }, 'two deliveries counted');
    expect(published(after) - published(before)).toBe(1);

    sse.close();
    await disposeClients();
    await eventually(async () => {
      const text = await scrape();
      return (
        sample(text, 'parley_graphql_ws_connections') === 0 &&
        sample(text, 'parley_subscriptions_active', { transport: 'ws' }) === 0 &&
        sample(text, 'parley_subscriptions_active', { transport: 'sse' }) === 0
      );
    }, 'connections and subscriptions back to 0');
  });

  it('measures operations over graphql-ws, with their SQL', async () => {
    const { client } = liveClient(`ws://127.0.0.1:${port}/graphql`, { connectionParams: { productKey: key } });
    const result = subscribe(client, 'query OverSocket { viewer { stats { conversationCount } } }');
    await result.next(1);
    const text = await scrape();
    expect(sample(text, 'parley_graphql_operation_duration_seconds_count', { operation: 'OverSocket', type: 'query' })).toBe(1);
    expect(sample(text, 'parley_graphql_operation_sql_statements_count', { operation: 'OverSocket', type: 'query' })).toBe(1);
  });

  it('answers GET and HEAD only (issue 13: DELETE /metrics was a 200)', async () => {
    for (const method of ['DELETE', 'POST', 'PUT']) {
      const res = await fetch(`http://127.0.0.1:${port}/metrics`, { method });
      expect(res.status).toBe(405);
      expect(res.headers.get('allow')).toBe('GET, HEAD');
    }
    const head = await fetch(`http://127.0.0.1:${port}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
  });

  it('needs the bearer token when PARLEY_METRICS_TOKEN is set', async () => {
    const token = 'metrics-token-0123456789';
    const guarded = await createTestApp(pglite, { PARLEY_METRICS_TOKEN: token }, { shared: t.database });
    try {
      const url = `http://127.0.0.1:${(await guarded.app.start(0, '127.0.0.1')).port}/metrics`;
      const none = await fetch(url);
      expect(none.status).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Bearer/);
      expect(await none.text()).not.toContain('parley_');
      expect((await fetch(url, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
      expect((await fetch(url, { headers: { authorization: `Basic ${token}` } })).status).toBe(401);
      const right = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
      expect(right.status).toBe(200);
      expect(await right.text()).toContain('parley_graphql_operation_duration_seconds');
    } finally {
      await guarded.dispose();
    }
  });

  it('is not served with PARLEY_METRICS=false', async () => {
    const off = await createTestApp(pglite, { PARLEY_METRICS: 'false' }, { shared: t.database });
    try {
      const started = await off.app.start(0, '127.0.0.1');
      expect((await fetch(`http://127.0.0.1:${started.port}/metrics`)).status).toBe(404);
      expect(off.app.deps.metrics).toBeUndefined();
      expect((await off.gql('{ viewer { name } }', { key })).data.viewer.name).toBe('Metrics');
    } finally {
      await off.dispose();
    }
  });
});

describe('createMetrics', () => {
  it('caps the operation names it keeps as labels (client-chosen names cannot grow the series)', async () => {
    const metrics = createMetrics({ maxOperationNames: 2, processMetrics: false });
    for (const operation of ['A', 'B', 'C', 'D', 'A']) metrics.operation({ operation, type: 'query', durationMs: 1, sqlStatements: 0, sqlMs: 0 });
    const text = await metrics.text();
    expect(sample(text, 'parley_graphql_operation_duration_seconds_count', { operation: 'A' })).toBe(2);
    expect(sample(text, 'parley_graphql_operation_duration_seconds_count', { operation: 'B' })).toBe(1);
    expect(sample(text, 'parley_graphql_operation_duration_seconds_count', { operation: 'other' })).toBe(2);
    expect(text).not.toContain('operation="C"');
  });

  it('has a hook for the answers engine: answers per model and their latency', async () => {
    const metrics = createMetrics({ processMetrics: false });
    metrics.answer({ model: 'echo', latencyMs: 120, cached: false });
    metrics.answer({ model: 'echo', latencyMs: 2, cached: true });
    const text = await metrics.text();
    expect(sample(text, 'parley_answers_total', { model: 'echo', cached: 'false', outcome: 'ok' })).toBe(1);
    expect(sample(text, 'parley_answers_total', { model: 'echo', cached: 'true', outcome: 'ok' })).toBe(1);
    expect(sample(text, 'parley_answer_latency_seconds_count', { model: 'echo', cached: 'false' })).toBe(1);
  });
});
