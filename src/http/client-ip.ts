import type { IncomingMessage } from 'node:http';

/**
 * The address a request comes from. Behind `trustedProxies` proxies (a load
 * balancer, an ingress) the socket's peer is the last proxy, and each proxy
 * appended the address it saw to X-Forwarded-For: the client is the entry
 * `trustedProxies` from the right. Entries further left are the client's to
 * write and never trusted. Undefined when there is no socket (in-process calls).
 */
export function clientIp(req: Pick<IncomingMessage, 'headers' | 'socket'> | undefined, trustedProxies: number): string | undefined {
  const peer = req?.socket?.remoteAddress;
  if (!req || !peer) return undefined;
  if (trustedProxies <= 0) return normalise(peer);
  return normalise(trustedForwardedEntry(req.headers['x-forwarded-for'], trustedProxies) ?? peer);
}

/**
 * The entry of a comma-separated X-Forwarded-* header that the outermost of
 * `trustedProxies` proxies wrote: `trustedProxies` from the right. Entries
 * further left are the client's to write. Fewer entries than proxies: the
 * request skipped a proxy, and the leftmost is the best there is.
 */
export function trustedForwardedEntry(header: string | string[] | null | undefined, trustedProxies: number): string | undefined {
  const forwarded = (Array.isArray(header) ? header.join(',') : (header ?? ''))
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
  return forwarded.length ? forwarded[Math.max(0, forwarded.length - trustedProxies)] : undefined;
}

/** One client, one key: IPv4 as itself even on a dual-stack socket. */
function normalise(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
