import { promisify } from 'node:util';
import { brotliCompress, constants, gzip } from 'node:zlib';
import type { Plugin } from 'graphql-yoga';
import { LRUCache } from 'lru-cache';

const brotli = promisify(brotliCompress);
const gzipAsync = promisify(gzip);

export interface CompressionOptions {
  /** Bodies smaller than this go as they are (compressing them costs more than it saves); 0 = never compress. @default 1024 */
  minBytes?: number;
  /** Brotli quality: 4 compresses JSON better than gzip at a similar cost; 11 is for static files. @default 4 */
  brotliQuality?: number;
  /** @default 6 */
  gzipLevel?: number;
  /** Compressed bodies kept by ETag and encoding, so a body served again (a response-cache hit) is compressed once. @default 16 MiB */
  cachedBytes?: number;
}

/**
 * Compresses a response with brotli or gzip, whichever the client's
 * Accept-Encoding prefers (q-values honoured, brotli on a tie), when it is at
 * least `minBytes`. Only whole bodies (JSON results, GraphiQL's page): a
 * stream (SSE, multipart) is never buffered, and goes as it is. Compression
 * runs on libuv's thread pool, off the event loop.
 */
export function useCompression({
  minBytes = 1024,
  brotliQuality = 4,
  gzipLevel = 6,
  cachedBytes = 16 * 1024 * 1024,
}: CompressionOptions = {}): Plugin {
  // An ETag names the exact JSON (see http-cache.ts and infra/cache/response-cache.ts).
  const compressed = new LRUCache<string, Uint8Array>({ maxSize: Math.max(1, cachedBytes), sizeCalculation: (b) => Math.max(1, b.byteLength) });
  const compress = (body: Uint8Array, encoding: 'br' | 'gzip') =>
    encoding === 'br'
      ? brotli(body, { params: { [constants.BROTLI_PARAM_QUALITY]: brotliQuality, [constants.BROTLI_PARAM_SIZE_HINT]: body.byteLength } })
      : gzipAsync(body, { level: gzipLevel });
  return {
    async onResponse({ request, response, setResponse, fetchAPI }) {
      if (minBytes <= 0 || !response.body || response.headers.has('content-encoding')) return;
      const type = response.headers.get('content-type') ?? '';
      if (!/json|text\/html|text\/plain/.test(type)) return;
      const encoding = preferredEncoding(request.headers.get('accept-encoding'));
      if (!encoding) return;
      const length = response.headers.get('content-length');
      if (length !== null && Number(length) < minBytes) return;
      const body = new Uint8Array(await response.arrayBuffer());
      const headers = new fetchAPI.Headers(response.headers);
      headers.set('content-type', type);
      headers.append('vary', 'accept-encoding');
      let out: Uint8Array = body;
      if (body.byteLength >= minBytes) {
        const etag = response.headers.get('etag');
        const id = etag ? `${encoding} ${etag}` : undefined;
        const known = id ? compressed.get(id) : undefined;
        out = known ?? (await compress(body, encoding));
        if (id && !known && cachedBytes > 0) compressed.set(id, out);
        headers.set('content-encoding', encoding);
      }
      headers.set('content-length', String(out.byteLength));
      setResponse(new fetchAPI.Response(out as unknown as BodyInit, { status: response.status, statusText: response.statusText, headers }));
    },
  };
}

/** `br` or `gzip` by q-value (brotli on a tie, `*` counting for both); undefined when neither is acceptable. */
export function preferredEncoding(header: string | null): 'br' | 'gzip' | undefined {
  if (!header) return undefined;
  const q: Record<string, number> = {};
  for (const part of header.split(',')) {
    const [name, ...params] = part.trim().toLowerCase().split(';');
    if (!name) continue;
    const qParam = params.map((p) => p.trim()).find((p) => p.startsWith('q='));
    const value = qParam ? Number(qParam.slice(2)) : 1;
    q[name] = Number.isFinite(value) ? value : 0;
  }
  const of = (name: string) => q[name] ?? q['*'] ?? 0;
  const br = of('br');
  const gz = of('gzip');
  if (br <= 0 && gz <= 0) return undefined;
  return br >= gz ? 'br' : 'gzip';
}
