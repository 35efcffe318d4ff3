import calculateSlot from 'cluster-key-slot';
import type { RedisClient } from './redis.js';

/**
 * In a Redis Cluster every key of one command, script or MULTI must hash to one
 * slot (else CROSSSLOT). Keys that always go together are named so that they do
 * (a `{hash tag}` they share); where one batch mixes keys of several slots (the
 * generations of different products' tags, the global epoch), it is cut here
 * into one command per slot, sent in parallel, rather than made looser.
 *
 * Slots are computed as ioredis routes commands (cluster-key-slot), and only for
 * a cluster: one Redis takes the batch whole, as before.
 */

/** The positions of `keys`, grouped by slot (first-seen order); a single group for one Redis. */
export function slotGroups(redis: RedisClient, keys: readonly string[]): number[][] {
  if (!redis.isCluster || keys.length < 2) return [keys.map((_, i) => i)];
  return groupBySlot(keys);
}

/** The positions of `keys` grouped by their cluster slot, in first-seen order. */
export function groupBySlot(keys: readonly string[]): number[][] {
  const groups = new Map<number, number[]>();
  keys.forEach((key, i) => {
    const slot = calculateSlot(key);
    const group = groups.get(slot);
    if (group) group.push(i);
    else groups.set(slot, [i]);
  });
  return [...groups.values()];
}

/**
 * A command taking many keys and answering one value per key (MGET), sent once
 * per slot in parallel; the answers come back in the order of `keys`.
 */
export async function perSlot<T>(redis: RedisClient, keys: readonly string[], command: (keys: string[]) => Promise<T[]>): Promise<T[]> {
  const groups = slotGroups(redis, keys);
  if (groups.length === 1) return command([...keys]);
  const answers = await Promise.all(groups.map((group) => command(group.map((i) => keys[i]!))));
  const out = new Array<T>(keys.length);
  groups.forEach((group, g) => {
    group.forEach((i, j) => {
      out[i] = answers[g]![j]!;
    });
  });
  return out;
}
