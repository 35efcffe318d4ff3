import { afterEach, describe, expect, inject, it } from 'vitest';
import type { Logger } from '../../src/infra/log.js';
import { createPubSub, GAP, type EventStream } from '../../src/infra/pubsub/index.js';
import type { ConversationEvent, MessageAddedEvent, ParleyEvents, ParleyPubSub } from '../../src/services/events.js';
import { eventually, uniquePrefix } from '../helpers/live.js';
import { within } from '../helpers/time.js';

/**
 * A node that cannot publish (its own Redis connection cut) while the other
 * nodes' subscriptions stay up loses the event for all of them, and they have
 * no outage of their own to replay after: once it can publish again it sends a
 * GAP notice on each channel it failed on, and their streams replay from the
 * database (see event-replay.ts). Found killing a Sentinel-watched master.
 */

const redisUrl = inject('redisUrl');
const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, always() {} };
const added = (messageId: string, conversationId: string): MessageAddedEvent => ({
  type: 'messageAdded',
  messageId,
  conversationId,
  at: new Date().toISOString(),
});

describe.skipIf(!redisUrl)('a publish that failed is followed by a GAP notice on its channel', () => {
  const opened: ParleyPubSub[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((p) => p.dispose()));
  });
  const node = async (prefix: string) => {
    const pubsub = await createPubSub<ParleyEvents>({ redisUrl, prefix, log: silent });
    opened.push(pubsub);
    return pubsub;
  };
  const nextOf = (stream: EventStream<ConversationEvent>) => within(stream.next(), 5_000, 'the next event');

  it('reaches the subscribers of the channels it failed on, and only those; later events flow live', async () => {
    const prefix = uniquePrefix('publish-gaps');
    const writer = await node(prefix);
    const reader = await node(prefix);
    const missed = reader.subscribe('conversation', 'c1');
    const untouched = reader.subscribe('conversation', 'c2');
    await Promise.all([missed.ready, untouched.ready]);

    // The writer's publishing connection goes; the reader's subscriber never does.
    writer.redis!.disconnect();
    await expect(writer.publish('conversation', 'c1', added('m1', 'c1'))).rejects.toThrow();
    await expect(writer.publish('conversation', 'c1', added('m2', 'c1'))).rejects.toThrow();
    await eventually(() => writer.redis!.status === 'end', 'the writer cut off');
    await writer.redis!.connect();
    await eventually(() => writer.redis!.status === 'ready', 'the writer can publish again');

    expect((await nextOf(missed)).value).toBe(GAP);
    await writer.publish('conversation', 'c1', added('m3', 'c1'));
    expect((await nextOf(missed)).value).toMatchObject({ messageId: 'm3' });
    // c2 missed nothing: its next event is the next one published there, no GAP before it.
    await writer.publish('conversation', 'c2', added('m4', 'c2'));
    expect((await nextOf(untouched)).value).toMatchObject({ messageId: 'm4' });
    expect(reader.stats().listeners).toBe(2);
  });
});
