import { execFile, type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { tlsCliArgs } from './redis-tls.js';
import { findRedisServer, freePort, redisTlsArgs, waitForPort, type RedisTlsFiles, type Throwaway } from './servers.js';

const run = promisify(execFile);

export function findRedisCli(): string | null {
  for (const candidate of ['/usr/bin/redis-cli', '/usr/local/bin/redis-cli']) if (existsSync(candidate)) return candidate;
  return null;
}

export interface RedisClusterOptions {
  /** Replicas per master (a killed master's slots survive only with one). @default 0 */
  replicas?: number;
  /** How long a master may be unreachable before the others declare it failed. @default 1000 */
  nodeTimeoutMs?: number;
  /** Every node speaks TLS only (clients, the cluster bus, replication) with this certificate; the URL is then `rediss+cluster://`. */
  tls?: RedisTlsFiles;
}

export interface ThrowawayCluster extends Throwaway {
  /** `redis+cluster://127.0.0.1:P1,…`, every node named. */
  url: string;
  ports: number[];
  /** Ports of the nodes that are masters now, with slots, by the cluster's own view. */
  masters(): Promise<number[]>;
  /** Kills one node's process (SIGKILL, by its pid), as a crashed machine would. */
  kill(port: number): Promise<void>;
  /** `cluster_state:ok` on every node still running, each master with slots having a live link. */
  healthy(): Promise<boolean>;
  /** Runs redis-cli against one node. */
  cli(port: number, ...args: string[]): Promise<string>;
}

/**
 * A throwaway Redis Cluster of three masters (and `replicas` replicas each) from
 * the local redis-server, on free loopback ports in a temporary directory,
 * joined by `redis-cli --cluster create`. Resolves once every node says
 * `cluster_state:ok` (and every replica has synced); `dispose` kills the
 * processes by pid and removes the directory.
 */
export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<ThrowawayCluster> {
  const bin = findRedisServer();
  const cli = findRedisCli();
  if (!bin || !cli) throw new Error('redis-server or redis-cli not found');
  const replicas = options.replicas ?? 0;
  const dir = mkdtempSync(join(tmpdir(), 'parley-cluster-'));
  const children = new Map<number, ChildProcess>();
  // Each node's cluster bus gets a port of its own: by default it is the node's port + 10,000, which is
  // refused above 55535 (a fifth of Linux's ephemeral ports, 32768-60999) and may be another server's port.
  const taken = new Set<number>();
  while (taken.size < 2 * 3 * (1 + replicas)) taken.add(await freePort());
  const [ports, busPorts] = [[...taken].filter((_, i) => i % 2 === 0), [...taken].filter((_, i) => i % 2 === 1)];
  const tls = options.tls ? tlsCliArgs(options.tls) : [];
  const ask = async (port: number, ...args: string[]) =>
    (await run(cli, [...tls, '-h', '127.0.0.1', '-p', String(port), ...args], { timeout: 5_000 })).stdout;
  const kill = async (port: number) => {
    const child = children.get(port);
    children.delete(port);
    if (!child || child.exitCode !== null || child.pid === undefined) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    process.kill(child.pid, 'SIGKILL');
    await exited;
  };
  const dispose = async () => {
    await Promise.all([...children.keys()].map(kill));
    rmSync(dir, { recursive: true, force: true });
  };
  const masters = async () => {
    for (const port of children.keys()) {
      try {
        const nodes = await ask(port, 'CLUSTER', 'NODES');
        // <id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot>…
        return nodes
          .split('\n')
          .map((line) => line.split(' '))
          .filter((f) => f[2]?.split(',').includes('master') && !f[2].includes('fail') && f.length > 8)
          .map((f) => Number(f[1]!.split('@')[0]!.split(':')[1]));
      } catch {
        // that node is going away: ask another
      }
    }
    return [];
  };
  const healthy = async () => {
    try {
      for (const port of children.keys()) if (!(await ask(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
      for (const port of children.keys()) {
        const info = await ask(port, 'INFO', 'replication');
        if (info.includes('role:slave') && !info.includes('master_link_status:up')) return false;
      }
      return (await masters()).length === 3;
    } catch {
      return false;
    }
  };
  try {
    for (const [i, port] of ports.entries()) {
      const child = spawn(
        bin,
        [
          ...(options.tls ? [...redisTlsArgs(options.tls, port), '--tls-cluster', 'yes', '--tls-replication', 'yes'] : ['--port', String(port)]),
          '--bind',
          '127.0.0.1',
          '--dir',
          dir,
          '--cluster-enabled',
          'yes',
          '--cluster-port',
          String(busPorts[i]),
          '--cluster-config-file',
          `nodes-${port}.conf`,
          '--cluster-node-timeout',
          String(options.nodeTimeoutMs ?? 1_000),
          '--save',
          '',
          '--appendonly',
          'no',
        ],
        { stdio: 'ignore', cwd: dir },
      );
      children.set(port, child);
    }
    await Promise.all(ports.map((port) => waitForPort(port)));
    await run(cli, [...tls, '--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', String(replicas), '--cluster-yes'], {
      timeout: 30_000,
    });
    const deadline = Date.now() + 30_000;
    while (!(await healthy())) {
      if (Date.now() > deadline) throw new Error('the cluster did not reach cluster_state:ok within 30 s');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  } catch (error) {
    await dispose();
    throw error;
  }
  return {
    url: `${options.tls ? 'rediss' : 'redis'}+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    ports,
    masters,
    kill,
    healthy,
    cli: ask,
    dispose,
  };
}
