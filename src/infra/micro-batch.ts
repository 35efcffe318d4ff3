/**
 * Groups concurrent calls into one: the first call of a group opens a window of
 * `windowMs`; every call of the same group that arrives before it closes (or
 * before `maxBatch` calls) is answered by one `run` of all their keys. Unlike
 * DataLoader, which batches one tick of one request, a window collects calls
 * of many concurrent requests — what lets "ten widgets asking at once" cost
 * one SQL statement or one provider call.
 */

export interface MicroBatcherOptions<G, K, V> {
  /** How long a batch stays open after its first call; 0 = until the end of the current tick. */
  windowMs: number;
  /** A batch reaching this many distinct keys runs at once. @default 100 */
  maxBatch?: number;
  /** Identity of a key inside a batch: calls with equal identities share one result. @default JSON.stringify */
  keyOf?: (key: K) => string;
  /** Answers every key of one group, in order. A rejection fails every call of the batch. */
  run: (group: G, keys: K[]) => Promise<V[]>;
}

export interface MicroBatcher<G, K, V> {
  load(group: G, key: K): Promise<V>;
  /** Batches run so far (each one `run`). */
  readonly batches: number;
}

interface Pending<K, V> {
  keys: K[];
  waiters: Map<string, { index: number; resolve: ((v: V) => void)[]; reject: ((e: unknown) => void)[] }>;
  timer: NodeJS.Timeout | undefined;
  flushed: boolean;
}

export function createMicroBatcher<G, K, V>(options: MicroBatcherOptions<G, K, V>): MicroBatcher<G, K, V> {
  const maxBatch = options.maxBatch ?? 100;
  const keyOf = options.keyOf ?? ((key: K) => JSON.stringify(key));
  const open = new Map<G, Pending<K, V>>();
  let batches = 0;

  const flush = (group: G, pending: Pending<K, V>) => {
    if (pending.flushed) return;
    pending.flushed = true;
    if (open.get(group) === pending) open.delete(group);
    clearTimeout(pending.timer);
    batches += 1;
    const settle = (fn: (w: { index: number; resolve: ((v: V) => void)[]; reject: ((e: unknown) => void)[] }) => void) =>
      pending.waiters.forEach(fn);
    options.run(group, pending.keys).then(
      (values) => settle((w) => w.resolve.forEach((r) => r(values[w.index] as V))),
      (error) => settle((w) => w.reject.forEach((r) => r(error))),
    );
  };

  return {
    get batches() {
      return batches;
    },
    load(group, key) {
      return new Promise<V>((resolve, reject) => {
        let pending = open.get(group);
        if (!pending) {
          const created: Pending<K, V> = { keys: [], waiters: new Map(), timer: undefined, flushed: false };
          open.set(group, created);
          if (options.windowMs > 0) {
            created.timer = setTimeout(() => flush(group, created), options.windowMs);
            created.timer.unref?.();
          } else {
            setImmediate(() => flush(group, created));
          }
          pending = created;
        }
        const id = keyOf(key);
        let waiter = pending.waiters.get(id);
        if (!waiter) {
          waiter = { index: pending.keys.length, resolve: [], reject: [] };
          pending.waiters.set(id, waiter);
          pending.keys.push(key);
        }
        waiter.resolve.push(resolve);
        waiter.reject.push(reject);
        if (pending.keys.length >= maxBatch) flush(group, pending);
      });
    },
  };
}
