import type { SqlCounts } from './sql-capture.js';

/**
 * The control channel between the harness and a server process (Node's IPC
 * channel of `fork`): the server says when it listens, and answers the
 * harness's questions between runs. Nothing of it is reachable over HTTP.
 */

export type ControlCommand =
  | { type: 'sql-reset' }
  | { type: 'sql-read' }
  /** Ceiling only: the size of the fixed body to answer with from now on. */
  | { type: 'body'; bytes: number }
  /** process.memoryUsage() after a full GC (the server runs with --expose-gc), for the soak. */
  | { type: 'memory' };

export type ControlRequest = ControlCommand & { id: number };

export type ControlMessage =
  | { type: 'ready'; port: number; description: string }
  | { type: 'reply'; id: number; value: SqlCounts | ServerMemory | null };

export interface ControlHandlers {
  sqlReset?(): void;
  sqlRead?(): SqlCounts;
  body?(bytes: number): void;
  /** The server's bounded in-process caches, so growth can be told from caches filling. */
  caches?: { bytes(): number; clear(): void };
}

/**
 * process.memoryUsage() after a full GC; what the bounded caches held then; and the heap
 * after another GC once they were emptied (what a leak would grow, without the caches'
 * filling and expiring, which their bounds cap).
 */
export type ServerMemory = NodeJS.MemoryUsage & { cacheBytes: number; heapWithoutCaches: number };

/**
 * Server side: reports readiness, answers control requests, and stops on
 * SIGTERM or when the harness goes away (its IPC channel closes), so no
 * server outlives a bench that crashed.
 */
export function serveControl(ready: { port: number; description: string }, handlers: ControlHandlers, stop: () => Promise<void>): void {
  const send = (message: ControlMessage) => process.send?.(message);
  let stopping = false;
  const shutdown = () => {
    if (stopping) return;
    stopping = true;
    const force = setTimeout(() => process.exit(1), 10_000);
    force.unref();
    void stop().finally(() => process.exit(0));
  };
  process.on('SIGTERM', shutdown);
  process.on('SIGINT', shutdown);
  process.on('disconnect', shutdown);
  process.on('message', (raw) => {
    const request = raw as ControlRequest;
    if (request.type === 'sql-reset') {
      handlers.sqlReset?.();
      send({ type: 'reply', id: request.id, value: null });
    } else if (request.type === 'sql-read') {
      send({ type: 'reply', id: request.id, value: handlers.sqlRead?.() ?? null });
    } else if (request.type === 'memory') {
      const gc = () => (globalThis as { gc?: () => void }).gc?.();
      gc();
      const usage = process.memoryUsage();
      const cacheBytes = handlers.caches?.bytes() ?? 0;
      handlers.caches?.clear();
      gc();
      send({ type: 'reply', id: request.id, value: { ...usage, cacheBytes, heapWithoutCaches: process.memoryUsage().heapUsed } });
    } else if (request.type === 'body') {
      handlers.body?.(request.bytes);
      send({ type: 'reply', id: request.id, value: null });
    }
  });
  send({ type: 'ready', ...ready });
}
