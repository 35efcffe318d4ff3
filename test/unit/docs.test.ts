import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CONFIG_VARIABLES } from '../../src/config.js';

/**
 * The README is what a newcomer reads first and docs/ holds the rest. What
 * rots between them when code moves is checked here: every page is reachable
 * from the README, every relative link and #anchor leads to a file and a
 * heading that exist, every variable src/config.ts reads is documented, and
 * every command and repository path the pages name is still there.
 */

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

const docs = readdirSync(join(ROOT, 'docs'))
  .filter((name) => name.endsWith('.md'))
  .map((name) => `docs/${name}`);
const pages = ['README.md', ...docs];

interface Page {
  /** Text outside fenced code blocks, inline code replaced by `code`. */
  prose: string;
  /** GitHub's anchors of the page's headings. */
  anchors: Set<string>;
}

/** GitHub's heading anchor: lower case, punctuation dropped, each space a hyphen. */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, '$1')
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '')
    .replace(/\s/g, '-');
}

function parse(text: string): Page {
  const prose: string[] = [];
  const anchors = new Set<string>();
  let fenced = false;
  for (const line of text.split('\n')) {
    if (line.trimStart().startsWith('```')) {
      fenced = !fenced;
      continue;
    }
    if (fenced) continue;
    const heading = /^#{1,6}\s+(.*?)\s*#*$/.exec(line);
    if (heading) {
      const base = slug(heading[1]!);
      let anchor = base;
      for (let n = 1; anchors.has(anchor); n++) anchor = `${base}-${n}`;
      anchors.add(anchor);
    }
    prose.push(line.replace(/`[^`\n]+`/g, 'code'));
  }
  return { prose: prose.join('\n'), anchors };
}

const parsed = new Map(pages.map((path) => [path, parse(read(path))]));

interface Link {
  from: string;
  target: string;
  /** Repository path the link resolves to ('' when it leaves the repository). */
  path: string;
  anchor: string;
}

function links(from: string): Link[] {
  const found: Link[] = [];
  for (const [, target] of parsed.get(from)!.prose.matchAll(/\[[^\]]*\]\(([^)\s]+)(?:\s+"[^"]*")?\)/g)) {
    if (/^[a-z][a-z+.-]*:/i.test(target!)) continue; // http:, https:, mailto:
    const [file, anchor = ''] = target!.split('#', 2) as [string, string?];
    const path = file === '' ? from : normalize(join(dirname(from), decodeURIComponent(file)));
    found.push({ from, target: target!, path: path.startsWith('..') ? '' : path, anchor });
  }
  return found;
}

const allLinks = pages.flatMap(links);

describe('README and docs/', () => {
  it('the README links to every page of docs/', () => {
    expect(docs.length).toBeGreaterThan(0);
    const linked = new Set(links('README.md').map((link) => link.path));
    for (const page of docs) expect(linked, page).toContain(page);
  });

  it('each page of docs/ opens with its title, then a one-line summary linking back to the README', () => {
    for (const page of docs) {
      const [title, blank, summary] = read(page).split('\n');
      expect(title, page).toMatch(/^# \S/);
      expect(blank, page).toBe('');
      expect(summary, page).toContain('](../README.md');
    }
  });

  it('every relative link points to an existing file, and every #anchor to a heading of it', () => {
    expect(allLinks.length).toBeGreaterThan(50);
    for (const { from, target, path, anchor } of allLinks) {
      expect(path, `${from}: ${target} leaves the repository`).not.toBe('');
      expect(existsSync(join(ROOT, path)), `${from}: ${target}`).toBe(true);
      if (!anchor) continue;
      expect(path, `${from}: ${target} has an anchor into a file that is not markdown`).toMatch(/\.md$/);
      const headings = parsed.get(path)?.anchors ?? parse(read(path)).anchors;
      expect(headings, `${from}: ${target}`).toContain(anchor);
    }
  });

  it('every variable src/config.ts reads is in docs/configuration.md and .env.example', () => {
    const configuration = read('docs/configuration.md');
    const example = read('.env.example');
    expect(CONFIG_VARIABLES.length).toBeGreaterThan(50);
    for (const name of CONFIG_VARIABLES) {
      expect(configuration.includes(`\`${name}\``), `docs/configuration.md lacks ${name}`).toBe(true);
      expect(new RegExp(`^#? ?${name}=`, 'm').test(example), `.env.example lacks ${name}=`).toBe(true);
    }
  });

  it('the configuration table names no variable that src/config.ts does not read', () => {
    const rows = read('docs/configuration.md')
      .split('\n')
      .filter((line) => /^\| `[A-Z]/.test(line));
    const named = rows.flatMap((row) => [...row.split('|')[1]!.matchAll(/`([A-Z][A-Z0-9_]+)`/g)].map((m) => m[1]!));
    expect([...new Set(named)].sort()).toEqual([...CONFIG_VARIABLES].sort());
  });

  it('every npm script named is one package.json has', () => {
    const scripts = Object.keys((JSON.parse(read('package.json')) as { scripts: Record<string, string> }).scripts);
    let count = 0;
    for (const page of pages) {
      for (const [, run, lifecycle] of read(page).matchAll(/\bnpm (?:run\s+([\w:-]+)|(start|test)\b)/g)) {
        count++;
        expect(scripts, `${page}: npm ${run ? `run ${run}` : lifecycle}`).toContain(run ?? lifecycle);
      }
    }
    expect(count).toBeGreaterThan(20);
  });

  it('every file a command runs, and every repository path named in code, exists', () => {
    // Build output and data directories are named but not committed.
    const ignored = read('.gitignore')
      .split('\n')
      .map((line) => line.trim())
      .filter((line) => line && !line.startsWith('#'));
    const isIgnored = (path: string) => ignored.some((entry) => path.startsWith(entry.replace(/^\//, '')));
    for (const page of pages) {
      const text = read(page);
      const scripts = [...text.matchAll(/\bnpx tsx ([\w./-]+)/g)].map((m) => m[1]!);
      const named = [...text.matchAll(/`((?:src|test|bench|deploy|prisma|scripts|widget|\.ci)\/[^`\s<>*]*)`/g)].map((m) => m[1]!);
      for (const path of [...scripts, ...named]) {
        if (isIgnored(path)) continue;
        expect(existsSync(join(ROOT, path)), `${page}: ${path}`).toBe(true);
      }
    }
  });
});
