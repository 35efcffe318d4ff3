import calculateSlot from 'cluster-key-slot';
import { describe, expect, it } from 'vitest';
import { EPOCH_TAG, Generations } from '../../src/infra/cache/generations.js';
import type { RedisClient } from '../../src/infra/redis.js';
import { groupBySlot, perSlot, slotGroups } from '../../src/infra/redis-slots.js';
import { tags } from '../../src/services/store.js';

const cluster = { isCluster: true } as RedisClient;
const single = { isCluster: false } as RedisClient;

describe('cluster slots of keys used together', () => {
  it('computes slots as Redis does: CLUSTER KEYSLOT, with the first {hash tag}', () => {
    expect(calculateSlot('foo')).toBe(12182);
    expect(calculateSlot('{user1000}.following')).toBe(calculateSlot('{user1000}.followers'));
    // An empty tag does not count: the whole key is hashed.
    expect(calculateSlot('a{}b')).not.toBe(calculateSlot('x{}b'));
  });

  it('groups positions by slot in first-seen order', () => {
    const keys = ['{a}1', 'foo', '{a}2', 'bar', '{a}3', 'foo'];
    const groups = groupBySlot(keys);
    expect(groups).toEqual([[0, 2, 4], [1, 5], [3]]);
    for (const group of groups) expect(new Set(group.map((i) => calculateSlot(keys[i]!))).size).toBe(1);
  });

  it('leaves a batch whole for one Redis, which has no slots', () => {
    expect(slotGroups(single, ['foo', 'bar', 'baz'])).toEqual([[0, 1, 2]]);
    expect(slotGroups(cluster, ['foo', 'bar'])).toHaveLength(2);
  });

  it('sends a per-key command once per slot and answers in the order of the keys', async () => {
    const keys = ['foo', '{p:1}a', 'bar', '{p:1}b', 'baz'];
    const sent: string[][] = [];
    const values = await perSlot(cluster, keys, async (group) => {
      sent.push(group);
      return group.map((key) => `value of ${key}`);
    });
    expect(values).toEqual(keys.map((key) => `value of ${key}`));
    expect(sent).toHaveLength(new Set(keys.map((key) => calculateSlot(key))).size);
    for (const group of sent) expect(new Set(group.map((key) => calculateSlot(key))).size).toBe(1);
    const once: string[][] = [];
    await perSlot(single, keys, async (group) => {
      once.push(group);
      return group;
    });
    expect(once).toEqual([keys]);
  });

  it("names a product's generation counters so they share one slot, whatever the tag", () => {
    const generations = new Generations({ prefix: 'parley:' });
    const product = '0190a2b4-0000-7000-8000-000000000001';
    const ofProduct = [
      tags.product(product),
      tags.knowledge(product),
      tags.conversations(product),
      tags.feedback(product),
      tags.conversation(product, '0190a2b4-0000-7000-8000-0000000000ff'),
    ].map((tag) => generations.key(tag));
    expect(ofProduct[0]).toBe(`parley:gen:{p:${product}}`);
    expect(ofProduct[1]).toBe(`parley:gen:{p:${product}}:knowledge`);
    expect(new Set(ofProduct).size).toBe(ofProduct.length);
    expect(new Set(ofProduct.map((key) => calculateSlot(key))).size).toBe(1);
    // Tags outside any product keep their own names (and slots).
    expect(generations.key(EPOCH_TAG)).toBe('parley:gen:*');
    expect(generations.key(tags.productKey('abc'))).toBe('parley:gen:productKey:abc');
  });
});
