import type { App } from '../src/app.js';

/**
 * GraphQL through the whole Yoga stack in this process (`yoga.fetch`, no socket), as a product key;
 * errors thrown: for the scripts that measure one request at a time (answers, the answer evaluation).
 */
export function inProcessGql(app: App, host: string) {
  return async (key: string, query: string, variables: Record<string, unknown> = {}): Promise<any> => {
    const response = await app.yoga.fetch(`http://${host}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
    });
    const body = (await response.json()) as { data: any; errors?: unknown[] };
    if (body.errors) throw new Error(JSON.stringify(body.errors));
    return body.data;
  };
}
