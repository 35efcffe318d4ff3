import type { ServerResponse } from 'node:http';

/**
 * What is in flight on this node — HTTP requests until their response closes,
 * graphql-ws operations until they settle — so a shutdown can let them finish.
 * Once draining, responses ask their client to close the connection, and
 * `onIdle` runs each time one ends (to close the connection it leaves idle).
 */
export class Drain {
  private active = 0;
  private readonly responses = new Set<ServerResponse>();
  private readonly waiters = new Set<() => void>();
  draining = false;

  constructor(private readonly onIdle: () => void = () => {}) {}

  get inFlight(): number {
    return this.active;
  }

  request(res: ServerResponse): void {
    this.active += 1;
    this.responses.add(res);
    if (this.draining && !res.headersSent) res.setHeader('connection', 'close');
    res.once('close', () => {
      this.responses.delete(res);
      this.settled();
    });
  }

  operation<T>(run: () => Promise<T>): Promise<T> {
    this.active += 1;
    return run().finally(() => this.settled());
  }

  /** Stops taking work: answers still being written say `connection: close`. */
  begin(): void {
    this.draining = true;
    for (const res of this.responses) if (!res.headersSent) res.setHeader('connection', 'close');
  }

  /** Resolves true once nothing is in flight, false when `ms` passed first. */
  idle(ms: number): Promise<boolean> {
    if (this.active === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(done);
        resolve(false);
      }, ms);
      this.waiters.add(done);
    });
  }

  private settled(): void {
    this.active -= 1;
    if (this.draining) this.onIdle();
    if (this.active === 0) for (const waiter of [...this.waiters]) waiter();
  }
}
