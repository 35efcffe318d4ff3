import type { Plugin } from 'graphql-yoga';

/**
 * Refuses a request body larger than `maxBytes` with 413 and
 * `extensions.code: PAYLOAD_TOO_LARGE`: at once from Content-Length, and while
 * reading when the body is chunked (no length announced), so a large body is
 * never held in memory.
 * @default maxBytes 1 MiB
 */
export function useBodyLimit({ maxBytes = 1024 * 1024, onReject }: { maxBytes?: number; onReject?: () => void } = {}): Plugin {
  const tooLarge = (fetchAPI: { Response: typeof Response }) => {
    onReject?.();
    return new fetchAPI.Response(
      JSON.stringify({ errors: [{ message: `Request body is larger than ${maxBytes} bytes`, extensions: { code: 'PAYLOAD_TOO_LARGE' } }] }),
      { status: 413, headers: { 'content-type': 'application/json; charset=utf-8', connection: 'close' } },
    );
  };
  const limited = new WeakSet<Request>();
  return {
    onRequest({ request, setRequest, endResponse, fetchAPI }) {
      if (!request.body) return;
      const announced = request.headers.get('content-length');
      if (announced !== null) {
        if (Number(announced) > maxBytes) endResponse(tooLarge(fetchAPI));
        return;
      }
      let seen = 0;
      const counter = new fetchAPI.TransformStream<Uint8Array, Uint8Array>({
        transform(chunk, controller) {
          seen += chunk.byteLength;
          if (seen > maxBytes) controller.error(new BodyTooLargeError());
          else controller.enqueue(chunk);
        },
      });
      const wrapped = new fetchAPI.Request(request.url, {
        method: request.method,
        headers: request.headers,
        body: request.body.pipeThrough(counter),
        signal: request.signal,
        // @ts-expect-error Node's fetch needs it for a stream body; not in the DOM types
        duplex: 'half',
      });
      limited.add(wrapped);
      setRequest(wrapped);
    },
    onRequestParse({ request, requestParser, setRequestParser, fetchAPI }) {
      if (!limited.has(request) || !requestParser) return;
      setRequestParser(async (req) => {
        try {
          return await requestParser(req);
        } catch (error) {
          if (causedByLimit(error)) return tooLarge(fetchAPI);
          throw error;
        }
      });
    },
  };
}

class BodyTooLargeError extends Error {
  override name = 'BodyTooLargeError';
}

/** Yoga's JSON parser rethrows a read failure as "invalid JSON", naming the original in its extensions. */
function causedByLimit(error: unknown): boolean {
  const e = error as { cause?: unknown; extensions?: { originalError?: { name?: string } } } | undefined;
  return error instanceof BodyTooLargeError || e?.cause instanceof BodyTooLargeError || e?.extensions?.originalError?.name === 'BodyTooLargeError';
}
