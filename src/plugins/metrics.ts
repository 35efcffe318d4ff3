import { getOperationAST, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { graphqlErrorCode } from '../errors.js';
import type { Metrics, OperationSample } from '../infra/metrics.js';
import { currentSqlScope } from '../infra/sql-stats.js';

/**
 * Per-operation metrics: duration (from parse to result, so authentication and
 * validation count), the SQL the operation's request sent and its time,
 * errors by code; subscriptions open per transport and results delivered.
 * Works for HTTP, SSE and graphql-ws alike (all go through Yoga's envelop).
 * `onOperation` hands the same sample to others (the slow-operation log).
 * @default every operation is measured; `onOperation` none
 */
export function useOperationMetrics(metrics: Metrics | undefined, onOperation?: (sample: OperationSample) => void): Plugin {
  // Keyed by the context object, which envelop extends in place from parse to execute.
  const parsedAt = new WeakMap<object, number>();
  return {
    onParse({ context }) {
      parsedAt.set(context, performance.now());
    },
    onExecute({ args }) {
      const operation = getOperationAST(args.document, args.operationName);
      if (!operation) return;
      const started = parsedAt.get(args.contextValue as object) ?? performance.now();
      return {
        onExecuteDone({ result }) {
          // Incremental delivery (@defer/@stream) is not enabled: results are single.
          const single = result as ExecutionResult;
          const sql = currentSqlScope();
          const sample: OperationSample = {
            operation: operation.name?.value ?? 'anonymous',
            type: operation.operation,
            durationMs: performance.now() - started,
            sqlStatements: sql?.statements ?? 0,
            sqlMs: sql?.durationMs ?? 0,
            errorCode: single.errors?.length ? graphqlErrorCode(single.errors[0]!) : undefined,
          };
          metrics?.operation(sample);
          onOperation?.(sample);
        },
      };
    },
    onSubscribe({ args }) {
      if (!metrics) return;
      const transport = (args.contextValue as { request?: unknown }).request ? 'sse' : 'ws';
      const operation = getOperationAST(args.document, args.operationName);
      const field = operation?.selectionSet.selections[0];
      const name = field?.kind === 'Field' ? field.name.value : 'unknown';
      return {
        onSubscribeResult({ result }) {
          if (!(typeof result === 'object' && result !== null && Symbol.asyncIterator in result)) return;
          metrics.subscriptionActive(transport, 1);
          return {
            onNext: () => metrics.eventDelivered(name),
            onEnd: () => metrics.subscriptionActive(transport, -1),
          };
        },
      };
    },
  };
}
