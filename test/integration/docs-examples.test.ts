import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rotateProductKey } from '../../src/services/products.js';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { databaseVariants } from '../helpers/db.js';

/**
 * The curl session a newcomer copies first — the README's example and its
 * continuation in docs/api.md — run as written against a fresh Parley with
 * the demo product: each command must succeed, its `# =>` line must match
 * what came back (`…` stands for anything, digits for any number), and a
 * request with an idempotency key sent twice must answer the same.
 * A command this file does not understand fails the test, so a new one is
 * taught here rather than left unchecked.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** The ```sh blocks of the section under `heading` (up to the next heading of its level). */
function shellBlocks(path: string, heading: string): string[] {
  const text = readFileSync(`${ROOT}/${path}`, 'utf8');
  const start = text.indexOf(`\n${heading}\n`);
  expect(start, `${path}: ${heading}`).toBeGreaterThan(-1);
  const level = heading.split(' ')[0]!;
  const rest = text.slice(start + heading.length + 2);
  const end = rest.search(new RegExp(`^${level} `, 'm'));
  const section = end === -1 ? rest : rest.slice(0, end);
  return [...section.matchAll(/^```sh\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

interface Command {
  source: string;
  headers: Record<string, string>;
  body: string;
  expected: string[];
}

/** The requests of a shell block: `gql '<json>'`, and `curl … -H '…' -d '<json>'`. */
function commands(block: string): Command[] {
  const lines = block
    .replace(/\\\n\s*/g, ' ')
    .split('\n')
    .map((line) => line.trim());
  const found: Command[] = [];
  let last: Command | null = null;
  for (const line of lines) {
    if (line === '') continue;
    if (line.startsWith('# =>')) {
      // Only right under its command: after another comment it describes some other situation.
      if (last) last.expected.push(line.slice(4).trim());
      continue;
    }
    last = null;
    if (line.startsWith('#') || /^(URL|KEY|PK)=/.test(line) || line.startsWith('gql() {')) continue;
    const gql = /^gql '(.*)'$/.exec(line);
    if (gql) {
      // What the session's gql() sends.
      const headers = { 'content-type': 'application/json', authorization: 'Bearer $KEY' };
      found.push((last = { source: line, headers, body: gql[1]!, expected: [] }));
      continue;
    }
    const curl = /^curl -s \$URL (.*) -d '(.*)'$/.exec(line);
    expect(curl, `a command the examples test does not know: ${line}`).not.toBeNull();
    const headers: Record<string, string> = {};
    for (const [, a, b] of curl![1]!.matchAll(/-H (?:'([^']*)'|"([^"]*)")/g)) {
      const [name, value] = (a ?? b)!.split(/:\s*(.*)/s, 2) as [string, string];
      headers[name.toLowerCase()] = value;
    }
    found.push((last = { source: line, headers, body: curl![2]!, expected: [] }));
  }
  return found;
}

/** `…` (and the space after it) is anything; every number is any number. */
function pattern(expected: string): RegExp {
  const parts = expected.split(/…\s?/).map((part) => part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&').replace(/\d+/g, '\\d+'));
  return new RegExp(parts.join('[\\s\\S]*?'));
}

describe('the example session of the README and docs/api.md', () => {
  const pglite = databaseVariants().find((v) => v.name === 'pglite')!;
  let t: TestApp;
  const values: Record<string, string> = {};

  beforeAll(async () => {
    t = await createTestApp(pglite, { PARLEY_DEMO: 'true' });
    values.$KEY = t.app.demo!.key!;
    values.$PK = (await rotateProductKey(t.store, t.app.demo!.productId, 'PUBLISHABLE')).key;
  });
  afterAll(() => t?.dispose());

  async function run(command: Command): Promise<{ status: number; text: string; data: unknown }> {
    const fill = (s: string) =>
      s
        .replace(/\$KEY|\$PK/g, (name) => values[name]!)
        .replace(/Q29udmVyc2F0aW9uOj…/g, values.conversation ?? 'no conversation started yet')
        .replace(/ct_…/g, values.token ?? 'no token issued yet');
    const headers = Object.fromEntries(Object.entries(command.headers).map(([k, v]) => [k, fill(v)]));
    const body = fill(command.body);
    const response = await t.app.yoga.fetch('http://parley.test/graphql', {
      method: 'POST',
      headers: { ...headers, 'content-length': String(Buffer.byteLength(body)) },
      body,
    });
    const raw = await response.text();
    expect(raw, `${command.source}: HTTP ${response.status}, no body`).not.toBe('');
    const result = JSON.parse(raw) as { data?: Record<string, any>; errors?: unknown };
    expect(result.errors, `${command.source}\n${JSON.stringify(result.errors)}`).toBeUndefined();
    const started = result.data?.startConversation as { id?: string; conversationToken?: string } | undefined;
    if (started?.id) values.conversation = started.id;
    if (started?.conversationToken) values.token = started.conversationToken;
    return { status: response.status, text: JSON.stringify(result), data: result.data };
  }

  it.each([
    ['README.md', '## Example'],
    ['docs/api.md', '## An example session'],
  ])('%s %s: every command succeeds and answers what its # => line says', async (path, heading) => {
    const found = shellBlocks(path, heading).flatMap(commands);
    expect(found.length, `${path}: ${heading}`).toBeGreaterThan(1);
    for (const command of found) {
      const { status, text, data } = await run(command);
      expect(status, command.source).toBe(200);
      for (const expected of command.expected) expect(text, command.source).toMatch(pattern(expected));
      if (command.body.includes('idempotencyKey')) expect((await run(command)).data, `${command.source} sent again`).toEqual(data);
    }
  });
});
