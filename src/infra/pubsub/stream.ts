import { GAP, type EventMap, type EventStream, type Gap, type PubSubStats } from './types.js';

const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/** A queue between a channel listener and one subscriber; not an async generator, so `return()` never waits for an event. */
export class Stream<T> implements EventStream<T> {
  private buffer: (T | Gap)[] = [];
  private waiting: { resolve(result: IteratorResult<T | Gap, undefined>): void; reject(error: Error): void } | undefined;
  private failure: Error | undefined;
  private closed = false;
  /** Set once `ready` has settled successfully. */
  active = false;
  /** Events received while the subscription is being restored, handed on after its GAP. */
  private held: T[] | undefined;

  constructor(
    readonly ready: Promise<void>,
    private readonly maxBuffered: number,
    private readonly release: () => void,
  ) {}

  push(event: T | Gap): void {
    if (this.closed) return;
    if (this.held && event !== GAP) {
      // Past the bound they go: the GAP that comes first covers them.
      if (this.held.length < this.maxBuffered) this.held.push(event);
      else this.held = [];
    } else if (this.waiting) {
      const waiting = this.waiting;
      this.waiting = undefined;
      waiting.resolve({ value: event, done: false });
    } else if (this.buffer.length >= this.maxBuffered) {
      // Memory stays bounded and the subscription stays open: a subscriber this far
      // behind reads what it missed from where it was stored, once it gets here.
      this.buffer = event === GAP ? [GAP] : [GAP, event];
    } else if (event !== GAP || this.buffer.at(-1) !== GAP) {
      this.buffer.push(event);
    }
  }

  /** Until `resume()`, what arrives waits behind the GAP to come. */
  hold(): void {
    this.held ??= [];
  }

  /** A GAP, then what arrived since `hold()`. */
  resume(): void {
    const held = this.held ?? [];
    this.held = undefined;
    this.push(GAP);
    for (const event of held) this.push(event);
  }

  fail(error: Error): void {
    if (this.closed) return;
    this.close();
    if (this.waiting) this.waiting.reject(error);
    else this.failure = error;
    this.waiting = undefined;
  }

  next(): Promise<IteratorResult<T | Gap, undefined>> {
    if (this.buffer.length) return Promise.resolve({ value: this.buffer.shift()!, done: false });
    if (this.failure) {
      const failure = this.failure;
      this.failure = undefined;
      return Promise.reject(failure);
    }
    if (this.closed) return Promise.resolve(DONE);
    return new Promise((resolve, reject) => (this.waiting = { resolve, reject }));
  }

  async return(): Promise<IteratorReturnResult<undefined>> {
    this.close();
    this.buffer = [];
    this.waiting?.resolve(DONE);
    this.waiting = undefined;
    return DONE;
  }

  async throw(error?: unknown): Promise<IteratorResult<T | Gap, undefined>> {
    await this.return();
    throw error;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    this.release();
  }
}

/** What both implementations share: the open streams, their counts, and ending them. */
export abstract class BasePubSub<E extends EventMap> {
  protected readonly streams = new Set<Stream<unknown>>();
  protected disposed = false;
  /** Set by endStreams: a stream opened now ends at once (the node is shutting down). */
  protected streamsEnded = false;

  constructor(
    protected readonly prefix: string,
    protected readonly maxBuffered: number,
  ) {}

  channel(topic: keyof E & string, id: string): string {
    return `${this.prefix}events:${topic}:${id}`;
  }

  protected open<T>(ready: Promise<void>, release: () => void): Stream<T> {
    const stream: Stream<T> = new Stream<T>(ready, this.maxBuffered, () => {
      this.streams.delete(stream as Stream<unknown>);
      release();
    });
    this.streams.add(stream as Stream<unknown>);
    ready.then(
      () => (stream.active = true),
      () => undefined,
    );
    if (this.disposed || this.streamsEnded) void stream.return();
    return stream;
  }

  /** The subscriptions are being restored: what the streams receive now comes after a GAP. */
  protected holdStreams(): void {
    for (const stream of this.streams) stream.hold();
  }

  /** The subscriptions are restored: every open stream may have missed events before this (see GAP). */
  protected resumeStreams(): void {
    for (const stream of this.streams) stream.resume();
  }

  protected counts(): Pick<PubSubStats, 'streams' | 'subscribed'> {
    let subscribed = 0;
    for (const stream of this.streams) if (stream.active) subscribed += 1;
    return { streams: this.streams.size, subscribed };
  }

  async endStreams(): Promise<void> {
    this.streamsEnded = true;
    await Promise.all([...this.streams].map((stream) => stream.return()));
  }
}
