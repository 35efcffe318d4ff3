import { tracingChannel } from 'node:diagnostics_channel';
import { context, SpanKind, SpanStatusCode, trace, type Span, type Tracer } from '@opentelemetry/api';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { registerInstrumentations } from '@opentelemetry/instrumentation';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, SimpleSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace-base';
import { NodeTracerProvider } from '@opentelemetry/sdk-trace-node';
import { PrismaInstrumentation } from '@prisma/instrumentation';
import type { Logger } from './log.js';

/**
 * OpenTelemetry traces, off unless the standard variables ask for them
 * (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, and not
 * OTEL_SDK_DISABLED=true); the exporter reads the other OTEL_EXPORTER_OTLP_*
 * variables itself (headers, protocol, timeout), OTEL_SERVICE_NAME names the
 * service (default `parley`). When on, spans are made for:
 *
 * - each GraphQL operation (src/plugins/tracing.ts), child of the request's W3C `traceparent`;
 * - each SQL statement and Prisma operation (@prisma/instrumentation, which needs no module patching);
 * - each Redis command and MULTI, from ioredis' own diagnostics channels (`ioredis:command`,
 *   `ioredis:batch`) — not @opentelemetry/instrumentation-ioredis, whose module patching does not see
 *   an ioredis imported from ES modules, as Parley's is;
 * - each call to the answer provider (`withSpan` in src/infra/llm/chat-completions.ts).
 *
 * When off, nothing is registered: the API's no-op tracer answers, and ioredis skips its
 * channels (they have no subscriber).
 */

export const TRACER_NAME = 'parley';

export interface Tracing {
  shutdown(): Promise<void>;
}

export interface TracingOptions {
  /** config.observability.tracing: an OTLP endpoint is set and the SDK is not disabled. */
  enabled: boolean;
  env?: NodeJS.ProcessEnv;
  log: Logger;
  version: string;
  /** Tests: spans go here, one at a time, instead of OTLP. */
  exporter?: SpanExporter;
}

/** Starts tracing when asked for (see above); undefined when it is off. */
export function startTracing({ enabled, env = process.env, log, version, exporter }: TracingOptions): Tracing | undefined {
  if (!exporter && !enabled) return undefined;
  const provider = new NodeTracerProvider({
    resource: resourceFromAttributes({ 'service.name': env.OTEL_SERVICE_NAME || 'parley', 'service.version': version }),
    spanProcessors: [exporter ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(new OTLPTraceExporter())],
  });
  // The global tracer provider, an AsyncLocalStorage context manager and the W3C trace-context propagator.
  provider.register();
  const unregister = registerInstrumentations({ instrumentations: [new PrismaInstrumentation()], tracerProvider: provider });
  const stopRedis = traceRedis(trace.getTracer(TRACER_NAME, version));
  log.info('tracing on', { exporter: exporter ? 'in-memory' : env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT });
  return {
    async shutdown() {
      stopRedis();
      unregister();
      await provider.shutdown().catch((error: Error) => log.warn('tracing: spans not exported at shutdown', { error: error.message }));
      trace.disable();
    },
  };
}

interface RedisCommandContext {
  command?: string;
  batchMode?: string;
  batchSize?: number;
  database?: number;
  serverAddress?: string;
  serverPort?: number;
  error?: unknown;
}

const SPANS = new WeakMap<object, Span>();

/** A span per Redis command and per MULTI … EXEC, child of whatever was active when it was sent. */
function traceRedis(tracer: Tracer): () => void {
  const channels = [tracingChannel<RedisCommandContext>('ioredis:command'), tracingChannel<RedisCommandContext>('ioredis:batch')];
  const handlers = {
    start(message: RedisCommandContext) {
      const name = message.command ? message.command.toUpperCase() : (message.batchMode ?? 'BATCH');
      const span = tracer.startSpan(
        `redis ${name}`,
        {
          kind: SpanKind.CLIENT,
          attributes: {
            'db.system.name': 'redis',
            'db.operation.name': name,
            ...(message.batchSize !== undefined ? { 'db.operation.batch.size': message.batchSize } : {}),
            ...(message.serverAddress ? { 'server.address': message.serverAddress } : {}),
            ...(message.serverPort ? { 'server.port': message.serverPort } : {}),
          },
        },
        context.active(),
      );
      SPANS.set(message, span);
    },
    end() {},
    asyncStart() {},
    asyncEnd(message: RedisCommandContext) {
      SPANS.get(message)?.end();
    },
    error(message: RedisCommandContext) {
      const span = SPANS.get(message);
      if (!span) return;
      span.setStatus({ code: SpanStatusCode.ERROR, message: message.error instanceof Error ? message.error.message : String(message.error) });
    },
  };
  for (const channel of channels) channel.subscribe(handlers);
  return () => {
    for (const channel of channels) channel.unsubscribe(handlers);
  };
}

/**
 * Runs `fn` in a span of its own (a child of the active one), ending it when `fn` settles and
 * marking it failed when `fn` throws. With tracing off the API's no-op tracer makes this free.
 */
export function withSpan<T>(name: string, attributes: Record<string, string | number | boolean>, fn: (span: Span) => Promise<T>): Promise<T> {
  return trace.getTracer(TRACER_NAME).startActiveSpan(name, { kind: SpanKind.CLIENT, attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      span.setStatus({ code: SpanStatusCode.ERROR, message: error instanceof Error ? error.message : String(error) });
      throw error;
    } finally {
      span.end();
    }
  });
}
