import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { startTracing, type Tracing } from '../../src/infra/tracing.js';
import { createTestApp, recordingLogger, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { startFakeLlm, type FakeLlm } from '../helpers/fake-llm.js';
import { eventually, uniquePrefix } from '../helpers/live.js';

/**
 * OpenTelemetry with the real SDK and real spans (an in-memory exporter in place of OTLP):
 * a traced request's operation, its SQL, its Redis commands and its provider call are spans
 * of the trace its `traceparent` names, and no key is ever an attribute.
 */

const redisUrl = inject('redisUrl');
const postgres = databaseVariants()[1]!;

describe.skipIf(!postgres.available || !redisUrl)('tracing [postgres + redis]', () => {
  const exporter = new InMemorySpanExporter();
  let tracing: Tracing | undefined;
  let fake: FakeLlm;
  let t: TestApp;
  let key: string;
  let productId: string;

  beforeAll(async () => {
    tracing = startTracing({ enabled: true, exporter, log: recordingLogger().log, version: 'test' });
    fake = await startFakeLlm();
    t = await createTestApp(postgres, {
      REDIS_URL: redisUrl,
      PARLEY_REDIS_PREFIX: uniquePrefix('tracing'),
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9',
      PARLEY_ANSWER_ENGINE: 'openai',
      PARLEY_LLM_BASE_URL: fake.url,
      PARLEY_LLM_API_KEY: 'sk-test-key',
    });
    ({ key, id: productId } = await t.product('Traced'));
  });
  afterAll(async () => {
    await t?.dispose();
    await fake?.dispose();
    await tracing?.shutdown();
  });

  const traced = async (query: string, variables: Record<string, unknown> = {}) => {
    const traceId = randomBytes(16).toString('hex');
    const result = await t.gql(query, { key, variables, headers: { traceparent: `00-${traceId}-${randomBytes(8).toString('hex')}-01` } });
    // SQL and Redis spans of the request end with it; a background release may come just after.
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { result, spans: exporter.getFinishedSpans().filter((s) => s.spanContext().traceId === traceId) };
  };
  const attributeValues = (spans: ReadableSpan[]) => spans.flatMap((s) => Object.values(s.attributes).map(String));

  it("a mutation's operation, SQL, Redis and provider call are spans of the request's trace; no key is an attribute", async () => {
    const started = await traced(`mutation Start { startConversation(input: { sessionId: "traced" }) { id } }`);
    const conversationId = started.result.data.startConversation.id;
    const { result, spans } = await traced(
      `mutation Send($c: ID!) { sendMessage(input: { conversationId: $c, content: "How long does shipping take?" }) { reply { content } } }`,
      { c: conversationId },
    );
    expect(result.errors).toBeUndefined();

    const operation = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(operation.name).toBe('mutation Send');
    expect(operation.attributes).toMatchObject({
      'graphql.operation.type': 'mutation',
      'graphql.operation.name': 'Send',
      'parley.product.id': productId,
    });
    expect(operation.parentSpanContext?.spanId).toMatch(/^[0-9a-f]{16}$/);

    const names = spans.map((s) => s.name);
    expect(names.some((n) => n.startsWith('prisma:'))).toBe(true);
    expect(spans.some((s) => s.attributes['db.query.text'] !== undefined || s.attributes['db.statement'] !== undefined)).toBe(true);
    expect(names.some((n) => n.startsWith('redis '))).toBe(true);
    const provider = spans.find((s) => s.name === 'chat.completions')!;
    expect(provider.attributes['gen_ai.request.model']).toBeTypeOf('string');
    expect(Number(provider.attributes['parley.answer.length'])).toBeGreaterThan(0);
    // Everything hangs off the operation's span, directly or below it.
    const ids = new Set(spans.map((s) => s.spanContext().spanId));
    for (const span of spans.filter((s) => s !== operation)) expect(ids.has(span.parentSpanContext!.spanId), span.name).toBe(true);

    for (const value of attributeValues(spans)) {
      expect(value).not.toContain(key);
      expect(value).not.toContain('sk-test-key');
    }
  });

  it('a failed operation is a failed span naming its error codes', async () => {
    const { spans } = await traced(`query Bad { conversation(id: "not-an-id") { id } }`);
    const operation = spans.find((s) => s.kind === SpanKind.SERVER)!;
    expect(operation.name).toBe('query Bad');
    expect(operation.status.code).toBe(SpanStatusCode.ERROR);
    expect(operation.attributes['graphql.error.codes']).toEqual(['BAD_USER_INPUT']);
  });

  it('a request without traceparent starts a trace of its own', async () => {
    exporter.reset();
    await t.gql(`query Name { viewer { name } }`, { key });
    const operation = await eventually(() => exporter.getFinishedSpans().find((s) => s.name === 'query Name'), 'the operation span');
    expect(operation.parentSpanContext).toBeUndefined();
  });
});
