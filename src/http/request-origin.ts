import { trustedForwardedEntry } from './client-ip.js';
import { browserOrigin, type BrowserOrigin } from '../services/origins.js';

export interface OriginHeaders {
  origin: string | null | undefined;
  /** The host the request was sent to (Host, or the host of Yoga's request URL, built from it). */
  host: string | null | undefined;
  forwardedHost: string | string[] | null | undefined;
}

/**
 * The page a browser request (or WebSocket upgrade) comes from, and whether it
 * is Parley's own. Behind `trustedProxies` proxies the host the client asked
 * for may be in X-Forwarded-Host (a proxy that rewrites Host): the entry the
 * outermost trusted proxy wrote counts too, never one further left (the
 * client's to write), as for X-Forwarded-For (client-ip.ts).
 */
export function requestOrigin(headers: OriginHeaders, trustedProxies: number): BrowserOrigin | null {
  const forwarded = trustedProxies > 0 ? trustedForwardedEntry(headers.forwardedHost, trustedProxies) : undefined;
  return browserOrigin(headers.origin, [headers.host, forwarded]);
}

/** The host of a request URL as a browser writes it in an Origin (no default port). */
export function urlHost(url: string): string | undefined {
  try {
    return new URL(url).host;
  } catch {
    return undefined;
  }
}
