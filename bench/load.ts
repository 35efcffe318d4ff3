import autocannon from 'autocannon';
import { requestBody, seededRandom, type Dialect, type Scenario } from './scenarios.js';

/**
 * Drives one server with one scenario over loopback with autocannon: a fixed
 * number of keep-alive connections, one request in flight on each (no
 * pipelining), for a bounded time. A response counts as an error when its
 * status is not 200 or its body carries GraphQL `errors`.
 */

export interface LoadOptions {
  /** Base URL, e.g. http://127.0.0.1:4123 — the bench only ever targets 127.0.0.1. */
  url: string;
  scenario: Scenario;
  seconds: number;
  connections: number;
  seed: number;
  /** Which schema the server speaks (default Parley's). */
  dialect?: Dialect;
}

export interface LoadResult {
  /** Completed responses (including errors). */
  requests: number;
  errors: number;
  /** First error seen, for the report; undefined when there were none. */
  errorSample?: string;
  seconds: number;
  requestsPerSecond: number;
  latencyMs: { p50: number; p95: number; p99: number; mean: number; max: number };
  meanResponseBytes: number;
  writes: number;
  /** Writes whose sendMessage payload carried a non-null `reply`. */
  writesWithReply: number;
  /** Every response's latency, for mergeLoads (not written to the results). */
  latencies?: number[];
}

/** One result of several runs of the same load (rounds): sums, and percentiles over every response. */
export function mergeLoads(results: readonly LoadResult[]): LoadResult {
  const latencies = results.flatMap((r) => r.latencies ?? []);
  const requests = results.reduce((sum, r) => sum + r.requests, 0);
  const seconds = results.reduce((sum, r) => sum + r.seconds, 0);
  const errorSample = results.find((r) => r.errorSample)?.errorSample;
  return {
    requests,
    errors: results.reduce((sum, r) => sum + r.errors, 0),
    ...(errorSample ? { errorSample } : {}),
    seconds,
    requestsPerSecond: seconds > 0 ? requests / seconds : 0,
    latencyMs: summarise(latencies),
    meanResponseBytes: requests ? results.reduce((sum, r) => sum + r.meanResponseBytes * r.requests, 0) / requests : 0,
    writes: results.reduce((sum, r) => sum + r.writes, 0),
    writesWithReply: results.reduce((sum, r) => sum + r.writesWithReply, 0),
    latencies,
  };
}

/** autocannon's per-connection context: what the request in flight was. */
interface RequestContext {
  kind?: 'read' | 'write';
}

export function assertLoopback(url: string): void {
  const host = new URL(url).hostname;
  if (host !== '127.0.0.1') throw new Error(`the bench only targets 127.0.0.1, not ${host}`);
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  assertLoopback(options.url);
  const random = seededRandom(options.seed);
  const dialect = options.dialect ?? 'parley';
  const latencies: number[] = [];
  let errors = 0;
  let errorSample: string | undefined;
  let bodyBytes = 0;
  let responses = 0;
  let writes = 0;
  let writesWithReply = 0;
  const started = performance.now();

  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: options.url,
        connections: options.connections,
        pipelining: 1,
        duration: options.seconds,
        timeout: 30,
        // autocannon checks for the end of the run once per sample: every 100 ms, not every second.
        sampleInt: 100,
        requests: [
          {
            method: 'POST',
            path: '/graphql',
            setupRequest: (request, context) => {
              const next = options.scenario.next(random);
              (context as RequestContext).kind = next.kind;
              return {
                ...request,
                method: 'POST',
                path: '/graphql',
                headers:
                  dialect === 'parley'
                    ? { 'content-type': 'application/json', authorization: `Bearer ${next.key}` }
                    : { 'content-type': 'application/json' },
                body: requestBody(next, dialect),
              };
            },
            onResponse: (status, body, context) => {
              responses += 1;
              bodyBytes += Buffer.byteLength(body);
              const failed = status !== 200 || body.includes('"errors":');
              if (failed) {
                errors += 1;
                errorSample ??= `HTTP ${status}: ${body.slice(0, 300)}`;
              }
              if ((context as RequestContext).kind === 'write' && !failed) {
                writes += 1;
                if (!body.includes('"reply":null')) writesWithReply += 1;
              }
            },
          },
        ],
      },
      (error, finished) => (error ? reject(error) : resolve(finished)),
    );
    instance.on('response', (_client: unknown, _status: number, _bytes: number, ms: number) => latencies.push(ms));
  });

  const seconds = (performance.now() - started) / 1000;
  // Connection errors and timeouts never produce a response: count them too.
  errors += result.errors;
  if (result.errors && !errorSample) errorSample = `${result.errors} connection errors / ${result.timeouts} timeouts`;
  return {
    requests: responses,
    errors,
    ...(errorSample ? { errorSample } : {}),
    seconds,
    requestsPerSecond: responses / seconds,
    latencyMs: summarise(latencies),
    meanResponseBytes: responses ? bodyBytes / responses : 0,
    writes,
    writesWithReply,
    latencies,
  };
}

function summarise(values: number[]): LoadResult['latencyMs'] {
  if (!values.length) return { p50: 0, p95: 0, p99: 0, mean: 0, max: 0 };
  const sorted = Float64Array.from(values).sort();
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!;
  const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
  return { p50: at(0.5), p95: at(0.95), p99: at(0.99), mean, max: sorted[sorted.length - 1]! };
}
