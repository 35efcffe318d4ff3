import { createHash } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A deterministic OpenAI-compatible `/embeddings` server on 127.0.0.1 (real
 * HTTP): a text's vector is its content words, lower case, with a plural `s`
 * cut and a few synonyms made one word ("price" = "cost"), hashed into 256
 * dimensions. It is no language model: it only lets tests see the mechanics
 * (batching, the cache, matching by similarity, failures) with known answers.
 */

const STOP = new Set(
  'a an and are can could did do does for from how i if in is it its me my of on or our the to was we what when where which who why will with would you your much many'.split(
    ' ',
  ),
);
const SYNONYMS: Record<string, string> = {
  price: 'cost',
  costs: 'cost',
  package: 'parcel',
  packages: 'parcel',
  purchase: 'order',
  guarantee: 'warranty',
};
const DIMENSIONS = 256;

export function fakeEmbedding(text: string): number[] {
  const vector = new Array<number>(DIMENSIONS).fill(0);
  for (const raw of text.toLowerCase().split(/[^\p{L}\p{N}]+/u)) {
    if (!raw || STOP.has(raw)) continue;
    const word = SYNONYMS[raw] ?? (raw.length > 3 && raw.endsWith('s') ? raw.slice(0, -1) : raw);
    const slot = createHash('sha256').update(word).digest().readUInt32BE(0) % DIMENSIONS;
    vector[slot]! += 1;
  }
  return vector;
}

export interface FakeEmbeddings {
  /** Base URL for PARLEY_EMBEDDINGS_BASE_URL (…/v1). */
  url: string;
  /** The inputs of each call, in order. */
  calls: string[][];
  /** Answer every call with this HTTP status instead (undefined: answer). */
  failWith: number | undefined;
  dispose(): Promise<void>;
}

export async function startFakeEmbeddings(): Promise<FakeEmbeddings> {
  const fake: FakeEmbeddings = { url: '', calls: [], failWith: undefined, dispose: async () => undefined };
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      if (req.method !== 'POST' || req.url !== '/v1/embeddings') return void res.writeHead(404).end();
      const { input } = JSON.parse(body || '{}') as { input?: string | string[] };
      const inputs = Array.isArray(input) ? input : [input ?? ''];
      fake.calls.push(inputs);
      if (fake.failWith) return void res.writeHead(fake.failWith, { 'content-type': 'application/json' }).end('{"error":{"message":"down"}}');
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({ object: 'list', data: inputs.map((text, index) => ({ object: 'embedding', index, embedding: fakeEmbedding(text) })) }),
      );
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  fake.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`;
  fake.dispose = () =>
    new Promise((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return fake;
}
