import type { App } from '../src/app.js';

/**
 * GraphQL through the whole Yoga stack in this process (`yoga.fetch`, no socket), as a product key;
 * errors thrown: for the scripts that measure one request at a time (answers, the answer evaluation).
 */
export function inProcessGql(app: App, host: string) {
  // biome-ignore lint/suspicious/noExplicitAny: the scripts read the data of the documents they send
  return async (key: string, query: string, variables: Record<string, unknown> = {}): Promise<any> => {
    const response = await app.yoga.fetch(`http://${host}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
    // biome-ignore lint/suspicious/noExplicitAny: as above
    const body = (await response.json()) as { data: any; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  };
}
