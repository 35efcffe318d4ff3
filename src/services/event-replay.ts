import { LRUCache } from 'lru-cache';
import { DatabaseUnavailableError } from '../errors.js';
import { isDatabaseUnavailable } from '../infra/db.js';
import { GAP, type EventStream } from '../infra/pubsub/index.js';
import { readFromPrimary } from '../infra/read-routing.js';

/**
 * Live events that are never lost when they announce a stored row. A
 * subscription reads, from the database, what was stored after a place (the
 * `after` cursor), and again after every GAP of its live stream (a pub/sub
 * outage, or a subscriber that fell too far behind), before it takes further
 * live events; what arrives both ways is delivered once. Events that announce
 * nothing stored (typing, reply pieces) may be lost.
 *
 * Where a replay after a GAP starts. Messages of a conversation are stored one
 * at a time (their (createdAt, id) only grows), ratings are not (createdAt is
 * a statement's start, an upsert moves it), and an event may be published a
 * little after a later row's. So a replay does not start at the last row
 * delivered but at `MARGIN_MS` before the newest stored time received live
 * (or, before any, the database's clock when the subscription started), and
 * skips what it delivered already. That is sound while no event is published
 * later than MARGIN_MS after its statement began: every event this subscriber
 * received live was published before any that the outage swallowed, so its
 * row is at most MARGIN_MS newer than theirs. Messages never go back past the
 * place the subscription started from (its cursor, or the last message then).
 * What was delivered is remembered only as far back as a replay reads.
 */

/** A stored row's place in its order: the database's time for it, then its id. */
export interface StoredPlace {
  at: Date;
  id: string;
}

/** One kind of stored row a subscription replays (a conversation's messages, ratings). */
export interface StoredKind<E> {
  /** Distinguishes kinds in what was delivered. */
  readonly name: string;
  /** The row a live event announces; undefined for an event that is not of this kind. */
  placeOf(event: E): StoredPlace | undefined;
  /** Up to `take` rows after `after`, in (at, id) order. */
  read(after: StoredPlace, take: number): Promise<StoredPlace[]>;
  /** The event that announces a row. */
  event(row: StoredPlace): E;
  /** A replay after a GAP never goes back to this place or before it (rows older than the subscription). */
  floor?: StoredPlace | undefined;
}

export const MARGIN_MS = 30_000;
/** The greatest uuid: a place after every row of its time. */
const LAST_ID = 'ffffffff-ffff-ffff-ffff-ffffffffffff';
const DONE: IteratorReturnResult<undefined> = Object.freeze({ value: undefined, done: true });

/**
 * One node's replays. After an outage every open subscription replays at
 * once: their reads queue here for `concurrency` slots rather than each
 * taking a database connection at the same moment (they cannot share one
 * query: each replays from its own place). A slot is held for one page, not a
 * whole replay, so a subscriber that reads slowly never holds up the others.
 * And the subscribers that replay the same row get the same (frozen) event,
 * as a live event is one object for all: the event's resolution is then done
 * once for all of them that ask the same (see useEventContext), not once each.
 */
export class Replays {
  private running = 0;
  private readonly queue: (() => void)[] = [];
  // Kept for the moments the subscriptions of one outage replay together, not longer: an event's
  // resolution lives as long as the event (see eventContext).
  private readonly events = new LRUCache<string, object>({ max: 1_000, ttl: 10_000 });
  /** The most reads that ran at once, and how many ran in all. */
  readonly stats = { peak: 0, reads: 0 };

  constructor(readonly concurrency: number) {}

  async read<T>(read: () => Promise<T>): Promise<T> {
    if (this.running >= this.concurrency) await new Promise<void>((resolve) => this.queue.push(resolve));
    else this.running += 1;
    this.stats.peak = Math.max(this.stats.peak, this.running);
    this.stats.reads += 1;
    try {
      // A replica may not have the rows yet whose events were lost.
      return await readFromPrimary(read);
    } finally {
      // The slot passes to the next in line, or is given back.
      const next = this.queue.shift();
      if (next) next();
      else this.running -= 1;
    }
  }

  event<E extends object>(key: string, make: () => E): E {
    let event = this.events.get(key) as E | undefined;
    if (!event) this.events.set(key, (event = Object.freeze(make())));
    return event;
  }
}

interface Replay<E> {
  kind: StoredKind<E>;
  after: StoredPlace;
  page: StoredPlace[];
  last: boolean;
}

