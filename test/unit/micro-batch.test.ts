import { describe, expect, it } from 'vitest';
import { createMicroBatcher } from '../../src/infra/micro-batch.js';

describe('createMicroBatcher', () => {
  const recorder = (windowMs: number, maxBatch?: number) => {
    const runs: [string, string[]][] = [];
    const batcher = createMicroBatcher<string, string, string>({
      windowMs,
      ...(maxBatch ? { maxBatch } : {}),
      keyOf: (k) => k,
      run: async (group, keys) => {
        runs.push([group, [...keys]]);
        if (keys.includes('boom')) throw new Error('boom');
        return keys.map((k) => `${group}:${k}`);
      },
    });
    return { runs, batcher };
  };

  it('calls of one group within the window are one run; groups never mix', async () => {
    const { runs, batcher } = recorder(20);
    const first = batcher.load('a', 'x');
    await new Promise((r) => setTimeout(r, 5));
    const results = await Promise.all([first, batcher.load('a', 'y'), batcher.load('b', 'x'), batcher.load('a', 'x')]);
    expect(results).toEqual(['a:x', 'a:y', 'b:x', 'a:x']);
    expect(runs).toEqual([
      ['a', ['x', 'y']],
      ['b', ['x']],
    ]);
    expect(batcher.batches).toBe(2);
  });

  it('a call after the window closed starts a new batch', async () => {
    const { runs, batcher } = recorder(5);
    await batcher.load('a', 'x');
    await batcher.load('a', 'y');
    expect(runs).toHaveLength(2);
  });

  it('window 0 batches one tick; maxBatch runs a full batch at once', async () => {
    const tick = recorder(0);
    await Promise.all(['1', '2', '3'].map((k) => tick.batcher.load('a', k)));
    expect(tick.runs).toEqual([['a', ['1', '2', '3']]]);
    const full = recorder(10_000, 2);
    expect(await Promise.all(['1', '2'].map((k) => full.batcher.load('a', k)))).toEqual(['a:1', 'a:2']);
  });

  it('a failed run fails every call of its batch', async () => {
    const { batcher } = recorder(1);
    const results = await Promise.allSettled([batcher.load('a', 'boom'), batcher.load('a', 'fine')]);
    expect(results.map((r) => r.status)).toEqual(['rejected', 'rejected']);
  });
});
