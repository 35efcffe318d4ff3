import type { Redis } from 'ioredis';

/**
 * The channels one subscriber connection listens to, and who listens on each,
 * on ioredis alone (after `@graphql-yoga/redis-event-target`): one SUBSCRIBE
 * per channel however many listen, awaited, and one UNSUBSCRIBE when the last
 * listener leaves — also while the SUBSCRIBE is still pending, which leaves
 * nothing behind. A message is parsed once per node and the frozen object is
 * shared by every listener. ioredis subscribes the channels again after a
 * reconnect (autoResubscribe).
 *
 * Written here rather than taken from graphql-redis-subscriptions, which this
 * replaced: its RedisPubSub kept pending subscriptions and listeners in
 * private fields that Parley had to read (to count listeners, to catch the
 * SUBSCRIBE promises it drops), and it fired UNSUBSCRIBE without handling a
 * rejection, an unhandled rejection (a crash) during an outage or at shutdown.
 */
export class ChannelRegistry {
  private readonly channels = new Map<string, { listeners: Set<(event: object) => void>; subscribed: Promise<void> }>();

  constructor(private readonly subscriber: Redis) {
    subscriber.on('message', (channel: string, raw: string) => {
      const entry = this.channels.get(channel);
      if (!entry) return;
      let event: unknown;
      try {
        event = JSON.parse(raw);
      } catch {
        return; // not one of our JSON messages
      }
      if (event === null || typeof event !== 'object') return;
      Object.freeze(event);
      for (const listener of entry.listeners) listener(event);
    });
  }

  /**
   * Adds a listener to `channel`. `subscribed` settles once Redis acknowledged
   * the SUBSCRIBE (events published from then on reach the listener); it
   * rejects when the SUBSCRIBE failed. `remove()` is safe at any time, once.
   */
  add(channel: string, listener: (event: object) => void): { subscribed: Promise<void>; remove(): void } {
    let entry = this.channels.get(channel);
    if (!entry) {
      const subscribed = this.subscriber.subscribe(channel).then(() => undefined);
      const created = { listeners: new Set<(event: object) => void>(), subscribed };
      // Failed (the connection was closed): its listeners' streams fail on it, and a later add subscribes
      // again. Handled here too, as nobody may be waiting any more: never an unhandled rejection.
      subscribed.catch(() => {
        if (this.channels.get(channel) === created) this.channels.delete(channel);
      });
      entry = created;
      this.channels.set(channel, entry);
    }
    const current = entry;
    // Distinct per add, so the same function added twice is two listeners.
    const own = (event: object) => listener(event);
    current.listeners.add(own);
    let removed = false;
    return {
      subscribed: current.subscribed,
      remove: () => {
        if (removed) return;
        removed = true;
        current.listeners.delete(own);
        if (current.listeners.size > 0 || this.channels.get(channel) !== current) return;
        this.channels.delete(channel);
        // Sent after the SUBSCRIBE on the same connection, so Redis handles them in order.
        this.subscriber.unsubscribe(channel).catch(() => undefined);
      },
    };
  }

  /** Channels listened to. */
  channelCount(except?: string): number {
    return this.channels.size - (except !== undefined && this.channels.has(except) ? 1 : 0);
  }

  /** Listeners registered, over every channel. */
  listeners(except?: string): number {
    let count = 0;
    for (const [channel, entry] of this.channels) if (channel !== except) count += entry.listeners.size;
    return count;
  }
}
