import { request } from 'node:http';
import { brotliDecompressSync, gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { preferredEncoding } from '../../src/plugins/compression.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { seedConversations } from '../helpers/fixtures.js';
import { openSse, CONVERSATION_EVENTS } from '../helpers/live.js';
import { within } from '../helpers/time.js';

/**
 * Responses of at least PARLEY_COMPRESSION_MIN_BYTES (1 KiB) go compressed
 * with brotli or gzip, as Accept-Encoding prefers; small ones and streams
 * (SSE) go as they are. Checked on the raw bytes of a real socket.
 */

const NESTED = `{ conversations(first: 10) { edges { node { id title messages(first: 10) { edges { node { id role content } } } } } } }`;

interface Raw {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

describe('response compression', () => {
  const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
  let t: TestApp;
  let key: string;
  let productId: string;
  let port: number;

  const post = (query: string, headers: Record<string, string>, toPort = port) =>
    within(
      new Promise<Raw>((resolve, reject) => {
        const req = request(
          {
            host: '127.0.0.1',
            port: toPort,
            path: '/graphql',
            method: 'POST',
            agent: false,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${key}`, ...headers },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
          },
        );
        req.on('error', reject);
        req.end(JSON.stringify({ query }));
      }),
      10_000,
      'POST',
    );

  beforeAll(async () => {
    t = await createTestApp(pglite);
    const product = await t.product('Compressed');
    key = product.key;
    productId = product.id;
    await seedConversations(t.prisma, productId, { conversations: 5, messages: 6 });
    port = (await t.app.start(0, '127.0.0.1')).port;
  });
  afterAll(() => t?.dispose());

  it('compresses a large result with brotli or gzip as asked, to the same JSON', async () => {
    const plain = await post(NESTED, {});
    expect(plain.headers['content-encoding']).toBeUndefined();
    expect(plain.body.byteLength).toBeGreaterThan(1024);
    const expected = JSON.parse(plain.body.toString());
    expect(expected.errors).toBeUndefined();

    const br = await post(NESTED, { 'accept-encoding': 'gzip, deflate, br' });
    expect(br.headers['content-encoding']).toBe('br');
    expect(br.headers.vary).toMatch(/accept-encoding/i);
    expect(Number(br.headers['content-length'])).toBe(br.body.byteLength);
    expect(br.body.byteLength).toBeLessThan(plain.body.byteLength / 2);
    expect(JSON.parse(brotliDecompressSync(br.body).toString())).toEqual(expected);

    const gz = await post(NESTED, { 'accept-encoding': 'gzip' });
    expect(gz.headers['content-encoding']).toBe('gzip');
    expect(JSON.parse(gunzipSync(gz.body).toString())).toEqual(expected);
    // The request id survives the new response.
    expect(gz.headers['x-request-id']).toBeTruthy();
  });

  it('leaves small results and clients that accept neither alone', async () => {
    const small = await post('{ viewer { name } }', { 'accept-encoding': 'br, gzip' });
    expect(small.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(small.body.toString())).toEqual({ data: { viewer: { name: 'Compressed' } } });
    const identity = await post(NESTED, { 'accept-encoding': 'identity, br;q=0' });
    expect(identity.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(identity.body.toString()).data.conversations.edges).toHaveLength(5);
  });

  it('never buffers an SSE stream', async () => {
    const conversation = await t.prisma.conversation.findFirstOrThrow({ where: { productId } });
    const sse = await openSse(
      port,
      { authorization: `Bearer ${key}`, 'accept-encoding': 'gzip, br' },
      {
        query: CONVERSATION_EVENTS,
        variables: { id: Buffer.from(`Conversation:${conversation.id}`).toString('base64') },
      },
    );
    try {
      expect(sse.status).toBe(200);
      expect(sse.headers['content-type']).toMatch(/text\/event-stream/);
      expect([undefined, 'none']).toContain(sse.headers['content-encoding']);
      // Events arrive as they happen, not when a buffer fills.
      const id = Buffer.from(`Conversation:${conversation.id}`).toString('base64');
      const sent = await t.gql('mutation($c: ID!) { sendMessage(input: { conversationId: $c, content: "streamed" }) { message { id } } }', {
        key,
        variables: { c: id },
      });
      expect(sent.errors).toBeUndefined();
      expect((await sse.next()).data.conversationEvents.__typename).toBe('MessageAdded');
    } finally {
      sse.close();
    }
  });

  it('is off with PARLEY_COMPRESSION_MIN_BYTES=0', async () => {
    const off = await createTestApp(pglite, { PARLEY_COMPRESSION_MIN_BYTES: '0' }, { shared: t.database });
    try {
      const offPort = (await off.app.start(0, '127.0.0.1')).port;
      const res = await post(NESTED, { 'accept-encoding': 'br, gzip' }, offPort);
      expect(res.headers['content-encoding']).toBeUndefined();
      expect(JSON.parse(res.body.toString()).data.conversations.edges).toHaveLength(5);
    } finally {
      await off.dispose();
    }
  });
});

describe('preferredEncoding', () => {
  it.each([
    ['gzip, deflate, br', 'br'],
    ['br', 'br'],
    ['gzip', 'gzip'],
    ['gzip;q=1.0, br;q=0.5', 'gzip'],
    ['br;q=0, gzip', 'gzip'],
    ['*', 'br'],
    ['*;q=0.1, gzip;q=0.5', 'gzip'],
    ['deflate', undefined],
    ['identity', undefined],
    ['gzip;q=0, br;q=0', undefined],
    ['', undefined],
  ])('%j -> %s', (header, expected) => {
    expect(preferredEncoding(header)).toBe(expected);
  });
});
