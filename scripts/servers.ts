import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { appendFileSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';

/**
 * Throwaway PostgreSQL and Redis servers for tests and `npm run bench`,
 * started from the local binaries (what .ci/run installs). Each returns a
 * `dispose`.
 */

export interface Throwaway {
  url: string;
  dispose(): Promise<void>;
  /** For outage tests: stop and start the same server on the same port. */
  stop?(): Promise<void>;
  start?(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export function findPostgresBin(): string | null {
  const root = '/usr/lib/postgresql';
  if (!existsSync(root)) return null;
  const versions = readdirSync(root)
    .filter((v) => existsSync(join(root, v, 'bin', 'initdb')))
    .sort((a, b) => Number(b) - Number(a));
  return versions[0] ? join(root, versions[0], 'bin') : null;
}

export function findRedisServer(): string | null {
  for (const candidate of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) {
    if (existsSync(candidate)) return candidate;
  }
  return null;
}

const isRoot = process.getuid?.() === 0;

function run(bin: string, args: string[]): void {
  // initdb refuses to run as root: run the cluster as the postgres user then.
  const [cmd, argv] = isRoot ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, args];
  const result = spawnSync(cmd, argv, { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`${bin} ${args.join(' ')} failed: ${result.stderr || result.stdout}`);
}

export interface PostgresOptions {
  /**
   * Let streaming replicas follow this server (see startStreamingReplica): WAL
   * senders and a `replication` pg_hba line for 127.0.0.1 and the socket.
   * @default false
   */
  replication?: boolean;
  /** More server settings (`-c name=value`), e.g. `{ log_statement: 'all' }`. */
  settings?: Record<string, string>;
}

/** A throwaway PostgreSQL server: `url` is its `postgres` database. */
export interface PostgresServer extends Throwaway {
  stop(): Promise<void>;
  start(): Promise<void>;
  readonly port: number;
  /** What the server wrote to its log so far. */
  log(): string;
}

function postgresUid(): { uid: number; gid: number } {
  const uid = spawnSync('id', ['-u', 'postgres'], { encoding: 'utf8' });
  const gid = spawnSync('id', ['-g', 'postgres'], { encoding: 'utf8' });
  return { uid: Number(uid.stdout.trim()), gid: Number(gid.stdout.trim()) };
}

/** A temporary directory the server's user owns. */
function serverDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  if (isRoot) {
    const { uid, gid } = postgresUid();
    chownSync(dir, uid, gid);
  }
  return dir;
}

// fsync and full-page writes off: throwaway data, fast tests. max_connections applies to a
// hot standby too, which refuses to start with fewer than its primary.
const serverSettings = (port: number, dir: string, extra: Record<string, string> = {}) =>
  `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300` +
  Object.entries(extra)
    .map(([name, value]) => ` -c ${name}=${value}`)
    .join('');

/** pg_ctl for one data directory, waiting (-w) for each action to finish. */
function controlled(bin: string, dir: string, data: string, options: string) {
  return (action: string, extra: string[] = []) =>
    run(join(bin, 'pg_ctl'), ['-D', data, '-l', join(dir, 'log'), '-o', options, '-w', ...extra, action]);
}

export async function startPostgres(options: PostgresOptions = {}): Promise<PostgresServer> {
  const bin = findPostgresBin();
  if (!bin) throw new Error('PostgreSQL binaries not found under /usr/lib/postgresql');
  const dir = serverDir('parley-pg-');
  const port = await freePort();
  const data = join(dir, 'data');
  run(join(bin, 'initdb'), ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C']);
  const replication: Record<string, string> = options.replication ? { wal_level: 'replica', max_wal_senders: '8' } : {};
  const settings = serverSettings(port, dir, { ...replication, ...options.settings });
  if (options.replication) {
    const hba = join(data, 'pg_hba.conf');
    // initdb's template already has these lines today; a replica must not depend on that.
    appendAsServerUser(hba, 'local replication all trust\nhost replication all 127.0.0.1/32 trust\n');
  }
  const pgctl = controlled(bin, dir, data, settings);
  pgctl('start');
  return postgresServer(pgctl, dir, port);
}

/** The handle of a server started by `pgctl` in `dir` (removed on dispose). */
function postgresServer(pgctl: ReturnType<typeof controlled>, dir: string, port: number): PostgresServer {
  return {
    url: `postgresql://postgres@127.0.0.1:${port}/postgres`,
    port,
    log: () => readLog(dir),
    stop: async () => pgctl('stop', ['-m', 'fast']),
    start: async () => pgctl('start'),
    dispose: async () => {
      try {
        pgctl('stop', ['-m', 'immediate']);
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function readLog(dir: string): string {
  return existsSync(join(dir, 'log')) ? readFileSync(join(dir, 'log'), 'utf8') : '';
}

function appendAsServerUser(file: string, text: string): void {
  appendFileSync(file, text);
  if (isRoot) {
    const { uid, gid } = postgresUid();
    chownSync(file, uid, gid);
  }
}

/**
 * A hot standby of `primary` (started with `replication: true`), made the way
 * production makes one: pg_basebackup (-R writes primary_conninfo and
 * standby.signal, -X stream brings the WAL written meanwhile), then started on
 * its own port with hot_standby=on. Resolves once it accepts connections and
 * is in recovery; `stop()`/`start()` take it down and bring it back.
 */
export async function startStreamingReplica(primary: PostgresServer, options: Pick<PostgresOptions, 'settings'> = {}): Promise<PostgresServer> {
  const bin = findPostgresBin();
  if (!bin) throw new Error('PostgreSQL binaries not found under /usr/lib/postgresql');
  const dir = serverDir('parley-pg-replica-');
  const port = await freePort();
  const data = join(dir, 'data');
  run(join(bin, 'pg_basebackup'), [
    '-h',
    '127.0.0.1',
    '-p',
    String(primary.port),
    '-U',
    'postgres',
    '-D',
    data,
    '-R',
    '-X',
    'stream',
    '-c',
    'fast',
    '--no-sync',
  ]);
  const pgctl = controlled(bin, dir, data, serverSettings(port, dir, { hot_standby: 'on', ...options.settings }));
  pgctl('start');
  const url = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  const client = new pg.Client({ connectionString: url });
  try {
    await client.connect();
    const { rows } = await client.query<{ recovery: boolean }>('SELECT pg_is_in_recovery() AS recovery');
    if (!rows[0]?.recovery) throw new Error('the replica is not in recovery');
  } catch (error) {
    try {
      pgctl('stop', ['-m', 'immediate']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    throw error;
  } finally {
    await client.end().catch(() => undefined);
  }
  return postgresServer(pgctl, dir, port);
}

export function waitForPort(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const socket = createConnection({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve();
      });
      socket.once('error', () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on ${port}`));
        else setTimeout(attempt, 50);
      });
    };
    attempt();
  });
}

/** PEM files of a Redis speaking TLS: its certificate and key, and the CA it trusts (replication, cluster bus). */
export interface RedisTlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
}

/** redis-server arguments for TLS only, on `port` (no plain-text port), not asking clients for a certificate. */
export function redisTlsArgs(tls: RedisTlsFiles, port: number): string[] {
  return [
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--tls-cert-file',
    tls.certFile,
    '--tls-key-file',
    tls.keyFile,
    '--tls-ca-cert-file',
    tls.caFile,
    '--tls-auth-clients',
    'no',
  ];
}

export interface RedisOptions {
  /** Speak TLS only, with these files; the URL is then `rediss://`. */
  tls?: RedisTlsFiles;
}

export async function startRedis(options: RedisOptions = {}): Promise<Throwaway> {
  const bin = findRedisServer();
  if (!bin) throw new Error('redis-server not found');
  const port = await freePort();
  const listen = options.tls ? redisTlsArgs(options.tls, port) : ['--port', String(port)];
  let child: ChildProcess | undefined;
  const start = async () => {
    // A TCP connect is enough to know it listens, also for TLS: the handshake comes after.
    child = spawn(bin, [...listen, '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: 'ignore',
    });
    await waitForPort(port);
  };
  const stop = async () => {
    const c = child;
    child = undefined;
    if (!c || c.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    });
  };
  await start();
  return { url: `${options.tls ? 'rediss' : 'redis'}://127.0.0.1:${port}`, start, stop, dispose: stop };
}

export interface SentinelGroup extends Throwaway {
  /** Where the sentinels say the master is now (host:port). */
  master(): Promise<string>;
  /** Kills the current master's process (SIGKILL), as a crashed machine would. */
  killMaster(): Promise<string>;
}

/**
 * A Redis master with one replica, watched by three sentinels (quorum 2) that
 * declare it down after 500 ms: for failover tests. The URL is Parley's
 * Sentinel form, redis+sentinel://…/parley. With `tls`, the master and the
 * replica speak TLS only (replication too) and the URL is rediss+sentinel://;
 * the sentinels take clients in plain text, as that form expects, and reach
 * the master over TLS.
 */
export async function startRedisSentinel(options: RedisOptions = {}): Promise<SentinelGroup> {
  const bin = findRedisServer();
  if (!bin) throw new Error('redis-server not found');
  const dir = mkdtempSync(join(tmpdir(), 'parley-sentinel-'));
  const children = new Map<number, ChildProcess>();
  const spawnRedis = async (port: number, args: string[]) => {
    const child = spawn(bin, args, { stdio: 'ignore', cwd: dir });
    children.set(port, child);
    await waitForPort(port);
  };
  const [masterPort, replicaPort, ...sentinelPorts] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
  const { tls } = options;
  const listen = (port: number) => (tls ? [...redisTlsArgs(tls, port), '--tls-replication', 'yes'] : ['--port', String(port)]);
  const plain = ['--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  await spawnRedis(masterPort!, [...listen(masterPort!), ...plain]);
  await spawnRedis(replicaPort!, [...listen(replicaPort!), ...plain, '--replicaof', '127.0.0.1', String(masterPort)]);
  // With tls-replication a sentinel reaches the master, the replica and the other sentinels over TLS: the latter on its tls-port.
  const sentinelTls = tls
    ? async () => [
        `tls-port ${await freePort()}`,
        `tls-cert-file ${tls.certFile}`,
        `tls-key-file ${tls.keyFile}`,
        `tls-ca-cert-file ${tls.caFile}`,
        'tls-auth-clients no',
        'tls-replication yes',
      ]
    : async () => [];
  for (const port of sentinelPorts) {
    const file = join(dir, `sentinel-${port}.conf`);
    writeFileSync(
      file,
      [
        `port ${port}`,
        ...(await sentinelTls()),
        'bind 127.0.0.1',
        `dir ${dir}`,
        `sentinel monitor parley 127.0.0.1 ${masterPort} 2`,
        'sentinel down-after-milliseconds parley 500',
        'sentinel failover-timeout parley 5000',
        'sentinel parallel-syncs parley 1',
        '',
      ].join('\n'),
    );
    await spawnRedis(port, [file, '--sentinel']);
  }
  const ask = async (): Promise<string> => {
    for (const port of sentinelPorts) {
      const reply = spawnSync('redis-cli', ['-p', String(port), '--raw', 'SENTINEL', 'get-master-addr-by-name', 'parley'], { encoding: 'utf8' });
      const [host, p] = reply.stdout.trim().split('\n');
      if (reply.status === 0 && host && p) return `${host}:${p}`;
    }
    throw new Error('no sentinel answered');
  };
  const kill = async (port: number) => {
    const child = children.get(port);
    children.delete(port);
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  };
  const dispose = async () => {
    await Promise.all([...children.keys()].map(kill));
    rmSync(dir, { recursive: true, force: true });
  };
  return {
    url: `${tls ? 'rediss' : 'redis'}+sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(',')}/parley`,
    master: ask,
    killMaster: async () => {
      const master = await ask();
      await kill(Number(master.split(':')[1]));
      return master;
    },
    dispose,
  };
}

/** Rejects when `promise` has not settled within `ms`, naming `what`: every wait is bounded. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A new empty database on a PostgreSQL server, and how to drop it again. */
export async function createPostgresDatabase(serverUrl: string, prefix = 'parley_t_'): Promise<{ url: string; drop(): Promise<void> }> {
  const name = `${prefix}${randomBytes(6).toString('hex')}`;
  const run = async (sql: string) => {
    const client = new pg.Client({ connectionString: serverUrl });
    await client.connect();
    try {
      await client.query(sql);
    } finally {
      await client.end();
    }
  };
  await run(`CREATE DATABASE ${name}`);
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return { url: url.toString(), drop: () => run(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`) };
}
