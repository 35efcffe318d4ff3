import { describe, expect, it } from 'vitest';
import { isUuid, uuidv7 } from '../../src/services/ids.js';

describe('uuidv7', () => {
  it('is a version 7, RFC 9562 variant UUID carrying its millisecond time first', () => {
    const at = Date.UTC(2026, 11, 7, 1, 2, 3, 4);
    const id = uuidv7(at);
    expect(isUuid(id)).toBe(true);
    expect(id[14]).toBe('7');
    expect(['8', '9', 'a', 'b']).toContain(id[19]);
    expect(Number.parseInt(id.replace(/-/g, '').slice(0, 12), 16)).toBe(at);
  });

  it('never repeats, across many refills of its pool of random bytes, and sorts by time', () => {
    const ids = Array.from({ length: 5_000 }, (_, i) => uuidv7(1_700_000_000_000 + i));
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    // The random part differs between ids of the same millisecond.
    const same = Array.from({ length: 600 }, () => uuidv7(1_700_000_000_000).slice(14));
    expect(new Set(same).size).toBe(same.length);
  });
});
