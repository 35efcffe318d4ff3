/**
 * One subscription over graphql-ws (the graphql-transport-ws protocol), kept
 * alive across dropped sockets and server restarts.
 *
 * The subset of the protocol a single subscription needs is written here
 * rather than bundling the graphql-ws client: measured with this build
 * (esbuild, minified, gzip -9) the client alone is 3.3 KB gzipped, this file
 * about 0.6 KB. And its retries resend the payload of the first subscribe,
 * while a resumed subscription must carry the newest `after` cursor (what was
 * seen before the socket dropped), so the reconnect policy would be ours anyway.
 */

enum Close {
  Unauthorized = 4401,
  Forbidden = 4403,
}

export type LiveStatus = 'connecting' | 'live' | 'offline';

export interface LiveOptions {
  /** ws:// or wss:// URL of the GraphQL endpoint. */
  url: string;
  connectionParams: Record<string, unknown>;
  query: string;
  /** Read at each (re)subscribe: the variables carry the newest `after`. */
  variables(): Record<string, unknown>;
  onData(data: any): void;
  onStatus(status: LiveStatus): void;
  /** The server refused the credentials or the operation: retrying would only be refused again. */
  onRefused(code: string, message: string): void;
}

/** Error codes after which the same request can succeed later. */
export const TRANSIENT = new Set(['RATE_LIMITED', 'OVERLOADED', 'DATABASE_UNAVAILABLE', 'SHUTTING_DOWN']);

/** Backoff after a drop: 0.25 s doubling to 5 s, with jitter, so a restarted server is not met by every widget at once. */
const delay = (attempt: number) => Math.min(5_000, 250 * 2 ** attempt) * (0.5 + Math.random() / 2);

export function openLive(options: LiveOptions): { close(): void } {
  let socket: WebSocket | undefined;
  let attempt = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;

  const retryNow = () => {
    if (closed || socket) return;
    clearTimeout(timer);
    connect();
  };

  function connect(): void {
    timer = undefined;
    options.onStatus('connecting');
    const ws = (socket = new WebSocket(options.url, 'graphql-transport-ws'));
    const send = (message: object) => ws.send(JSON.stringify(message));
    ws.onopen = () => send({ type: 'connection_init', payload: options.connectionParams });
    ws.onmessage = ({ data }) => {
      const message = JSON.parse(String(data)) as { type: string; payload?: any };
      switch (message.type) {
        case 'connection_ack':
          attempt = 0;
          send({ id: '1', type: 'subscribe', payload: { query: options.query, variables: options.variables() } });
          options.onStatus('live');
          break;
        case 'ping':
          send({ type: 'pong' });
          break;
        case 'next': {
          const error = message.payload?.errors?.[0];
          if (error) refuse(error);
          else options.onData(message.payload.data);
          break;
        }
        case 'error':
          refuse(message.payload?.[0] ?? {});
          break;
        case 'complete':
          // The server ended the stream without an error: resume it on a new socket.
          ws.close(1000);
          break;
      }
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = undefined;
      if (closed) return;
      if (event.code === Close.Unauthorized || event.code === Close.Forbidden) {
        return refuse({ message: event.reason, extensions: { code: 'UNAUTHENTICATED' } });
      }
      options.onStatus('offline');
      timer = setTimeout(connect, delay(attempt++));
    };
  }

  function refuse(error: { message?: string; extensions?: { code?: string } }): void {
    const code = error.extensions?.code ?? 'ERROR';
    // Busy or restarting: the same subscription, later, on a new socket.
    if (TRANSIENT.has(code)) {
      socket?.close(1000);
      return;
    }
    close();
    options.onRefused(code, error.message ?? 'refused');
  }

  function close(): void {
    closed = true;
    clearTimeout(timer);
    removeEventListener('online', retryNow);
    const open = socket;
    socket = undefined;
    open?.close(1000);
  }

  // Back on the network: no need to wait for the backoff.
  addEventListener('online', retryNow);
  connect();
  return { close };
}
