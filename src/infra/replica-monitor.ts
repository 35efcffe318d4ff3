import type pg from 'pg';

/**
 * Decides which streaming replicas may take reads, by WAL positions.
 *
 * Every `intervalMs` (PARLEY_REPLICA_MAX_LAG_MS / 4) one check samples the
 * primary's WAL insert position, then each replica's replay position. A replica
 * is usable when, at this check, it has replayed everything the primary had
 * written at the previous check: whatever was committed before that sample is
 * visible there. That guarantee is kept for at most `maxLagMs` after the sample
 * it rests on, so with checks on time (one per interval) a replica read is at
 * most two intervals behind, and a late, slow or failed check never lets one
 * be more than `maxLagMs` behind: it just stops being usable. A replica that
 * does not answer (or is not a standby) is unusable until a check succeeds.
 *
 * The checks use the pools directly (not Prisma): they are no request's
 * statements. They never overlap, and the timer does not keep the process up.
 */

export interface ReplicaStatus {
  /** `replica-0`, `replica-1`, … in DATABASE_REPLICA_URLS order. */
  name: string;
  usable: boolean;
  /** WAL bytes the replica had not replayed at the last check (null before one succeeded). */
  lagBytes: number | null;
  /** Milliseconds since its last successful check (null: none yet). */
  checkedMsAgo: number | null;
  /** Why it is unusable, when it failed to answer. */
  error?: string;
}

/** A pool the monitor asks, and the question it has not had an answer to yet. */
interface Probe {
  pool: pg.Pool;
  asking: Promise<unknown> | undefined;
}

interface Replica extends Probe {
  name: string;
  /** Reads may go there until then (ms epoch); 0 = not now. */
  usableUntil: number;
  lagBytes: number | null;
  checkedAt: number | null;
  error: string | undefined;
}

interface Sample {
  lsn: bigint;
  at: number;
}

export class ReplicaMonitor {
  private readonly replicas: Replica[];
  private readonly primary: Probe;
  private previous: Sample | undefined;
  private walLayout: { blockSize: bigint; segmentSize: bigint } | undefined;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private next = 0;

  constructor(
    primary: pg.Pool,
    replicas: { name: string; pool: pg.Pool }[],
    private readonly options: { intervalMs: number; maxLagMs: number },
  ) {
    this.primary = { pool: primary, asking: undefined };
    this.replicas = replicas.map((r) => ({ ...r, usableUntil: 0, lagBytes: null, checkedAt: null, error: undefined, asking: undefined }));
  }

  /** Checks now, then every interval. */
  start(): Promise<void> {
    return this.check();
  }

  /** One check; joins the one running, if any. */
  check(): Promise<void> {
    this.running ??= this.run().finally(() => {
      this.running = undefined;
      this.schedule();
    });
    return this.running;
  }

  /** The next replica to read from, round-robin over the usable ones. */
  pick(): number | undefined {
    const now = Date.now();
    const count = this.replicas.length;
    for (let step = 0; step < count; step++) {
      const index = (this.next + step) % count;
      if (this.replicas[index]!.usableUntil > now) {
        this.next = (index + 1) % count;
        return index;
      }
    }
    return undefined;
  }

  /** A replica failed a read: no more reads there until a check succeeds. */
  failed(index: number, error: unknown): void {
    const replica = this.replicas[index];
    if (!replica) return;
    replica.usableUntil = 0;
    replica.error = error instanceof Error ? error.message : String(error);
  }

  status(): ReplicaStatus[] {
    const now = Date.now();
    return this.replicas.map((r) => ({
      name: r.name,
      usable: r.usableUntil > now,
      lagBytes: r.lagBytes,
      checkedMsAgo: r.checkedAt === null ? null : now - r.checkedAt,
      ...(r.error ? { error: r.error } : {}),
    }));
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.running?.catch(() => undefined);
  }

