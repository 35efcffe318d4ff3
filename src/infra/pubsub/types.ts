import type { RedisClient } from '../redis.js';
import type { Logger } from '../log.js';

/** What the live-event pub/sub offers (index.ts picks the implementation: memory.ts, redis.ts). */

/** Event payload type per topic; payloads are small JSON objects (ids, deltas). */
export type EventMap = { [topic: string]: object };

/**
 * Yielded by a stream where events may be missing: its subscription was cut
 * (Redis unreachable) and is acknowledged again, or its subscriber fell
 * `maxBuffered` events behind and what it had not read was dropped. What
 * follows is live again; what fell in between is lost unless the subscriber
 * reads it from where it was stored.
 */
export const GAP: unique symbol = Symbol('live events may be missing here');
export type Gap = typeof GAP;

export interface EventStream<T> extends AsyncIterableIterator<T | Gap> {
  /** Settles once events published from now on will be delivered (Redis acknowledged SUBSCRIBE). */
  readonly ready: Promise<void>;
  /** Ends the stream at once, even while a `next()` is pending, and releases the channel. */
  return(): Promise<IteratorReturnResult<undefined>>;
}

/** A PUBLISH to make: what `publish` would send. */
export interface WireEvent {
  channel: string;
  payload: string;
  /** Counts the event as published (metrics). */
  sent(): void;
}

export interface PubSubStats {
  /** Channels this process listens to. */
  channels: number;
  /** Open event streams (one per live subscription). */
  streams: number;
  /** Open streams whose channel subscription is acknowledged: events published now reach them. */
  subscribed: number;
  /** Message listeners registered with the channels (one per stream; more would be a leak). */
  listeners: number;
  /** False while events cannot cross nodes (Redis unreachable); always true in-process. */
  connected: boolean;
  /** Outages after which the channels were subscribed again and every open stream was given a GAP. */
  resubscribed: number;
}

export interface PubSub<E extends EventMap> {
  readonly kind: 'memory' | 'redis';
  /** The publishing connection, for the few commands that go with events (typing state); none in-process. */
  readonly redis: RedisClient | undefined;
  channel(topic: keyof E & string, id: string): string;
  publish<K extends keyof E & string>(topic: K, id: string, event: E[K]): Promise<void>;
  /**
   * The event as Redis pub/sub carries it, for a caller that publishes it inside
   * its own MULTI or script (one round trip for a write and its event); undefined
   * in-process. The caller calls `sent()` once Redis ran the PUBLISH.
   */
  wire<K extends keyof E & string>(topic: K, id: string, event: E[K]): WireEvent | undefined;
  subscribe<K extends keyof E & string>(topic: K, id: string): EventStream<E[K]>;
  stats(): PubSubStats;
  /**
   * Ends every open stream (their subscriptions complete) and every one opened
   * later, while publishing goes on: a node shutting down completes its
   * subscribers, then lets its last writes announce themselves.
   */
  endStreams(): Promise<void>;
  /** Ends every open stream and closes the connections. */
  dispose(): Promise<void>;
}

export interface PubSubOptions {
  /** Without a URL, events stay in this process. */
  redisUrl?: string | undefined;
  /** PEM of the CAs a TLS Redis's certificate must chain to (see openRedis). */
  redisCa?: string | undefined;
  /** @default 'parley:' */
  prefix?: string;
  log: Logger;
  /** Events a stream holds for a subscriber that does not keep up; past it they are dropped for a GAP. @default 10000 */
  maxBuffered?: number;
}
