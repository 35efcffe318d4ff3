import { RedisPubSub } from 'graphql-redis-subscriptions';
import { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import type { EventMap, EventStream, PubSub, PubSubStats, WireEvent } from './index.js';
import { BasePubSub } from './stream.js';

/** Several nodes: graphql-redis-subscriptions' RedisPubSub on a publisher and a subscriber connection. */
export class RedisEventPubSub<E extends EventMap> extends BasePubSub<E> implements PubSub<E> {
  readonly kind = 'redis';
  readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly engine: RedisPubSub;
  /** Streams per channel, counted here because RedisPubSub keeps its own count private. */
  private readonly channels = new Map<string, number>();
  private resubscribed = 0;

  constructor(url: string, prefix: string, maxBuffered: number, log: Logger) {
    super(prefix, maxBuffered);
    const common = {
      connectTimeout: 2_000,
      // Reconnect for ever, backing off to 2 s: Redis coming back must be noticed.
      retryStrategy: (times: number) => Math.min(50 * times, 2_000),
      lazyConnect: true,
    };
    // A publish while Redis is down fails at once (the event is lost, the write it announces is not).
    this.redis = new Redis(url, { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: 2_000 });
    // SUBSCRIBE/UNSUBSCRIBE wait for Redis instead of failing; ioredis re-subscribes every channel on reconnect.
    this.subscriber = new Redis(url, { ...common, autoResubscribe: true, maxRetriesPerRequest: null });
    // RedisPubSub fires UNSUBSCRIBE/PUNSUBSCRIBE and drops the promise; one rejected during an
    // outage or at shutdown would be an unhandled rejection, which ends a Node process.
    for (const name of ['unsubscribe', 'punsubscribe'] as const) {
      const command = this.subscriber[name].bind(this.subscriber) as (...args: unknown[]) => Promise<unknown>;
      (this.subscriber as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => {
        const reply = command(...args);
        reply.catch(() => undefined);
        return reply;
      };
    }
    let reported = false;
    for (const connection of [this.redis, this.subscriber]) {
      // ioredis emits 'error' on every failed reconnect: log the first of each outage.
      connection.on('error', (error: Error) => {
        if (!reported) log.warn('live events: redis unreachable, events are not crossing nodes', { error: error.message });
        reported = true;
      });
      connection.on('ready', () => {
        if (reported) log.info('live events: redis reachable again');
        reported = false;
      });
    }
    this.watchOutages(log);
    this.engine = new RedisPubSub({
      publisher: this.redis,
      subscriber: this.subscriber,
      // Parsed once per message and node, and shared (frozen) by every local subscriber.
      deserializer: (raw) => Object.freeze(JSON.parse(String(raw))),
    });
  }

  /**
   * Events published while the subscriber connection was down never reach this
   * node: once ioredis has it back and its channels subscribed again, every
   * open stream is given a GAP, so its subscriber reads what was stored
   * meanwhile. The GAP must come after Redis acknowledged the SUBSCRIBEs (an
   * event published between the subscriber's read and the SUBSCRIBE would be
   * neither read nor received) and before any event received after them (the
   * subscriber places the missing events by those it received). ioredis writes
   * the SUBSCRIBEs as it turns ready, before its 'ready' event: from that
   * event the streams hold what they receive, and the PING sent then is
   * answered once the SUBSCRIBEs are.
   */
  private watchOutages(log: Logger): void {
    let interrupted = false;
    this.subscriber.on('close', () => (interrupted = true));
    this.subscriber.on('ready', () => {
      if (!interrupted) return;
      this.holdStreams();
      // A PING cut by another drop is sent again after the next re-subscribe: still in order.
      this.subscriber.ping().then(
        () => {
          if (!interrupted || this.disposed) return;
          interrupted = false;
          this.resubscribed += 1;
          this.resumeStreams();
          log.info('live events: channels subscribed again, open subscriptions catch up from the database', { streams: this.streams.size });
        },
        () => undefined,
      );
    });
  }

  /** Starts even when Redis is down: ioredis keeps trying, and events flow once it is back. */
  async connect(): Promise<void> {
    await Promise.allSettled([this.redis.connect(), this.subscriber.connect()]);
  }

  async publish<K extends keyof E & string>(topic: K, id: string, event: E[K]): Promise<void> {
    if (this.disposed) return;
    await this.engine.publish(this.channel(topic, id), event);
  }

  wire<K extends keyof E & string>(topic: K, id: string, event: E[K]): WireEvent | undefined {
    if (this.disposed) return undefined;
    // What RedisPubSub's publish sends (its default serializer).
    return { channel: this.channel(topic, id), payload: JSON.stringify(event), sent: () => {} };
  }

  subscribe<K extends keyof E & string>(topic: K, id: string): EventStream<E[K]> {
    if (this.disposed || this.streamsEnded) return this.open<E[K]>(Promise.resolve(), () => undefined);
    const channel = this.channel(topic, id);
    this.channels.set(channel, (this.channels.get(channel) ?? 0) + 1);
    const subscription = this.engine.subscribe(channel, (event: unknown) => {
      // Anything but one of our JSON objects on our channel is not an event.
      if (event !== null && typeof event === 'object') stream.push(event as E[K]);
    });
    // RedisPubSub also keeps a promise per pending SUBSCRIBE that nothing awaits: a SUBSCRIBE that
    // fails (the connection closed while Redis was down) would reject it unhandled.
    const pending = (this.engine as unknown as { subsPendingRefsMap: Map<string, { pending: Promise<unknown> }> }).subsPendingRefsMap;
    pending.get(channel)?.pending.catch(() => undefined);
    const stream = this.open<E[K]>(
      subscription.then(() => undefined),
      () => {
        const left = (this.channels.get(channel) ?? 1) - 1;
        if (left > 0) this.channels.set(channel, left);
        else this.channels.delete(channel);
        // Only an acknowledged subscription may be given back: RedisPubSub would keep a pending
        // one's listener (and the Redis channel) for ever.
        subscription.then((subId) => this.engine.unsubscribe(subId), () => undefined);
      },
    );
    stream.ready.catch((error: Error) => stream.fail(error));
    return stream;
  }

  stats(): PubSubStats {
    return {
      channels: this.channels.size,
      ...this.counts(),
      // RedisPubSub's own registry (private): a listener it kept after an unsubscribe shows here.
      listeners: Object.keys((this.engine as unknown as { subscriptionMap: object }).subscriptionMap).length,
      connected: this.redis.status === 'ready' && this.subscriber.status === 'ready',
      resubscribed: this.resubscribed,
    };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    await this.endStreams();
    // QUIT after the UNSUBSCRIBEs just queued; a Redis that does not answer is cut.
    await Promise.all(
      [this.redis, this.subscriber].map(async (connection) => {
        if (connection.status === 'end') return;
        let timer: NodeJS.Timeout | undefined;
        const quit = connection.status === 'ready' ? connection.quit().catch(() => undefined) : Promise.resolve();
        await Promise.race([quit, new Promise((resolve) => (timer = setTimeout(resolve, 1_000)))]);
        clearTimeout(timer);
        connection.disconnect();
      }),
    );
  }
}
