import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { ChannelRegistry } from '../../src/infra/pubsub/channels.js';
import { eventually, uniquePrefix } from '../helpers/live.js';

/**
 * The channel registry under the Redis pub/sub, against a real Redis: one
 * SUBSCRIBE per channel however many listen, nothing left when the last
 * listener leaves (also before Redis acknowledged), one parse per message,
 * and a SUBSCRIBE that fails is an error for its listeners, never an
 * unhandled rejection.
 */

const redisUrl = inject('redisUrl');

describe.skipIf(!redisUrl)('ChannelRegistry on a real Redis', () => {
  let publisher: Redis;
  const subscribers: Redis[] = [];
  const prefix = uniquePrefix('channels');
  const subscriber = async () => {
    const connection = new Redis(redisUrl, { lazyConnect: true });
    await connection.connect();
    subscribers.push(connection);
    return connection;
  };
  const numsub = async (channel: string) => Number(((await publisher.call('PUBSUB', 'NUMSUB', channel)) as [string, number])[1]);

  beforeAll(async () => {
    publisher = new Redis(redisUrl);
  });
  afterAll(async () => {
    for (const connection of [publisher, ...subscribers]) connection.disconnect();
  });

  it('one SUBSCRIBE for many listeners; each gets the same frozen object, parsed once; the last to leave unsubscribes', async () => {
    const connection = await subscriber();
    const registry = new ChannelRegistry(connection);
    const channel = `${prefix}a`;
    const got: object[][] = [[], []];
    const sent: string[] = [];
    connection.on('message', (_channel: string, raw: string) => sent.push(raw));
    const first = registry.add(channel, (event) => got[0]!.push(event));
    const second = registry.add(channel, (event) => got[1]!.push(event));
    expect(first.subscribed).toBe(second.subscribed);
    await first.subscribed;
    expect(await numsub(channel)).toBe(1);
    expect(registry.listeners()).toBe(2);

    await publisher.publish(channel, JSON.stringify({ type: 'x', n: 1 }));
    await publisher.publish(channel, 'not json');
    await publisher.publish(channel, '42');
    await eventually(() => sent.length === 3, 'three messages received');
    expect(got[0]).toEqual([{ type: 'x', n: 1 }]);
    expect(got[1]![0]).toBe(got[0]![0]);
    expect(Object.isFrozen(got[0]![0])).toBe(true);

    first.remove();
    first.remove(); // twice is once
    expect(registry.listeners()).toBe(1);
    expect(await numsub(channel)).toBe(1);
    second.remove();
    expect(registry.channelCount()).toBe(0);
    await eventually(async () => (await numsub(channel)) === 0, 'unsubscribed in Redis');
  });

  it('a listener that leaves before Redis acknowledged its SUBSCRIBE leaves nothing behind', async () => {
    const connection = await subscriber();
    const registry = new ChannelRegistry(connection);
    const channels = Array.from({ length: 50 }, (_, i) => `${prefix}early:${i}`);
    for (const channel of channels) registry.add(channel, () => undefined).remove();
    expect(registry.listeners()).toBe(0);
    expect(registry.channelCount()).toBe(0);
    await connection.ping(); // answered after every SUBSCRIBE and UNSUBSCRIBE sent before it
    for (const channel of channels) expect(await numsub(channel), channel).toBe(0);
    // The channel works again afterwards.
    const again = registry.add(channels[0]!, () => undefined);
    await again.subscribed;
    expect(await numsub(channels[0]!)).toBe(1);
    again.remove();
  });

  it('a SUBSCRIBE on a closed connection rejects for its listeners only, and a later add subscribes again', async () => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    try {
      const connection = new Redis(redisUrl, { lazyConnect: true, enableOfflineQueue: false });
      subscribers.push(connection);
      const registry = new ChannelRegistry(connection);
      const channel = `${prefix}closed`;
      const failed = registry.add(channel, () => undefined);
      await expect(failed.subscribed).rejects.toThrow();
      expect(registry.channelCount()).toBe(0);
      failed.remove();
      // The failed command started connecting (lazyConnect); wait for it, or connect.
      if (connection.status === 'wait') await connection.connect();
      else if (connection.status !== 'ready') await new Promise((resolve) => connection.once('ready', resolve));
      const later = registry.add(channel, () => undefined);
      await later.subscribed;
      expect(await numsub(channel)).toBe(1);
      later.remove();
      await new Promise((resolve) => setTimeout(resolve, 20));
      expect(rejections).toEqual([]);
    } finally {
      process.off('unhandledRejection', onRejection);
    }
  });
});
