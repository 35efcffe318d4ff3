import type { Redis } from 'ioredis';
import type { Logger } from '../log.js';
import { openRedis, reportOutages, type RedisClient } from '../redis.js';
import { GAP, type EventMap, type EventStream, type PubSub, type PubSubStats, type WireEvent } from './types.js';
import { ChannelRegistry } from './channels.js';
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

/** Several nodes: Redis pub/sub on a publisher and a subscriber connection (channels.ts keeps who listens where). */
export class RedisEventPubSub<E extends EventMap> extends BasePubSub<E> implements PubSub<E> {
  readonly kind = 'redis';
  readonly redis: RedisClient;
  private readonly subscriber: Redis;
  private readonly registry: ChannelRegistry;
  private resubscribed = 0;
  /** Channels where this node failed to publish an event, until their GAP notice is out. */
  private readonly missed = new Set<string>();
  private missedTooMany = false;
  private noticeTimer: NodeJS.Timeout | undefined;

  constructor(
    target: { url: string; ca: string | undefined },
    prefix: string,
    maxBuffered: number,
    private readonly log: Logger,
  ) {
    super(prefix, maxBuffered);
    // A publish while Redis is down fails at once (the event is lost, the write it announces is not).
    this.redis = openRedis(target.url, { role: 'commands', commandTimeoutMs: 2_000, ca: target.ca });
    // SUBSCRIBE/UNSUBSCRIBE wait for Redis instead of failing; ioredis re-subscribes every channel on reconnect.
    this.subscriber = openRedis(target.url, { role: 'subscriber', ca: target.ca });
    reportOutages([this.redis, this.subscriber], log, {
      down: 'live events: redis unreachable, events are not crossing nodes',
      back: 'live events: redis reachable again',
    });
    this.watchOutages(log);
    // Once it can publish again, this node tells the channels it failed to publish on.
    this.redis.on('ready', () => void this.sendGapNotices());
    this.registry = new ChannelRegistry(this.subscriber);
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
    this.registry.add(this.everyChannel(), (event) => {
      if (isGapNotice(event)) {
        this.holdStreams();
        this.resumeStreams();
      }
    });
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
      await this.redis.publish(channel, JSON.stringify(event));
    } catch (error) {
      this.missedOn(channel);
      throw error;
    }
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
    // What publish sends.
    return { channel: this.channel(topic, id), payload: JSON.stringify(event), sent: () => {} };
  }

  subscribe<K extends keyof E & string>(topic: K, id: string): EventStream<E[K]> {
    if (this.disposed || this.streamsEnded) return this.open<E[K]>(Promise.resolve(), () => undefined);
    const listening = this.registry.add(this.channel(topic, id), (event) => stream.push(isGapNotice(event) ? GAP : (event as E[K])));
    const stream = this.open<E[K]>(listening.subscribed, listening.remove);
    stream.ready.catch((error: Error) => stream.fail(error));
    return stream;
  }

  stats(): PubSubStats {
    return {
      channels: this.registry.channelCount(this.everyChannel()),
      ...this.counts(),
      // A listener kept after its stream closed would show here. The node-wide notice's is not a stream's.
      listeners: this.registry.listeners(this.everyChannel()),
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
