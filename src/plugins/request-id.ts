import { randomUUID } from 'node:crypto';
import type { Plugin } from 'graphql-yoga';
import { withRequestId } from '../infra/log.js';

/**
 * Every HTTP request gets an id, echoed in the `x-request-id` response header
 * and carried by every log line written while it is served (so a slow-operation
 * line can be matched with what the client saw). A proxy's or client's own
 * `x-request-id` is kept when it is a sane token; anything else is replaced.
 * @default header `x-request-id`
 */
export function useRequestId({ header = 'x-request-id' }: { header?: string } = {}): Plugin {
  const ids = new WeakMap<Request, string>();
  return {
    instrumentation: {
      request({ request }, wrapped) {
        const sent = request.headers.get(header);
        const id = sent && isSaneRequestId(sent) ? sent : randomUUID();
        ids.set(request, id);
        return withRequestId(id, wrapped);
      },
    },
    onResponse({ request, response }) {
      const id = ids.get(request);
      if (id) response.headers.set(header, id);
    },
  };
}

/** A request id sent by a proxy or client that is kept (a sane token); anything else is replaced. */
export function isSaneRequestId(id: string): boolean {
  return /^[A-Za-z0-9._:-]{1,128}$/.test(id);
}
