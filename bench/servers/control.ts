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
  /** Bytes held by bounded caches, reported with the memory so growth can be told from caches filling. */
  cacheBytes?(): number;
}

/** process.memoryUsage() after a full GC, and what the server's bounded caches held then. */
export type ServerMemory = NodeJS.MemoryUsage & { cacheBytes: number };

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
      (globalThis as { gc?: () => void }).gc?.();
      send({ type: 'reply', id: request.id, value: { ...process.memoryUsage(), cacheBytes: handlers.cacheBytes?.() ?? 0 } });
    } else if (request.type === 'body') {
      handlers.body?.(request.bytes);
      send({ type: 'reply', id: request.id, value: null });
    }
  });
  send({ type: 'ready', ...ready });
}
