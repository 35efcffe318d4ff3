import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLogger, withRequestId } from '../../src/infra/log.js';
import { createMaskError } from '../../src/plugins/errors.js';
import { createTestApp, TEST_ADMIN_TOKEN, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';
import { gatedDatabase, type GatedDatabase } from '../helpers/gate.js';

/**
 * Structured JSON logs (pino): a request id in every line and in the
 * `x-request-id` header; a slow-operation line with name, duration and SQL
 * count; and no product key or admin token in anything logged, even at debug
 * level, even when a client puts one where it does not belong.
 */

function capture(): { stream: Writable; text(): string; lines(): any[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk, _encoding, done) {
      chunks.push(String(chunk));
      done();
    },
  });
  return {
    stream,
    text: () => chunks.join(''),
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l)),
  };
}

describe('logs', () => {
  const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
  const output = capture();
  let t: TestApp;
  let gated: GatedDatabase;
  let key: string;
  let port: number;

  beforeAll(async () => {
    t = await createTestApp(
      pglite,
      // 30 ms: an operation held by the gate for 60 ms is slow, whatever the machine does.
      { PARLEY_LOG_LEVEL: 'debug', PARLEY_SLOW_MS: '30' },
      {
        log: createLogger('debug', { destination: output.stream, secrets: [TEST_ADMIN_TOKEN] }),
        wrapDatabase: (db) => (gated = gatedDatabase(db)).db,
      },
    );
    key = (await t.product('Logs')).key;
    port = (await t.app.start(0, '127.0.0.1')).port;
  });
  afterAll(() => t?.dispose());

  const post = (body: object, headers: Record<string, string> = {}) =>
    fetch(`http://127.0.0.1:${port}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });

  it('echoes a request id in x-request-id, keeping a sane one the client sent', async () => {
    const generated = await post({ query: '{ viewer { name } }' }, { authorization: `Bearer ${key}` });
    expect(generated.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    const kept = await post({ query: '{ viewer { name } }' }, { authorization: `Bearer ${key}`, 'x-request-id': 'lb-42.abc' });
    expect(kept.headers.get('x-request-id')).toBe('lb-42.abc');
    const replaced = await post({ query: '{ viewer { name } }' }, { authorization: `Bearer ${key}`, 'x-request-id': 'bad id\twith "quotes"' });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('logs an operation slower than PARLEY_SLOW_MS with its name, duration, SQL count and request id', async () => {
    const hold = gated.hold();
    const pending = post(
      { query: 'query SlowViewer { viewer { stats { conversationCount } } }' },
      { authorization: `Bearer ${key}`, 'x-request-id': 'slow-1' },
    );
    await hold.entered;
    await new Promise((r) => setTimeout(r, 60));
    hold.release();
    const res = await pending;
    expect(res.status).toBe(200);
    const line = output.lines().find((l) => l.msg === 'slow operation' && l.operation === 'SlowViewer');
    expect(line).toMatchObject({ level: 'warn', type: 'query', requestId: 'slow-1' });
    expect(line.durationMs).toBeGreaterThanOrEqual(30);
    expect(line.sqlStatements).toBeGreaterThanOrEqual(1);
    expect(typeof line.sqlMs).toBe('number');
    expect(typeof line.time).toBe('string');
    expect(line).not.toHaveProperty('variables');
  });

  it('never writes a product key or the admin token, whatever the client sends', async () => {
    const wrongKey = 'pk_live_' + 'Wr0ngKeyWr0ngKeyWr0ngKeyWr0ngKey';
    await post({ query: '{ viewer { name } }' }, { authorization: `Bearer ${key}` });
    await post({ query: '{ viewer { name } }' }, { 'x-product-key': key });
    await post({ query: '{ viewer { name } }' }, { authorization: `Bearer ${wrongKey}` });
    await post({ query: '{ products(first: 1) { edges { node { id } } } }' }, { 'x-admin-token': TEST_ADMIN_TOKEN });
    await post({ query: '{ products(first: 1) { edges { node { id } } } }' }, { authorization: `Bearer ${TEST_ADMIN_TOKEN}x` });
    // Secrets where they do not belong: in variables, in a broken query, in an operation name.
    await post(
      { query: 'query Q($k: String) { viewer { name } }', variables: { k: key, token: TEST_ADMIN_TOKEN } },
      { authorization: `Bearer ${key}` },
    );
    await post({ query: `{ viewer { ${key} } }` }, { authorization: `Bearer ${key}` });
    await post({ query: `{ viewer(key: "${key}") { name } }` }, { authorization: `Bearer ${key}` });
    const text = output.text();
    expect(text.length).toBeGreaterThan(0);
    expect(output.lines().some((l) => l.level === 'debug')).toBe(true);
    for (const secret of [key, key.slice(8), wrongKey, TEST_ADMIN_TOKEN, TEST_ADMIN_TOKEN.slice(4)]) expect(text).not.toContain(secret);
  });

  it('masks a key quoted by an unexpected error on its way to the log', () => {
    const out = capture();
    const mask = createMaskError(createLogger('debug', { destination: out.stream }));
    const productKey = 'pk_live_AbCdEfGhIjKlMnOpQrStUvWxYz012345';
    const masked = mask(new Error(`driver failed: SELECT … WHERE "keyHash" = '${productKey}'`), 'Unexpected error.');
    expect(masked.message).toBe('Unexpected error.');
    expect(out.lines()[0]).toMatchObject({ level: 'error', msg: 'unexpected error' });
    expect(out.text()).toContain('pk_live_[redacted]');
    expect(out.text()).not.toContain(productKey);
  });

  it('masks both kinds of key and conversation tokens, and the token header whole', () => {
    const out = capture();
    const log = createLogger('debug', { destination: out.stream });
    const secret = 'sk_live_AbCdEfGhIjKlMnOpQrStUvWxYz012345';
    const publishable = 'pk_pub_AbCdEfGhIjKlMnOpQrStUvWxYz012345';
    const token = 'ct_AZFqD0nVcXCAgR2mJzq1VQBmU3xpkM6bQ0F3sX1p8RU2XH8Ae4fGq4zLwE5VaL0hdWy';
    log.warn(`keys ${secret} ${publishable} token ${token}`, { 'x-conversation-token': token, conversationToken: token });
    const line = out.lines()[0];
    expect(line.msg).toBe('keys sk_live_[redacted] pk_pub_[redacted] token ct_[redacted]');
    expect(line).toMatchObject({ 'x-conversation-token': '[redacted]', conversationToken: '[redacted]' });
    for (const value of [secret, publishable, token]) expect(out.text()).not.toContain(value.slice(8));
  });

  it('masks keys, tokens and URL passwords in messages, fields and errors; credential fields whole', () => {
    const out = capture();
    const log = createLogger('debug', { destination: out.stream, secrets: ['custom-secret-value'] });
    const productKey = 'pk_live_AbCdEfGhIjKlMnOpQrStUvWxYz012345';
    withRequestId('req-7', () =>
      log.error(`failed for ${productKey}`, {
        error: new Error(`bad key ${productKey} at postgresql://parley:hunter2@db:5432/parley`),
        nested: { deeper: [`adm_${'x'.repeat(30)}`, 'custom-secret-value', 'sk-proj-0123456789abcdefABCD'] },
        authorization: 'Basic dXNlcjpwYXNz',
        productKey: 'anything',
      }),
    );
    const [line] = out.lines();
    expect(line).toMatchObject({
      level: 'error',
      requestId: 'req-7',
      msg: 'failed for pk_live_[redacted]',
      authorization: '[redacted]',
      productKey: '[redacted]',
    });
    expect(line.error.message).toBe('bad key pk_live_[redacted] at postgresql://parley:[redacted]@db:5432/parley');
    expect(line.nested.deeper).toEqual(['adm_[redacted]', '[redacted]', 'sk-[redacted]']);
    expect(out.text()).not.toMatch(/hunter2|AbCdEf|xxxxxxxx|custom-secret-value|dXNlcjpwYXNz/);
  });

  it('honours the level', () => {
    const out = capture();
    const log = createLogger('warn', { destination: out.stream });
    log.info('quiet');
    log.warn('loud', { n: 1 });
    expect(out.lines()).toEqual([expect.objectContaining({ level: 'warn', msg: 'loud', n: 1 })]);
    const silent = capture();
    createLogger('silent', { destination: silent.stream }).error('nothing');
    expect(silent.text()).toBe('');
  });
});
