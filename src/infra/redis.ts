import { createConnection, isIP } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions as TlsOptions } from 'node:tls';
import { AbstractConnector, Cluster, Redis, SentinelConnector, type ClusterOptions, type RedisOptions } from 'ioredis';
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
 *
 * Or a Redis Cluster, named by some of its nodes (ioredis finds the rest):
 *
 *   redis+cluster://[[user]:password@]host:port[,host:port…]
 *
 * (`rediss+cluster://` for TLS). Keys used together in one command, script or
 * MULTI share a hash slot (see redis-slots.ts); live events use plain
 * PUBLISH/SUBSCRIBE, which a cluster carries to every node.
 *
 * With TLS every connection (commands, subscriber, each cluster node) checks
 * the server's certificate against `ca` (PARLEY_REDIS_CA_FILE) when given, else
 * against Node's roots and NODE_EXTRA_CA_CERTS, and checks that it names the
 * host connected to: for a cluster, the URL's nodes and the addresses the
 * nodes report in CLUSTER SLOTS. A certificate that fails either check refuses
 * the connection; there is no plain-text fallback.
 */

/** A connection that takes commands: one Redis, or a cluster (ioredis routes each command to its slot's master). */
export type RedisClient = Redis | Cluster;

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
  const sentinels = parseHosts(hosts!, 26379, 'sentinel');
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

export interface ClusterTarget {
  /** The nodes named in the URL: where ioredis starts to discover the cluster, and where a subscriber connects. */
  nodes: { host: string; port: number }[];
  tls: boolean;
  username?: string;
  password?: string;
}

const CLUSTER = /^(rediss?)\+cluster:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)(\/[^?]*)?(?:\?(.*))?$/;

/** The Cluster form of a REDIS_URL, undefined for any other form; throws on a malformed one. */
export function parseClusterUrl(url: string): ClusterTarget | undefined {
  if (!/^rediss?\+cluster:/.test(url)) return undefined;
  const match = CLUSTER.exec(url);
  if (!match) throw new Error('must be redis+cluster://[[user]:password@]host:port[,host:port…]');
  const [, scheme, user, password, hosts, path, query] = match;
  // A cluster has database 0 only; a number here would be silently ignored by ioredis.
  if (path && path !== '/' && path !== '/0') throw new Error('a Redis Cluster has no database number: end the URL after the last host:port');
  const unknown = [...new URLSearchParams(query ?? '').keys()];
  if (unknown.length) throw new Error(`redis+cluster:// takes no parameters (got ${unknown.join(', ')})`);
  const decode = (value: string | undefined) => (value ? decodeURIComponent(value) : undefined);
  return {
    nodes: parseHosts(hosts!, 6379, 'cluster node'),
    tls: scheme === 'rediss',
    ...(decode(user) ? { username: decode(user) } : {}),
    ...(decode(password) ? { password: decode(password) } : {}),
  };
}

