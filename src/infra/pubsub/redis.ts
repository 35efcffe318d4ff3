import { RedisPubSub } from 'graphql-redis-subscriptions';
import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { openRedis, reportOutages } from '../redis.js';
import { GAP, type EventMap, type EventStream, type PubSub, type PubSubStats, type WireEvent } from './types.js';
import { BasePubSub } from './stream.js';

/**
 * Published on a channel after this node failed to publish an event there: its
 * subscribers read what was stored meanwhile (a GAP), since the event itself is
 * gone. No event has this shape (events carry a `type`).
 */
const GAP_NOTICE = JSON.stringify({ gap: 'events of this channel may be missing' });
const isGapNotice = (event: object) => 'gap' in event && !('type' in event);
/** Channels remembered at most; past it one notice on the node-wide channel reaches every stream. */
const MAX_MISSED = 10_000;
const NOTICE_RETRY_MS = 1_000;

/** Several nodes: graphql-redis-subscriptions' RedisPubSub on a publisher and a subscriber connection. */
export class RedisEventPubSub<E extends EventMap> extends BasePubSub<E> implements PubSub<E> {
  readonly kind = 'redis';
  readonly redis: Redis;
  private readonly subscriber: Redis;
  private readonly engine: RedisPubSub;
  /** Streams per channel, counted here because RedisPubSub keeps its own count private. */
  private readonly channels = new Map<string, number>();
  private resubscribed = 0;
  /** Channels where this node failed to publish an event, until their GAP notice is out. */
  private readonly missed = new Set<string>();
  private missedTooMany = false;
  private noticeTimer: NodeJS.Timeout | undefined;

  constructor(
    url: string,
    prefix: string,
    maxBuffered: number,
    private readonly log: Logger,
  ) {
    super(prefix, maxBuffered);
    // A publish while Redis is down fails at once (the event is lost, the write it announces is not).
    this.redis = openRedis(url, { role: 'commands', commandTimeoutMs: 2_000 });
    // SUBSCRIBE/UNSUBSCRIBE wait for Redis instead of failing; ioredis re-subscribes every channel on reconnect.
    this.subscriber = openRedis(url, { role: 'subscriber' });
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
    reportOutages([this.redis, this.subscriber], log, {
      down: 'live events: redis unreachable, events are not crossing nodes',
      back: 'live events: redis reachable again',
    });
    this.watchOutages(log);
    // Once it can publish again, this node tells the channels it failed to publish on.
    this.redis.on('ready', () => void this.sendGapNotices());
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
    // Every stream listens to the node-wide notice (sent when too many channels missed events to name them).
    const every = this.engine.subscribe(this.everyChannel(), (event: unknown) => {
      if (event !== null && typeof event === 'object' && isGapNotice(event)) {
        this.holdStreams();
        this.resumeStreams();
      }
    });
    every.catch(() => undefined);
    this.unhandledSubscribe(this.everyChannel());
    await Promise.allSettled([this.redis.connect(), this.subscriber.connect()]);
  }

  /**
   * A failed publish loses the event for every node, and the subscribers elsewhere
   * may never have lost their own connection (so they replay nothing): this node
   * remembers the channel and, once Redis takes its commands again, publishes a
   * GAP notice there. Found by killing a Sentinel-watched master: the subscribers'
   * node was back on the new master (its GAP replayed) before the writers' node
   * could publish again, and the events written in between reached no one.
   */
  async publish<K extends keyof E & string>(topic: K, id: string, event: E[K]): Promise<void> {
    if (this.disposed) return;
    const channel = this.channel(topic, id);
    try {
      await this.engine.publish(channel, event);
    } catch (error) {
      this.missedOn(channel);
      throw error;
    }
  }

  /**
   * RedisPubSub keeps a promise per pending SUBSCRIBE that nothing awaits: a SUBSCRIBE that
   * fails (the connection closed while Redis was down) would reject it unhandled.
   */
  private unhandledSubscribe(channel: string): void {
    const pending = (this.engine as unknown as { subsPendingRefsMap: Map<string, { pending: Promise<unknown> }> }).subsPendingRefsMap;
    pending.get(channel)?.pending.catch(() => undefined);
  }

  private everyChannel(): string {
    return `${this.prefix}gaps`;
  }

  private missedOn(channel: string): void {
    if (this.missed.size < MAX_MISSED) this.missed.add(channel);
    else this.missedTooMany = true;
    this.retryNotices();
  }

  private retryNotices(): void {
    if (this.noticeTimer || this.disposed) return;
    this.noticeTimer = setTimeout(() => {
      this.noticeTimer = undefined;
      void this.sendGapNotices();
    }, NOTICE_RETRY_MS);
    this.noticeTimer.unref();
  }

  private async sendGapNotices(): Promise<void> {
    if (this.disposed || (this.missed.size === 0 && !this.missedTooMany)) return;
    if (this.redis.status !== 'ready') return this.retryNotices();
    const tooMany = this.missedTooMany;
    const channels = tooMany ? [this.everyChannel()] : [...this.missed];
    try {
      const pipeline = this.redis.pipeline();
      for (const channel of channels) pipeline.publish(channel, GAP_NOTICE);
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([error]) => error);
      if (failed) throw failed[0];
    } catch {
      return this.retryNotices();
    }
    if (tooMany) {
      this.missedTooMany = false;
      this.missed.clear();
    } else {
      for (const channel of channels) this.missed.delete(channel);
    }
    this.log.info('live events: told the channels this node could not publish on to read what was stored', {
      channels: tooMany ? 'all' : channels.length,
    });
    if (this.missed.size > 0 || this.missedTooMany) this.retryNotices();
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
      if (event !== null && typeof event === 'object') stream.push(isGapNotice(event) ? GAP : (event as E[K]));
    });
    this.unhandledSubscribe(channel);
    const stream = this.open<E[K]>(
      subscription.then(() => undefined),
      () => {
        const left = (this.channels.get(channel) ?? 1) - 1;
        if (left > 0) this.channels.set(channel, left);
        else this.channels.delete(channel);
        // Only an acknowledged subscription may be given back: RedisPubSub would keep a pending
        // one's listener (and the Redis channel) for ever.
        subscription.then(
          (subId) => this.engine.unsubscribe(subId),
          () => undefined,
        );
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
      // The node-wide notice's listener is not a stream's.
      listeners: Object.values((this.engine as unknown as { subscriptionMap: Record<string, [string, unknown]> }).subscriptionMap).filter(
        ([channel]) => channel !== this.everyChannel(),
      ).length,
      connected: this.redis.status === 'ready' && this.subscriber.status === 'ready',
      resubscribed: this.resubscribed,
    };
  }

  async dispose(): Promise<void> {
    this.disposed = true;
    clearTimeout(this.noticeTimer);
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