export interface CatchUpOptions<E> {
  kinds: StoredKind<E>[];
  /** The database's clock once the live stream was subscribed. */
  since: Date;
  /** Rows of the first kind stored after this place come before any live event (the `after` cursor). */
  replayFrom?: StoredPlace | undefined;
  replays: Replays;
  /** @default 100 */
  pageSize?: number;
}

export class CatchUpStream<E extends object> implements AsyncIterableIterator<E> {
  private readonly kinds: StoredKind<E>[];
  private readonly shared: Replays;
  private readonly pageSize: number;
  private readonly replays: Replay<E>[] = [];
  /** Stored rows delivered (kind, id, time) whose time is within MARGIN_MS of `newest`: a replay may read them again. */
  private readonly delivered = new Map<string, number>();
  /** The newest stored time received live. */
  private newest: number;
  private closed = false;

  constructor(
    private readonly live: EventStream<E>,
    options: CatchUpOptions<E>,
  ) {
    this.kinds = options.kinds;
    this.shared = options.replays;
    this.pageSize = options.pageSize ?? 100;
    this.newest = options.since.getTime();
    if (options.replayFrom) this.replays.push({ kind: options.kinds[0]!, after: options.replayFrom, page: [], last: false });
  }

  async next(): Promise<IteratorResult<E, undefined>> {
    for (;;) {
      if (this.closed) return DONE;
      const replay = this.replays[0];
      if (replay) {
        const row = await this.replayed(replay);
        if (row) return { value: this.shared.event(keyOf(replay.kind, row), () => replay.kind.event(row)), done: false };
        continue;
      }
      const result = await this.live.next();
      if (result.done) return result;
      if (result.value === GAP) {
        this.replayGap();
        continue;
      }
      const event = result.value;
      if (!this.isNew(event)) continue;
      return { value: event, done: false };
    }
  }

  async return(): Promise<IteratorReturnResult<undefined>> {
    this.closed = true;
    this.replays.length = 0;
    return this.live.return();
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  /** The replay's next row not delivered yet; undefined when it moved on to another replay. */
  private async replayed(replay: Replay<E>): Promise<StoredPlace | undefined> {
    if (!replay.page.length) {
      if (replay.last) {
        this.replays.shift();
        this.forgetOld();
        return undefined;
      }
      try {
        replay.page = await this.shared.read(() => replay.kind.read(replay.after, this.pageSize));
      } catch (error) {
        // The subscription ends with it, and graphql-ws sends its message as it is: never the driver's.
        throw isDatabaseUnavailable(error) ? new DatabaseUnavailableError() : error;
      }
      // A short page is the last: no read to find nothing more.
      replay.last = replay.page.length < this.pageSize;
      if (this.closed) return undefined;
    }
    const row = replay.page.shift();
    if (!row) return undefined;
    replay.after = row;
    return this.deliver(replay.kind, row) ? row : undefined;
  }

  /** Every kind, from MARGIN_MS before the newest stored time received live (see the top of this file). */
  private replayGap(): void {
    const from = { at: new Date(this.newest - MARGIN_MS), id: LAST_ID };
    for (const kind of this.kinds) {
      const after = kind.floor && compare(kind.floor, from) > 0 ? kind.floor : from;
      this.replays.push({ kind, after, page: [], last: false });
    }
  }

  private isNew(event: E): boolean {
    for (const kind of this.kinds) {
      const place = kind.placeOf(event);
      if (!place) continue;
      if (!this.deliver(kind, place)) return false;
      const at = place.at.getTime();
      if (at > this.newest) {
        this.newest = at;
        this.forgetOld();
      }
      return true;
    }
    return true;
  }

  /** False if the row was delivered already. */
  private deliver(kind: StoredKind<E>, row: StoredPlace): boolean {
    const key = keyOf(kind, row);
    if (this.delivered.has(key)) return false;
    this.delivered.set(key, row.at.getTime());
    return true;
  }

  /** Rows older than any replay reads can be forgotten (the map is roughly in time order). */
  private forgetOld(): void {
    const horizon = this.newest - MARGIN_MS;
    for (const [key, at] of this.delivered) {
      if (at > horizon) break;
      this.delivered.delete(key);
    }
  }
}

// A rating changed (upserted) is a new event for the same id: its time is part of what was delivered.
function keyOf(kind: StoredKind<unknown>, row: StoredPlace): string {
  return `${kind.name}:${row.id}:${row.at.getTime()}`;
}

function compare(a: StoredPlace, b: StoredPlace): number {
  return a.at.getTime() - b.at.getTime() || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
