/**
 * What keeps a slow or failing model provider from becoming a slow or failing
 * Parley: bounded retries with exponential backoff and jitter (honouring
 * Retry-After), and a circuit breaker that stops calling a provider that keeps
 * failing and lets one call probe it again after a cool-down.
 */

export type ProviderErrorKind = 'timeout' | 'network' | 'rate_limited' | 'server' | 'refused' | 'protocol' | 'aborted';

/** A failed provider call. `retryable` ones (429, 5xx, network, timeout) are tried again. */
export class ProviderError extends Error {
  override name = 'ProviderError';
  constructor(
    message: string,
    readonly kind: ProviderErrorKind,
    readonly options: {
      status?: number;
      /** The provider's Retry-After, in ms. */
      retryAfterMs?: number;
      /** Part of the answer was already relayed: trying again would repeat it. */
      streamed?: boolean;
    } = {},
  ) {
    super(message);
  }

  get retryable(): boolean {
    return !this.options.streamed && (this.kind === 'timeout' || this.kind === 'network' || this.kind === 'rate_limited' || this.kind === 'server');
  }
}

/** The circuit is open: the provider was not called. */
export class CircuitOpenError extends Error {
  override name = 'CircuitOpenError';
}

/** Retry-After as seconds or an HTTP date, in ms from `now`; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

export interface BackoffOptions {
  baseMs: number;
  maxMs: number;
  /** [0, 1) @default Math.random */
  random?: () => number;
}

/**
 * The wait before retry number `attempt` (0 = the first retry): exponential,
 * capped, with "equal jitter" — half fixed, half random — so retries of many
 * callers spread out but never come back at once.
 */
export function backoffMs(attempt: number, { baseMs, maxMs, random = Math.random }: BackoffOptions): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** attempt);
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

export type CircuitState = 'closed' | 'open' | 'half-open';

export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. */
  failures: number;
  /** How long it stays open before one call may probe. */
  cooldownMs: number;
  now?: () => number;
  onChange?: (state: CircuitState) => void;
}

/**
 * Closed: calls go through, failures are counted (a success resets the count).
 * Open: no call goes through until the cool-down has passed; then exactly one
 * call is let through as a probe (half-open): its success closes the circuit,
 * its failure opens it for another cool-down. Per process: each node learns
 * about the provider from its own calls.
 */
export class CircuitBreaker {
  private consecutive = 0;
  private openedAt = 0;
  private probing = false;
  private current: CircuitState = 'closed';
  /** Times the circuit opened (for metrics and tests). */
  opened = 0;

  constructor(private readonly options: CircuitBreakerOptions) {}

  get state(): CircuitState {
    return this.current;
  }

  /** 'call' to go ahead, 'probe' for the one call that tests an open circuit, 'open' to not call at all. */
  acquire(): 'call' | 'probe' | 'open' {
    if (this.current === 'closed') return 'call';
    const now = (this.options.now ?? Date.now)();
    if (!this.probing && now - this.openedAt >= this.options.cooldownMs) {
      this.probing = true;
      this.set('half-open');
      return 'probe';
    }
    return 'open';
  }

  success(): void {
    this.consecutive = 0;
    this.probing = false;
    this.set('closed');
  }

  failure(): void {
    if (this.probing || this.current !== 'closed') {
      this.probing = false;
      this.trip();
      return;
    }
    this.consecutive += 1;
    if (this.consecutive >= this.options.failures) this.trip();
  }

  /** A probe that ended without telling anything (aborted): let another call probe. */
  release(): void {
    if (!this.probing) return;
    this.probing = false;
    this.set('open');
  }

  private trip(): void {
    this.openedAt = (this.options.now ?? Date.now)();
    this.consecutive = 0;
    if (this.current !== 'open') this.opened += 1;
    this.set('open');
  }

  private set(state: CircuitState): void {
    if (state === this.current) return;
    this.current = state;
    this.options.onChange?.(state);
  }
}

export interface RetryOptions {
  maxRetries: number;
  backoff: BackoffOptions;
  breaker: CircuitBreaker;
  signal?: AbortSignal;
  /** Called before each wait, with why and how long. */
  onRetry?: (info: { attempt: number; delayMs: number; error: ProviderError }) => void;
  /** Called for every failed call. */
  onError?: (error: ProviderError) => void;
}

/**
 * Runs `call` through the breaker, retrying retryable failures. A probe is
 * never retried (one call tells whether the provider is back), a Retry-After
 * longer than `backoff.maxMs` is not waited for, and a circuit that opens
 * meanwhile stops the retries. Throws the last ProviderError, or
 * CircuitOpenError when the provider was not called at all.
 */
export async function withRetries<T>(call: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { breaker } = options;
  for (let attempt = 0; ; attempt++) {
    const gate = breaker.acquire();
    if (gate === 'open') throw new CircuitOpenError('provider circuit open');
    try {
      const result = await call(attempt);
      breaker.success();
      return result;
    } catch (caught) {
      const error = caught instanceof ProviderError ? caught : new ProviderError((caught as Error)?.message ?? String(caught), 'network');
      if (error.kind === 'aborted') {
        breaker.release();
        throw error;
      }
      breaker.failure();
      options.onError?.(error);
      if (!error.retryable || gate === 'probe' || attempt >= options.maxRetries || breaker.state === 'open') throw error;
      const retryAfter = error.options.retryAfterMs;
      if (retryAfter !== undefined && retryAfter > options.backoff.maxMs) throw error;
      const delayMs = Math.max(retryAfter ?? 0, backoffMs(attempt, options.backoff));
      options.onRetry?.({ attempt: attempt + 1, delayMs, error });
      await sleep(delayMs, options.signal);
    }
  }
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(new ProviderError('aborted', 'aborted'));
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(new ProviderError('aborted', 'aborted'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** A provider's non-2xx answer as the ProviderError it is: 429 and 5xx retryable (with their Retry-After), others refused. */
export async function httpFailure(response: Response): Promise<ProviderError> {
  const body = (await response.text().catch(() => '')).slice(0, 300).replace(/\s+/g, ' ');
  const status = response.status;
  const message = `provider answered HTTP ${status}${body ? `: ${body}` : ''}`;
  if (status === 429)
    return new ProviderError(message, 'rate_limited', { status, retryAfterMs: parseRetryAfter(response.headers.get('retry-after')) });
  if (status >= 500 || status === 408)
    return new ProviderError(message, 'server', { status, retryAfterMs: parseRetryAfter(response.headers.get('retry-after')) });
  return new ProviderError(message, 'refused', { status });
}
