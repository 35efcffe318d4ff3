import type { RedisClient } from '../redis.js';

/**
 * Every Redis call of the cache goes through here: bounded by a timeout, and
 * skipped entirely while a circuit is open, so a slow or dead Redis costs a
 * request at most `timeoutMs` once, then nothing until a probe finds it back.
 * Redis is an accelerator for the cache, never a dependency of a request.
 */
export interface RedisGuardOptions {
  /** @default 50 */
  timeoutMs?: number;
  /** Consecutive failures that open the circuit. @default 3 */
  failureThreshold?: number;
  /** How long the circuit stays open before one probe call is let through. @default 1000 */
  openMs?: number;
  onStateChange?: (state: 'open' | 'closed') => void;
}

export class RedisUnavailable extends Error {
  override name = 'RedisUnavailable';
}

export class RedisGuard {
  readonly timeoutMs: number;
  private readonly failureThreshold: number;
  private readonly openMs: number;
  private failures = 0;
  private openUntil = 0;
  private probing = false;
  private open = false;
  /** Total time spent in successful calls, and their count (for L2 latency stats). */
  latencyMs = 0;
  calls = 0;
  failuresTotal = 0;
  /** Timeouts that found this process stalled rather than Redis slow (the call got its time again). */
  stalls = 0;

  constructor(
    readonly redis: RedisClient,
    private readonly options: RedisGuardOptions = {},
  ) {
    this.timeoutMs = options.timeoutMs ?? 50;
    this.failureThreshold = options.failureThreshold ?? 3;
    this.openMs = options.openMs ?? 1_000;
  }

  /** True when calls are being skipped. */
  get isOpen(): boolean {
    return this.open;
  }

  async run<T>(call: (redis: RedisClient) => Promise<T>): Promise<T> {
    if (!this.allow()) throw new RedisUnavailable('redis circuit open');
    const started = performance.now();
    let timer: NodeJS.Timeout | undefined;
    try {
      const result = await Promise.race([
        call(this.redis),
        new Promise<never>((_, reject) => {
          const expire = () => reject(new RedisUnavailable(`redis call over ${this.timeoutMs} ms`));
          timer = setTimeout(() => {
            // The timer itself fired late: this process was busy (a stalled event loop — thousands of
            // sockets connecting, a long GC), not Redis slow; the reply may well be read and waiting.
            // Give the call its time again from now, after the pending I/O, instead of failing it and
            // opening the circuit (which drops this node's L1 when it closes).
            const late = performance.now() - started - this.timeoutMs;
            if (late > this.timeoutMs) {
              this.stalls += 1;
              timer = setTimeout(expire, this.timeoutMs);
            } else expire();
          }, this.timeoutMs);
        }),
      ]);
      this.succeeded(performance.now() - started);
      return result;
    } catch (error) {
      this.failed();
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Like run, but a failure is just `fallback` (the caller degrades to L1 + database). */
  async tryRun<T>(call: (redis: RedisClient) => Promise<T>, fallback: T): Promise<T> {
    try {
      return await this.run(call);
    } catch {
      return fallback;
    }
  }

  private allow(): boolean {
    // A client that is not connected fails at once (no offline queue): count it without waiting.
    if (this.redis.status !== 'ready' && !this.open) {
      this.failed();
      return false;
    }
    if (!this.open) return true;
    if (Date.now() < this.openUntil || this.probing || this.redis.status !== 'ready') return false;
    this.probing = true;
    return true;
  }

  private succeeded(ms: number): void {
    this.calls += 1;
    this.latencyMs += ms;
    this.failures = 0;
    this.probing = false;
    if (this.open) {
      this.open = false;
      this.options.onStateChange?.('closed');
    }
  }

  private failed(): void {
    this.failuresTotal += 1;
    this.failures += 1;
    this.probing = false;
    if (this.open) {
      this.openUntil = Date.now() + this.openMs;
    } else if (this.failures >= this.failureThreshold) {
      this.open = true;
      this.openUntil = Date.now() + this.openMs;
      this.options.onStateChange?.('open');
    }
  }
}
