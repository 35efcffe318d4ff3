import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { expect, it } from 'vitest';

/**
 * Imports in src/ run one way: no module reaches itself through what it
 * imports, types included (a reader sees a circle either way). Shared
 * interfaces live in a module both sides import (infra/pubsub/types.ts,
 * services/types.ts), not in one of the two.
 */
const SRC = resolve(import.meta.dirname, '../../src');

function modules(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) {
      // Prisma's generated client is not ours to arrange.
      if (name !== 'generated') modules(path, out);
    } else if (path.endsWith('.ts')) out.push(path);
  }
  return out;
}

/** Every cycle found by a depth-first walk, as the chain of modules that closes it. */
function cycles(files: string[], root = SRC): string[][] {
  const known = new Set(files);
  const imports = new Map(
    files.map((file) => {
      const text = readFileSync(file, 'utf8');
      const targets = [...text.matchAll(/^(?:import|export)\s[^;]*?from\s+'(\.[^']+)'/gms)].map((m) =>
        resolve(dirname(file), m[1]!.replace(/\.js$/, '.ts')),
      );
      return [file, targets.filter((t) => known.has(t))] as const;
    }),
  );
  const found: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string) => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of imports.get(file) ?? []) {
      if (state.get(next) === 'open') found.push([...stack.slice(stack.indexOf(next)), next].map((f) => relative(root, f)));
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file);
  return found;
}

it('src/ has no import cycles', () => {
  const files = modules(SRC);
  expect(files.length).toBeGreaterThan(50);
  expect(cycles(files)).toEqual([]);
});

it('finds a cycle through type-only imports (the check itself works)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'parley-cycles-'));
  try {
    writeFileSync(join(dir, 'a.ts'), "import { b } from './b.js';\nexport const a = b;\n");
    writeFileSync(join(dir, 'b.ts'), "import type {\n  A,\n} from './a.js';\nexport const b = 1;\nexport type B = A;\n");
    writeFileSync(join(dir, 'c.ts'), "import { a } from './a.js';\nexport const c = a;\n");
    expect(cycles(modules(dir), dir)).toEqual([['a.ts', 'b.ts', 'a.ts']]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
