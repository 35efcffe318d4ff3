import { Counter, Gauge, type Registry } from 'prom-client';
import type { CircuitState, ProviderErrorKind } from './resilience.js';

/**
 * Prometheus series of the model provider, on the app's registry (GET /metrics).
 * Per node and model — not per product: products are unbounded, and their
 * numbers live in the database (`viewer.stats.answers`).
 */
export interface ProviderMetrics {
  error(model: string, kind: ProviderErrorKind | 'circuit_open'): void;
  retry(model: string): void;
  fallback(model: string, reason: string): void;
  circuitOpened(): void;
}

const noMetrics: ProviderMetrics = { error: () => {}, retry: () => {}, fallback: () => {}, circuitOpened: () => {} };

const STATES = { closed: 0, 'half-open': 1, open: 2 } as const;

export function createProviderMetrics(registry: Registry | undefined, circuit: () => CircuitState): ProviderMetrics {
  if (!registry) return noMetrics;
  const errors = new Counter({
    name: 'parley_llm_errors_total',
    help: 'Failed calls to the model provider, per model and kind (timeout, network, rate_limited, server, refused, protocol).',
    labelNames: ['model', 'kind'],
    registers: [registry],
  });
  const retries = new Counter({
    name: 'parley_llm_retries_total',
    help: 'Calls to the model provider made again after a failure.',
    labelNames: ['model'],
    registers: [registry],
  });
  const fallbacks = new Counter({
    name: 'parley_llm_fallbacks_total',
    help: 'Replies written by the local engine because the provider failed or its circuit was open.',
    labelNames: ['model', 'reason'],
    registers: [registry],
  });
  new Gauge({
    name: 'parley_llm_circuit_state',
    help: 'Circuit breaker of the model provider on this node: 0 closed, 1 half-open (probing), 2 open.',
    registers: [registry],
    collect() {
      this.set(STATES[circuit()]);
    },
  });
  const opened = new Counter({
    name: 'parley_llm_circuit_opens_total',
    help: 'Times the provider circuit opened on this node (consecutive failures, or a failed probe).',
    registers: [registry],
  });
  return {
    error: (model, kind) => errors.inc({ model, kind }),
    retry: (model) => retries.inc({ model }),
    fallback: (model, reason) => fallbacks.inc({ model, reason }),
    circuitOpened: () => opened.inc(),
  };
}
