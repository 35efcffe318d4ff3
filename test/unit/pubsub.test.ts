import { afterEach, describe, expect, it } from 'vitest';
import { createPubSub, GAP } from '../../src/infra/pubsub/index.js';
import type { Logger } from '../../src/infra/log.js';
import { Stream } from '../../src/infra/pubsub/stream.js';
import type { MessageAddedEvent, ParleyEvents, ParleyPubSub } from '../../src/services/events.js';

// The in-process pub/sub (embedded mode); the Redis one is tested against a real
// Redis in test/integration/live-*.test.ts.

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, always() {} };
const added = (messageId: string, conversationId = 'c1'): MessageAddedEvent => ({
  type: 'messageAdded',
  messageId,
  conversationId,
  at: '2025-01-01T00:00:00.000Z',
});
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
    expect(pubsub.stats()).toEqual({ channels: 1, streams: 1, subscribed: 1, listeners: 1, connected: true, resubscribed: 0 });
    const pending = stream.next();
    await stream.return();
    expect(await pending).toEqual({ value: undefined, done: true });
    expect(pubsub.stats()).toEqual({ channels: 0, streams: 0, subscribed: 0, listeners: 0, connected: true, resubscribed: 0 });
  });

  it("delivers one frozen object to every subscriber of the channel, and nothing to another channel's", async () => {
    pubsub = await createPubSub<ParleyEvents>({ log: silent });
    const one = pubsub.subscribe('conversation', 'c1');
    const two = pubsub.subscribe('conversation', 'c1');
    const other = pubsub.subscribe('conversation', 'c2');
    await pubsub.publish('conversation', 'c1', added('m1'));
    const [a, b] = [(await one.next()).value, (await two.next()).value];
    expect(a).toEqual(added('m1'));
    expect(a).toBe(b);
    expect(Object.isFrozen(a)).toBe(true);
    await pubsub.publish('conversation', 'c2', added('m2', 'c2'));
    expect((await other.next()).value).toEqual(added('m2', 'c2'));
  });

  it('a subscriber that falls too far behind keeps its subscription: what it had not read gives way to a GAP', async () => {
    pubsub = await createPubSub<ParleyEvents>({ log: silent, maxBuffered: 3 });
    const slow = pubsub.subscribe('conversation', 'c1');
    for (let i = 0; i < 5; i++) await pubsub.publish('conversation', 'c1', added(`m${i}`));
    expect(pubsub.stats().streams).toBe(1);
    const read = async (n: number) => {
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) out.push((await slow.next()).value);
      return out;
    };
    // m0..m2 filled the buffer, m3 dropped them for a GAP, m4 fits behind it.
    expect(await read(3)).toEqual([GAP, added('m3'), added('m4')]);
    await pubsub.publish('conversation', 'c1', added('m5'));
    expect(await read(1)).toEqual([added('m5')]);
  });

  it('a stream on hold keeps what arrives behind the GAP it is resumed with, and never gives two GAPs in a row', async () => {
    const stream = new Stream<string>(Promise.resolve(), 10, () => {});
    stream.push('before');
    stream.push(GAP);
    stream.push(GAP);
    stream.hold();
    stream.push('while restoring');
    stream.resume();
    stream.push('after');
    const out: unknown[] = [];
    for (let i = 0; i < 4; i++) out.push((await stream.next()).value);
    expect(out).toEqual(['before', GAP, 'while restoring', 'after']);
    // A consumer already waiting gets the GAP at once.
    const waiting = stream.next();
    stream.hold();
    stream.resume();
    expect((await waiting).value).toBe(GAP);
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
