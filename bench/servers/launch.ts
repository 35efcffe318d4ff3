import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { within } from '../../scripts/servers.js';
import type { ControlCommand, ControlMessage, ControlRequest, ServerMemory } from './control.js';
import type { SqlCounts } from './sql-capture.js';

/**
 * Harness side of the server processes. Each server runs in its own Node
 * process (so the load generator never shares its event loop), started with
 * tsx, on an ephemeral port of 127.0.0.1, and is waited for with a bound.
 */

export type ServerKind = 'parley' | 'postgraphile' | 'baseline' | 'ceiling';

export interface RunningServer {
  kind: ServerKind;
  /** http://127.0.0.1:<port> */
  url: string;
  /** The server process, whose CPU time the harness reads from /proc. */
  pid: number;
  description: string;
  resetSql(): Promise<void>;
  /** null for the ceiling, which sends no SQL. */
  readSql(): Promise<SqlCounts | null>;
  setBody(bytes: number): Promise<void>;
  /** Memory after a full GC (heapUsed is the live heap when started with --expose-gc). */
  memory(): Promise<ServerMemory>;
  stop(): Promise<void>;
}

const ENTRIES: Record<ServerKind, string> = {
  parley: fileURLToPath(new URL('./parley.ts', import.meta.url)),
  postgraphile: fileURLToPath(new URL('./postgraphile.ts', import.meta.url)),
  baseline: fileURLToPath(new URL('./baseline.ts', import.meta.url)),
  ceiling: fileURLToPath(new URL('./ceiling.ts', import.meta.url)),
};
const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** PGlite's first open of a data dir took up to half a minute on a busy 2-core machine. */
const READY_WITHIN_MS = 120_000;
const ANSWER_WITHIN_MS = 10_000;
const EXIT_WITHIN_MS = 15_000;

/** `nodeArgs`: extra Node options for the server process, e.g. `--cpu-prof` to see where its time goes. */
export async function launchServer(kind: ServerKind, env: NodeJS.ProcessEnv, nodeArgs: string[] = []): Promise<RunningServer> {
  const child = fork(ENTRIES[kind], [], {
    cwd: ROOT,
    env,
    execArgv: ['--import', 'tsx', ...nodeArgs],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  let output = '';
  const keep = (chunk: string) => void (output = (output + chunk).slice(-4_000));
  child.stdout!.setEncoding('utf8').on('data', keep);
  child.stderr!.setEncoding('utf8').on('data', keep);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const pending = new Map<number, (value: SqlCounts | NodeJS.MemoryUsage | null) => void>();
  let ready: ((message: Extract<ControlMessage, { type: 'ready' }>) => void) | undefined;
  child.on('message', (raw) => {
    const message = raw as ControlMessage;
    if (message.type === 'ready') ready?.(message);
    if (message.type === 'reply') {
      pending.get(message.id)?.(message.value);
      pending.delete(message.id);
    }
  });

  const started = await within(
    new Promise<Extract<ControlMessage, { type: 'ready' }>>((resolve, reject) => {
      ready = resolve;
      void exited.then(() => reject(new Error(`${kind} server exited before it was ready:\n${output}`)));
    }),
    READY_WITHIN_MS,
    `${kind} server start`,
  ).catch(async (error) => {
    await kill(child, exited);
    throw error;
  });

  let nextId = 1;
  const ask = (command: ControlCommand) => {
    const id = nextId++;
    const answer = new Promise<SqlCounts | NodeJS.MemoryUsage | null>((resolve) => pending.set(id, resolve));
    const request: ControlRequest = { ...command, id };
    child.send(request);
    return within(answer, ANSWER_WITHIN_MS, `${kind} server: ${command.type}`);
  };

  return {
    kind,
    url: `http://127.0.0.1:${started.port}`,
    pid: child.pid!,
    description: started.description,
    resetSql: async () => void (await ask({ type: 'sql-reset' })),
    readSql: async () => (await ask({ type: 'sql-read' })) as SqlCounts | null,
    memory: async () => (await ask({ type: 'memory' })) as ServerMemory,
    setBody: async (bytes) => void (await ask({ type: 'body', bytes })),
    stop: () => kill(child, exited),
  };
}

async function kill(child: ChildProcess, exited: Promise<void>): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  await within(exited, EXIT_WITHIN_MS, 'server stop').catch(async () => {
    child.kill('SIGKILL');
    await exited;
  });
}
