import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from './log.js';

/**
 * Every Redis connection of a node is opened here (cache, live events, rate
 * limits), so the address forms, timeouts, retries and outage logging are the
 * same everywhere.
 *
 * REDIS_URL takes one Redis (`redis://`, `rediss://` with TLS) or a Redis
 * watched by Sentinel:
 *
 *   redis+sentinel://[[user]:password@]host:port[,host:port…]/master-name[/db]
 *
 * (`rediss+sentinel://` for TLS to the master). The password is the master's;
 * a `sentinelPassword` query parameter gives the sentinels' own. With Sentinel
 * ioredis asks the sentinels where the master is at every (re)connect (a dead
 * master drops its connections), and a connection that meets a demoted master
 * (READONLY) reconnects to the new one.
 */

export interface SentinelTarget {
  sentinels: { host: string; port: number }[];
  name: string;
  tls: boolean;
  username?: string;
  password?: string;
  sentinelPassword?: string;
  db: number;
}

const SENTINEL = /^(rediss?)\+sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)\/([^/?]+)(?:\/(\d+))?\/?(?:\?(.*))?$/;

/** The Sentinel form of a REDIS_URL, undefined for a plain redis:// or rediss:// URL; throws on a malformed one. */
export function parseSentinelUrl(url: string): SentinelTarget | undefined {
  if (!/^rediss?\+sentinel:/.test(url)) return undefined;
  const match = SENTINEL.exec(url);
  if (!match) throw new Error('must be redis+sentinel://[[user]:password@]host:port[,host:port…]/master-name[/db]');
  const [, scheme, user, password, hosts, name, db, query] = match;
  const sentinels = hosts!.split(',').map((hostPort) => {
    const at = hostPort.lastIndexOf(':');
    const host = at > 0 ? hostPort.slice(0, at).replace(/^\[(.*)\]$/, '$1') : hostPort;
    const port = at > 0 ? Number(hostPort.slice(at + 1)) : 26379;
    if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`sentinel address ${hostPort} is not host:port`);
    return { host, port };
  });
  const params = new URLSearchParams(query ?? '');
  const decode = (value: string | undefined) => (value ? decodeURIComponent(value) : undefined);
  return {
    sentinels,
    name: decodeURIComponent(name!),
    tls: scheme === 'rediss',
    ...(decode(user) ? { username: decode(user) } : {}),
    ...(decode(password) ? { password: decode(password) } : {}),
    ...(params.get('sentinelPassword') ? { sentinelPassword: params.get('sentinelPassword')! } : {}),
    db: db ? Number(db) : 0,
  };
}

/** Where a REDIS_URL points, without credentials: for logs and the start-up line. */
export function describeRedisUrl(url: string): string {
  const sentinel = parseSentinelUrl(url);
  if (sentinel) return `sentinel ${sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(',')} master ${sentinel.name}`;
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port || 6379}`;
}

export interface RedisConnectionOptions {
  /**
   * `commands` fail at once while Redis is away (no offline queue, no retries), so
   * callers fall back instead of waiting; a `subscriber` queues SUBSCRIBE until
   * Redis is back and re-subscribes its channels after every reconnect.
   */
  role: 'commands' | 'subscriber';
  /** Bound of each command (commands only). */
  commandTimeoutMs?: number;
}

/** A connection to REDIS_URL, not yet connected (call `connect()`). */
export function openRedis(url: string, options: RedisConnectionOptions): Redis {
  const common: RedisOptions = {
    lazyConnect: true,
    connectTimeout: 2_000,
    // Reconnect for ever, backing off to 2 s: Redis coming back must be noticed.
    retryStrategy: (times: number) => Math.min(50 * times, 2_000),
    ...(options.role === 'commands'
      ? { enableOfflineQueue: false, maxRetriesPerRequest: 0, ...(options.commandTimeoutMs ? { commandTimeout: options.commandTimeoutMs } : {}) }
      : { autoResubscribe: true, maxRetriesPerRequest: null }),
  };
  const sentinel = parseSentinelUrl(url);
  if (!sentinel) return new Redis(url, common);
  return new Redis({
    ...common,
    sentinels: sentinel.sentinels,
    name: sentinel.name,
    db: sentinel.db,
    ...(sentinel.username ? { username: sentinel.username } : {}),
    ...(sentinel.password ? { password: sentinel.password } : {}),
    ...(sentinel.sentinelPassword ? { sentinelPassword: sentinel.sentinelPassword } : {}),
    ...(sentinel.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    // Sentinels are asked again on every reconnect; retry them as the master is retried.
    sentinelRetryStrategy: (times: number) => Math.min(50 * times, 2_000),
    // A master demoted by a failover answers writes with READONLY: reconnect (to the new master) and resend.
    // (A subscriber left on a demoted master still hears what the new one publishes: replicas get PUBLISH.)
    // Not ioredis' failoverDetector: when its +switch-master notice lands while a connection is asking the
    // sentinels where the master is, that connect fails with "Connection is closed" and the connection
    // ends for good (status "end", never retried) — seen killing the master under load in the failover test.
    reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 2 : false),
  });
}

/**
 * Logs the first error of each outage of a group of connections (ioredis emits
 * 'error' on every failed reconnect), and, with `back`, when they are ready again.
 */
export function reportOutages(connections: Redis[], log: Logger, messages: { down: string; back?: string }): void {
  let reported = false;
  for (const connection of connections) {
    connection.on('error', (error: Error) => {
      if (!reported) log.warn(messages.down, { error: error.message });
      reported = true;
    });
    connection.on('ready', () => {
      if (reported && messages.back) log.info(messages.back);
      reported = false;
    });
  }
}
