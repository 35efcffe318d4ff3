import { describe, expect, it } from 'vitest';
import { keysetConnection } from '../../src/schema/pages.js';

const rows = (n: number) => Array.from({ length: n }, (_, i) => ({ id: `r${i}` }));

describe('keysetConnection', () => {
  it('builds a page of loaded rows at once, and encodes a cursor only when it is read', () => {
    const encoded: string[] = [];
    const toCursor = (row: { id: string }) => {
      encoded.push(row.id);
      return `c:${row.id}`;
    };
    const page = keysetConnection({ first: 2 }, toCursor, rows(3));
    expect(page).not.toBeInstanceOf(Promise);
    const { edges, pageInfo } = page as Exclude<typeof page, Promise<unknown>>;
    expect(edges.map((e) => e.node.id)).toEqual(['r0', 'r1']);
    expect(encoded).toEqual([]);
    expect(edges[1]!.cursor).toBe('c:r1');
    expect(pageInfo).toMatchObject({ startCursor: 'c:r0', endCursor: 'c:r1', hasNextPage: true, hasPreviousPage: false });
  });

  it('turns a backwards page (read nearest the cursor first) into list order', async () => {
    const page = await keysetConnection({ last: 2, before: 'x' }, (row) => row.id, Promise.resolve(rows(3)));
    expect(page.edges.map((e) => e.node.id)).toEqual(['r1', 'r0']);
    expect(page.pageInfo).toMatchObject({ hasPreviousPage: true, hasNextPage: true });
  });

  it('gives an empty page no cursors', () => {
    const page = keysetConnection<{ id: string }>({ first: 5, after: 'x' }, (row) => row.id, []) as { pageInfo: object };
    expect(page.pageInfo).toMatchObject({ startCursor: null, endCursor: null, hasPreviousPage: true, hasNextPage: false });
  });
});