function parseHosts(hosts: string, defaultPort: number, what: string): { host: string; port: number }[] {
  return hosts.split(',').map((hostPort) => {
    const at = hostPort.lastIndexOf(':');
    const bracketed = /^\[.*\]$/.test(hostPort);
    const host = at > 0 && !bracketed ? hostPort.slice(0, at).replace(/^\[(.*)\]$/, '$1') : hostPort.replace(/^\[(.*)\]$/, '$1');
    const port = at > 0 && !bracketed ? Number(hostPort.slice(at + 1)) : defaultPort;
    if (!host || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${what} address ${hostPort} is not host:port`);
    return { host, port };
  });
}

/** Where a REDIS_URL points, without credentials: for logs and the start-up line. */
export function describeRedisUrl(url: string): string {
  const sentinel = parseSentinelUrl(url);
  if (sentinel) return `sentinel ${sentinel.sentinels.map((s) => `${s.host}:${s.port}`).join(',')} master ${sentinel.name}`;
  const cluster = parseClusterUrl(url);
  if (cluster) return `cluster ${cluster.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
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
  /**
   * PEM of the CAs a TLS Redis's certificate must chain to, instead of Node's
   * roots (PARLEY_REDIS_CA_FILE). Ignored for a plain redis:// URL (config
   * refuses that combination).
   */
  ca?: string | undefined;
}

// Reconnect for ever, backing off to 2 s: Redis coming back must be noticed.
const backoff = (times: number) => Math.min(50 * times, 2_000);

/**
 * A connection to REDIS_URL, not yet connected (call `connect()`). A subscriber
 * is always one connection to one Redis, also for a cluster (see below).
 */
export function openRedis(url: string, options: RedisConnectionOptions & { role: 'subscriber' }): Redis;
export function openRedis(url: string, options: RedisConnectionOptions): RedisClient;
export function openRedis(url: string, options: RedisConnectionOptions): RedisClient {
  const commands = options.role === 'commands';
  // `{}` still means TLS: Node's roots (with NODE_EXTRA_CA_CERTS) and its host name check.
  const tls: TlsOptions = options.ca ? { ca: options.ca } : {};
  const bounded = { maxRetriesPerRequest: 0, ...(options.commandTimeoutMs ? { commandTimeout: options.commandTimeoutMs } : {}) };
  const common: RedisOptions = {
    lazyConnect: true,
    connectTimeout: 2_000,
    retryStrategy: backoff,
    ...(commands ? { enableOfflineQueue: false, ...bounded } : { autoResubscribe: true, maxRetriesPerRequest: null }),
  };
  const cluster = parseClusterUrl(url);
  if (cluster) {
    const credentials = {
      ...(cluster.username ? { username: cluster.username } : {}),
      ...(cluster.password ? { password: cluster.password } : {}),
    };
    if (!commands) {
      // Plain SUBSCRIBE, not ioredis' Cluster subscriber: a cluster carries every PUBLISH to every node, so
      // one connection to any node hears all channels; as a Redis of its own it says when it drops and is
      // back ('close', 'ready', its channels subscribed again), which the live events' catch-up and the
      // cache's reset wait for. The Cluster's subscriber moves to another node silently.
      return new Redis({ ...common, ...credentials, ...(cluster.tls ? { tls } : {}), Connector: nodesInTurn(cluster) });
    }
    // ioredis' Cluster asks a node for the slots on a connection of its own whose errors it drops, and then says
    // only "Failed to refresh slots cache.": a certificate refused there is told on the cluster instead.
    let connection: ConnectedCluster | undefined;
    const refused = (error: Error) => {
      if (connection?.listenerCount('error')) connection.emit('error', error);
    };
    const nodeConnector = streamConnector(addressOf, refused);
    const clusterOptions: ClusterOptions = {
      lazyConnect: true,
      enableOfflineQueue: false,
      clusterRetryStrategy: backoff,
      // A command meeting a dead master (its slots not yet taken over by a replica) fails within ~300 ms
      // instead of waiting out the failover: the caller falls back (L1 + database, in-process limits), as for
      // one Redis. Not at once: ioredis also answers "Connection is closed" for a node whose connection is
      // still being made (a node just discovered), which a retry 50 ms later finds ready.
      retryDelayOnFailover: 50,
      maxRedirections: 6,
      retryDelayOnClusterDown: 0,
      // Learn a promoted replica soon even where no MOVED reply tells (a command to a dead node meets none).
      slotsRefreshInterval: 1_000,
      redisOptions: {
        connectTimeout: common.connectTimeout!,
        ...bounded,
        ...credentials,
        ...(cluster.tls ? { tls, Connector: nodeConnector } : {}),
      },
    };
    connection = new ConnectedCluster(cluster.nodes, clusterOptions);
    return connection;
  }
  const sentinel = parseSentinelUrl(url);
  // ioredis turns TLS on for rediss:// by itself, but with Node's roots only: the CA is given here, and the
  // connector is Parley's (a host name as SNI, every error of the stream listened to).
  if (!sentinel) return new Redis(url, /^rediss:/.test(url) ? { ...common, tls, Connector: streamConnector(addressOf) } : common);
  return new Redis({
    ...common,
    sentinels: sentinel.sentinels,
    name: sentinel.name,
    db: sentinel.db,
    ...(sentinel.username ? { username: sentinel.username } : {}),
    ...(sentinel.password ? { password: sentinel.password } : {}),
    ...(sentinel.sentinelPassword ? { sentinelPassword: sentinel.sentinelPassword } : {}),
    ...(sentinel.tls ? { tls, enableTLSForSentinelMode: true, Connector: SentinelStreams } : {}),
    // Sentinels are asked again on every reconnect; retry them as the master is retried.
    sentinelRetryStrategy: backoff,
    // A master demoted by a failover answers writes with READONLY: reconnect (to the new master) and resend.
    // (A subscriber left on a demoted master still hears what the new one publishes: replicas get PUBLISH.)
    // Not ioredis' failoverDetector: when its +switch-master notice lands while a connection is asking the
    // sentinels where the master is, that connect fails with "Connection is closed" and the connection
    // ends for good (status "end", never retried) — seen killing the master under load in the failover test.
    reconnectOnError: (error) => (error.message.startsWith('READONLY') ? 2 : false),
  });
}

/**
 * A cluster whose `connect()` resolves once it can take commands for every slot.
 * ioredis opens a node's connection on the first command for it, and without
 * an offline queue it refuses the commands that come while that connection is
 * being made: a burst at start-up (or for a node that just became a master)
 * would fail for nothing. So every node is connected as soon as it is known.
 */
class ConnectedCluster extends Cluster {
  constructor(...args: ConstructorParameters<typeof Cluster>) {
    super(...args);
    // Not while the cluster itself connects: its ready check must find a node idle ('wait') or ready.
    this.on('+node', (node: Redis) => {
      if (this.status === 'ready') void this.open([node]);
    });
  }

  override async connect(): Promise<void> {
    await super.connect();
    await this.open(this.nodes('all'));
  }

  private async open(nodes: Redis[]): Promise<void> {
    await Promise.all(nodes.map((node) => (node.status === 'wait' ? node.connect().catch(() => undefined) : undefined)));
  }
}

/**
 * ioredis' connector for a subscriber to a cluster: each (re)connect goes to the
 * next node of the URL, so a dead node is left for a live one at the next retry.
 */
function nodesInTurn(cluster: ClusterTarget): NonNullable<RedisOptions['Connector']> {
  let next = 0;
  return streamConnector(() => cluster.nodes[next++ % cluster.nodes.length]!);
}

/**
 * A connector doing what ioredis' own does (a TCP stream, or a TLS one with the
 * `tls` options, to `target()`), which also tells `refused` of a certificate
 * the stream refused.
 */
function streamConnector(
  target: (options: RedisOptions) => { host: string; port: number },
  refused?: (error: Error) => void,
): NonNullable<RedisOptions['Connector']> {
  return class StreamConnector extends AbstractConnector {
    private readonly options: RedisOptions;

    constructor(options: unknown) {
      super((options as RedisOptions).disconnectTimeout ?? 2_000);
      this.options = options as RedisOptions;
    }

    connect(): Promise<NonNullable<typeof this.stream>> {
      const { host, port } = target(this.options);
      const { tls, family } = this.options;
      this.connecting = true;
      // As ioredis' own connector: the stream is made on the next tick, unless disconnect() came first.
      return new Promise((resolve, reject) => {
        process.nextTick(() => {
          if (!this.connecting) return reject(new Error('Connection is closed.'));
          // A host name is sent as SNI (Node sends none unless told; proxies in front of managed Redis route
          // by it); an IP address is not (RFC 6066, Node's DEP0123 warning). Either way Node checks the
          // certificate against the host: a name against its DNS SANs, an address against its IP SANs.
          this.stream = tls
            ? tlsConnect({ ...tls, host, port, ...(isIP(host) ? {} : { servername: host }), ...(family ? { family } : {}) })
            : createConnection({ host, port, ...(family ? { family } : {}) });
          listenForEveryError(this.stream, (error) => {
            this.firstError = error;
            if (refused && isCertificateError(error)) refused(error);
          });
          resolve(this.stream);
        });
      });
    }
  };
}

/** Where ioredis' options (from the URL, or a cluster node's) say to connect. */
const addressOf = (options: RedisOptions) => ({ host: options.host ?? 'localhost', port: options.port ?? 6379 });

/**
 * ioredis listens for one error per stream (`once`, in its connectors and in
 * Redis), but a TLS stream can fail twice: after a certificate Parley refused,
 * the node's own alert is read too (`tlsv1 alert decode error`, seen in
 * `redis-tls.test.ts` against a cluster), and an error with no listener is an
 * uncaught exception, which ends the process. So every TLS stream keeps one;
 * `first` is told the first error.
 */
function listenForEveryError(stream: NodeJS.EventEmitter, first?: (error: Error) => void): void {
  let failed = false;
  stream.on('error', (error: Error) => {
    if (failed) return;
    failed = true;
    first?.(error);
  });
}

/**
 * ioredis' connector for Sentinel (it asks the sentinels, then connects to the
 * master), its TLS streams kept listened to. (ioredis gives only the connector
 * it makes itself an `emitter`, for its sentinelReconnecting and
 * failoverSubscribed events, which Parley does not use.)
 */
class SentinelStreams extends SentinelConnector {
  constructor(options: unknown) {
    super(options as ConstructorParameters<typeof SentinelConnector>[0]);
  }

  override async connect(emitter: Parameters<SentinelConnector['connect']>[0]): ReturnType<SentinelConnector['connect']> {
    const stream = await super.connect(emitter);
    listenForEveryError(stream);
    return stream;
  }
}

/** Node's codes for a certificate it did not accept: not signed by a trusted CA, expired, or for another host. */
function isCertificateError(error: Error): boolean {
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' && /CERT|ISSUER|SIGNATURE|ALTNAME|INVALID_CA|INVALID_PURPOSE|PATH_LENGTH/.test(code);
}

/** An error's message, and for a certificate error what to do about it (the error alone does not say it was Redis's). */
function describeRedisError(error: Error): string {
  if (!isCertificateError(error)) return error.message;
  const code = (error as { code?: string }).code;
  return `${error.message} (${code}): Redis's TLS certificate was refused; PARLEY_REDIS_CA_FILE (or NODE_EXTRA_CA_CERTS) must hold the CA that signed it, and it must name the host connected to`;
}

/**
 * Logs the first error of each outage of a group of connections (ioredis emits
 * 'error' on every failed reconnect), and, with `back`, when they are ready again.
 */
export function reportOutages(connections: RedisClient[], log: Logger, messages: { down: string; back?: string }): void {
  let reported = false;
  for (const connection of connections) {
    connection.on('error', (error: Error) => {
      if (!reported) log.warn(messages.down, { error: describeRedisError(error) });
      reported = true;
    });
    connection.on('ready', () => {
      if (reported && messages.back) log.info(messages.back);
      reported = false;
    });
  }
}
