import type { Database, PrismaClient } from '../../src/infra/db.js';

/**
 * A database whose statements can be held: while `hold()` is armed, every
 * Prisma operation (raw ones included) waits before it runs, until `release()`.
 * Lets a test catch a request in flight — "the mutation is running" — without
 * guessing with timers.
 */
export interface GatedDatabase {
  db: Database;
  hold(): Hold;
}

export interface Hold {
  /** Resolves when the first held operation is waiting. */
  entered: Promise<void>;
  /** Number of operations that waited so far. */
  readonly waiting: number;
  release(): void;
}

export function gatedDatabase(inner: Database): GatedDatabase {
  let current: { gate: Promise<void>; arrived: () => void; count: number } | undefined;
  const prisma = inner.prisma.$extends({
    query: {
      async $allOperations({ args, query }) {
        const held = current;
        if (held) {
          held.count += 1;
          held.arrived();
          await held.gate;
        }
        return query(args);
      },
    },
  }) as unknown as PrismaClient;
  return {
    db: { ...inner, prisma, ping: () => inner.ping(), close: () => inner.close() },
    hold() {
      let open!: () => void;
      let arrived!: () => void;
      const entered = new Promise<void>((resolve) => (arrived = resolve));
      const state = { gate: new Promise<void>((resolve) => (open = resolve)), arrived, count: 0 };
      current = state;
      return {
        entered,
        get waiting() {
          return state.count;
        },
        release() {
          if (current === state) current = undefined;
          open();
        },
      };
    },
  };
}
