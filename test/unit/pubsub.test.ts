import { afterEach, describe, expect, it } from 'vitest';
import { createPubSub } from '../../src/infra/pubsub/index.js';
import type { Logger } from '../../src/infra/log.js';
import type { ParleyEvents, ParleyPubSub } from '../../src/services/events.js';

// The in-process pub/sub (embedded mode); the Redis one is tested against a real
// Redis in test/integration/live-*.test.ts.

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };
let pubsub: ParleyPubSub | undefined;
afterEach(async () => {
  await pubsub?.dispose();
  pubsub = undefined;
});

describe('in-process pub/sub', () => {
  it('return() ends a pending next() at once and gives the channel back', async () => {
    pubsub = await createPubSub<ParleyEvents>({ log: silent });
    const stream = pubsub.subscribe('conversation', 'c1');
    await stream.ready;
    expect(pubsub.stats()).toEqual({ channels: 1, streams: 1, subscribed: 1, listeners: 1, connected: true });
    const pending = stream.next();
    await stream.return();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(pubsub.stats()).toEqual({ channels: 0, streams: 0, subscribed: 0, listeners: 0, connected: true });
  });

  it("delivers one frozen object to every subscriber of the channel, and nothing to another channel's", async () => {
    pubsub = await createPubSub<ParleyEvents>({ log: silent });
    const one = pubsub.subscribe('conversation', 'c1');
    const two = pubsub.subscribe('conversation', 'c1');
    const other = pubsub.subscribe('conversation', 'c2');
    await pubsub.publish('conversation', 'c1', { type: 'messageAdded', messageId: 'm1' });
    const [a, b] = [(await one.next()).value, (await two.next()).value];
    expect(a).toEqual({ type: 'messageAdded', messageId: 'm1' });
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
    await pubsub.publish('conversation', 'c2', { type: 'messageAdded', messageId: 'm2' });
    expect((await other.next()).value).toEqual({ type: 'messageAdded', messageId: 'm2' });
  });

  it('fails a subscriber that falls too far behind, and releases it', async () => {
    pubsub = await createPubSub<ParleyEvents>({ log: silent, maxBuffered: 3 });
    const slow = pubsub.subscribe('conversation', 'c1');
    for (let i = 0; i < 4; i++) await pubsub.publish('conversation', 'c1', { type: 'messageAdded', messageId: `m${i}` });
    expect(pubsub.stats().streams).toBe(0);
    const results: unknown[] = [];
    await expect(
      (async () => {
        for await (const event of slow) results.push(event);
      })(),
    ).rejects.toThrow(/fell 3 events behind/);
    expect(results).toHaveLength(3);
  });

  it('dispose() ends every open stream', async () => {
    pubsub = await createPubSub<ParleyEvents>({ log: silent });
    const stream = pubsub.subscribe('product', 'p1');
    const pending = stream.next();
    await pubsub.dispose();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(await pubsub.subscribe('product', 'p1').next()).toEqual({ value: undefined, done: true });
  });
});
