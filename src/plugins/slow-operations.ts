import type { Logger } from '../infra/log.js';
import type { OperationSample } from '../infra/metrics.js';

/**
 * One warn line per operation slower than `thresholdMs`: its name, type,
 * duration and the SQL it sent (the request id comes with every line). Never
 * the document's variables: they may hold anything a user typed.
 * Fed by useOperationMetrics' `onOperation`.
 * @default thresholdMs 1000; 0 turns it off
 */
export function slowOperationLog(log: Logger, thresholdMs = 1_000): ((sample: OperationSample) => void) | undefined {
  if (thresholdMs <= 0) return undefined;
  return (sample) => {
    if (sample.durationMs < thresholdMs) return;
    log.warn('slow operation', {
      operation: sample.operation,
      type: sample.type,
      durationMs: Math.round(sample.durationMs),
      sqlStatements: sample.sqlStatements,
      sqlMs: Math.round(sample.sqlMs),
      ...(sample.errorCode ? { errorCode: sample.errorCode } : {}),
    });
  };
}
