import { describe, expect, it } from 'vitest';
import { backoffMs, CircuitBreaker, CircuitOpenError, parseRetryAfter, ProviderError, withRetries } from '../../src/infra/llm/resilience.js';

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('3')).toBe(3000);
    expect(parseRetryAfter('0')).toBe(0);
    expect(parseRetryAfter('1.5')).toBe(1500);
    const now = Date.parse('2026-01-01T00:00:00Z');
    expect(parseRetryAfter('Thu, 01 Jan 2026 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Wed, 31 Dec 2025 23:59:00 GMT', now)).toBe(0);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('backoffMs', () => {
  it('doubles per attempt, with half of it random, capped', () => {
    const low = { baseMs: 100, maxMs: 1000, random: () => 0 };
    const high = { baseMs: 100, maxMs: 1000, random: () => 0.999999 };
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffMs(a, low))).toEqual([50, 100, 200, 400, 500, 500]);
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffMs(a, high))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });
});

describe('CircuitBreaker', () => {
  const clock = () => {
    let now = 0;
    return { now: () => now, advance: (ms: number) => void (now += ms) };
  };

  it('opens after N consecutive failures; a success resets the count', () => {
    const c = clock();
    const breaker = new CircuitBreaker({ failures: 3, cooldownMs: 1000, now: c.now });
    breaker.failure();
    breaker.failure();
    breaker.success();
    breaker.failure();
    breaker.failure();
    expect(breaker.state).toBe('closed');
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.acquire()).toBe('open');
    expect(breaker.opened).toBe(1);
  });

  it('lets exactly one probe through after the cool-down; its outcome decides', () => {
    const c = clock();
    const changes: string[] = [];
    const breaker = new CircuitBreaker({ failures: 1, cooldownMs: 1000, now: c.now, onChange: (s) => changes.push(s) });
    breaker.failure();
    c.advance(999);
    expect(breaker.acquire()).toBe('open');
    c.advance(1);
    expect(breaker.acquire()).toBe('probe');
    expect(breaker.state).toBe('half-open');
    expect(breaker.acquire()).toBe('open'); // one probe at a time
    breaker.failure();
    expect(breaker.state).toBe('open');
    expect(breaker.acquire()).toBe('open'); // a new cool-down started
    c.advance(1000);
    expect(breaker.acquire()).toBe('probe');
    breaker.success();
    expect(breaker.acquire()).toBe('call');
    expect(changes).toEqual(['open', 'half-open', 'open', 'half-open', 'closed']);
  });

  it('a probe that was aborted lets another call probe', () => {
    const c = clock();
    const breaker = new CircuitBreaker({ failures: 1, cooldownMs: 10, now: c.now });
    breaker.failure();
    c.advance(10);
    expect(breaker.acquire()).toBe('probe');
    breaker.release();
    expect(breaker.acquire()).toBe('probe');
  });
});

describe('withRetries', () => {
  const fast = { baseMs: 1, maxMs: 50, random: () => 0 };
  const breaker = (failures = 100) => new CircuitBreaker({ failures, cooldownMs: 60_000 });
  const failing = (errors: ProviderError[], value = 'ok') => {
    let calls = 0;
    return {
      calls: () => calls,
      call: async () => {
        const error = errors[calls++];
        if (error) throw error;
        return value;
      },
    };
  };

  it('retries retryable failures up to maxRetries, waiting at least Retry-After', async () => {
    const p = failing([new ProviderError('429', 'rate_limited', { retryAfterMs: 30 }), new ProviderError('500', 'server')]);
    const delays: number[] = [];
    expect(await withRetries(p.call, { maxRetries: 2, backoff: fast, breaker: breaker(), onRetry: (r) => delays.push(r.delayMs) })).toBe('ok');
    expect(p.calls()).toBe(3);
    expect(delays[0]).toBe(30);
    expect(delays[1]).toBe(1); // 2 ms ceiling, half of it fixed
  });

  it('gives up after maxRetries with the last error', async () => {
    const p = failing([1, 2, 3].map((i) => new ProviderError(`down ${i}`, 'network')));
    await expect(withRetries(p.call, { maxRetries: 2, backoff: fast, breaker: breaker() })).rejects.toThrow('down 3');
    expect(p.calls()).toBe(3);
  });

  it('does not retry refusals, streamed failures, or a Retry-After longer than the longest wait', async () => {
    for (const error of [
      new ProviderError('400', 'refused', { status: 400 }),
      new ProviderError('cut', 'network', { streamed: true }),
      new ProviderError('429', 'rate_limited', { retryAfterMs: 60_000 }),
    ]) {
      const p = failing([error]);
      await expect(withRetries(p.call, { maxRetries: 3, backoff: fast, breaker: breaker() })).rejects.toBe(error);
      expect(p.calls(), error.message).toBe(1);
    }
  });

  it('stops retrying once the circuit opens, and then does not call at all', async () => {
    const b = breaker(2);
    const p = failing([1, 2, 3].map(() => new ProviderError('500', 'server')));
    await expect(withRetries(p.call, { maxRetries: 5, backoff: fast, breaker: b })).rejects.toBeInstanceOf(ProviderError);
    expect(p.calls()).toBe(2);
    await expect(withRetries(p.call, { maxRetries: 5, backoff: fast, breaker: b })).rejects.toBeInstanceOf(CircuitOpenError);
    expect(p.calls()).toBe(2);
  });

  it('an abort while waiting ends at once', async () => {
    const controller = new AbortController();
    const p = failing([new ProviderError('429', 'rate_limited', { retryAfterMs: 40 })]);
    const run = withRetries(p.call, { maxRetries: 1, backoff: fast, breaker: breaker(), signal: controller.signal });
    setTimeout(() => controller.abort(), 5);
    await expect(run).rejects.toMatchObject({ kind: 'aborted' });
    expect(p.calls()).toBe(1);
  });
});
