import type { EventMap, EventStream, PubSub, PubSubStats } from './types.js';
import { BasePubSub } from './stream.js';

/** One process: a listener set per channel. */
export class MemoryPubSub<E extends EventMap> extends BasePubSub<E> implements PubSub<E> {
  readonly kind = 'memory';
  readonly redis = undefined;
  private readonly listeners = new Map<string, Set<(event: object) => void>>();

  async publish<K extends keyof E & string>(topic: K, id: string, event: E[K]): Promise<void> {
    const listeners = this.listeners.get(this.channel(topic, id));
    if (!listeners) return;
    // One frozen object for every subscriber, as a Redis message is parsed once per node.
    const shared = Object.freeze({ ...event });
    for (const listener of [...listeners]) listener(shared);
  }

  wire(): undefined {
    return undefined;
  }

  subscribe<K extends keyof E & string>(topic: K, id: string): EventStream<E[K]> {
    const channel = this.channel(topic, id);
    let listeners = this.listeners.get(channel);
    if (!listeners) this.listeners.set(channel, (listeners = new Set()));
    const set = listeners;
    const listener = (event: object) => stream.push(event as E[K]);
    const stream = this.open<E[K]>(Promise.resolve(), () => {
      set.delete(listener);
      if (!set.size && this.listeners.get(channel) === set) this.listeners.delete(channel);
    });
    set.add(listener);
    return stream;
  }

  stats(): PubSubStats {
    let listeners = 0;
    for (const set of this.listeners.values()) listeners += set.size;
    return { channels: this.listeners.size, ...this.counts(), listeners, connected: true, resubscribed: 0 };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await this.endStreams();
  }
}