  private schedule(): void {
    if (this.stopped) return;
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.check(), this.options.intervalMs);
    this.timer.unref();
  }

  private async run(): Promise<void> {
    if (this.stopped) return;
    const { intervalMs, maxLagMs } = this.options;
    const at = Date.now();
    let current: Sample;
    try {
      this.walLayout ??= await this.layout(intervalMs);
      const [row] = await this.ask<{ lsn: string }>(this.primary, PRIMARY_LSN, intervalMs);
      current = { lsn: this.normalized(parseLsn(row!.lsn)!), at };
    } catch (error) {
      // Without the primary's position nothing can be vouched for: the replicas age out.
      for (const replica of this.replicas) replica.error = `primary position unknown: ${message(error)}`;
      return;
    }
    // The previous sample, unless it is too old to bound anything (then this one: stricter).
    const basis = this.previous && current.at - this.previous.at < maxLagMs ? this.previous : current;
    await Promise.all(
      this.replicas.map(async (replica) => {
        try {
          const [row] = await this.ask<{ lsn: string | null }>(replica, REPLICA_LSN, intervalMs);
          const replay = parseLsn(row?.lsn ?? null);
          if (replay === null) throw new Error('not a standby (pg_last_wal_replay_lsn() is null)');
          replica.usableUntil = replay >= basis.lsn ? basis.at + maxLagMs : 0;
          replica.lagBytes = Number(current.lsn > replay ? current.lsn - replay : 0n);
          replica.checkedAt = Date.now();
          replica.error = undefined;
        } catch (error) {
          replica.usableUntil = 0;
          replica.error = message(error);
        }
      }),
    );
    this.previous = current;
  }

  private async layout(timeoutMs: number): Promise<{ blockSize: bigint; segmentSize: bigint }> {
    const rows = await this.ask<{ name: string; setting: string }>(this.primary, WAL_LAYOUT, timeoutMs);
    const setting = (name: string) => BigInt(rows.find((r) => r.name === name)!.setting);
    return { blockSize: setting('wal_block_size'), segmentSize: setting('wal_segment_size') };
  }

  /**
   * The insert position counts WAL not yet flushed (asynchronous commits are
   * visible before that), but right after a page or segment boundary it points
   * past the page header, where a replica's replay position never gets until
   * more WAL comes: such a position is moved back to the boundary.
   */
  private normalized(lsn: bigint): bigint {
    const { blockSize, segmentSize } = this.walLayout!;
    if (lsn % segmentSize === LONG_PAGE_HEADER) return lsn - LONG_PAGE_HEADER;
    if (lsn % blockSize === SHORT_PAGE_HEADER && lsn % segmentSize !== SHORT_PAGE_HEADER) return lsn - SHORT_PAGE_HEADER;
    return lsn;
  }

  /**
   * One query, answered within `timeoutMs` or counted as failed: a
   * stalled server must not hold the checks (nor pile up queries: until it
   * answers, later checks do not ask it again).
   */
  private async ask<R extends pg.QueryResultRow>(probe: Probe, text: string, timeoutMs: number): Promise<R[]> {
    if (probe.asking) throw new Error('the previous check is still waiting for an answer');
    const query = probe.pool.query<R>(text);
    probe.asking = query;
    void query.catch(() => undefined).finally(() => (probe.asking = undefined));
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return (await Promise.race([query, timeout])).rows;
    } finally {
      clearTimeout(timer);
    }
  }
}

const PRIMARY_LSN = 'SELECT pg_current_wal_insert_lsn()::text AS lsn';
const REPLICA_LSN = 'SELECT pg_last_wal_replay_lsn()::text AS lsn';
const WAL_LAYOUT = `SELECT name, setting FROM pg_settings WHERE name IN ('wal_block_size', 'wal_segment_size')`;
/** SizeOfXLogLongPHD / SizeOfXLogShortPHD on 64-bit builds. */
const LONG_PAGE_HEADER = 40n;
const SHORT_PAGE_HEADER = 24n;

/** `16/B374D848` → a byte position. */
export function parseLsn(text: string | null): bigint | null {
  if (text === null) return null;
  const [high, low] = text.split('/');
  if (high === undefined || low === undefined) throw new Error(`not an LSN: ${text}`);
  return (BigInt(`0x${high}`) << 32n) | BigInt(`0x${low}`);
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
