import { parseCursorConnectionArgs } from '@pothos/core';
import { formatPrismaCursor, parsePrismaCursor } from '@pothos/plugin-prisma';
import { BadUserInputError } from '../errors.js';
import { isUuid } from '../services/ids.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from '../services/validation.js';

/** The arguments of a Relay connection field. */
export interface PageArgs {
  first?: number | null | undefined;
  last?: number | null | undefined;
  after?: string | null | undefined;
  before?: string | null | undefined;
}

/** A row's place in a list ordered by a time then the id, and the owner of the list it was issued for. */
export interface CursorPlace {
  at: Date;
  id: string;
  owner: string;
}

const PLACE = ['at', 'id', 'owner'];

/**
 * A keyset cursor: the row's place in its list (the order's time, then the
 * id), so a page starts there without first reading the cursor's row, and the
 * owner of the list it was issued for (a product, a conversation), so a cursor
 * of another list gives an empty page, as it did when the row was looked up
 * among the caller's own. Encoded as plugin-prisma encodes compound cursors
 * (`GPC:` + typed tuple), which cursors of the earlier format (`GPC:` + the
 * row id alone) share.
 */
export function placeCursor(at: Date | string, id: string, owner: string): string {
  // A row read from the cache may hold the date as a string: the same row gets the same cursor.
  return formatPrismaCursor({ at: new Date(at), id, owner }, PLACE);
}

/**
 * The `after`/`before` cursor of a page: the place it starts from, only a row
 * id (a cursor of the earlier format), or undefined when neither argument is
 * given. Anything else is BAD_USER_INPUT naming the argument.
 */
export function cursorPlace(fieldArgs: PageArgs): CursorPlace | { id: string } | undefined {
  const cursor = fieldArgs.after ?? fieldArgs.before;
  if (cursor == null) return undefined;
  const field = fieldArgs.after != null ? 'after' : 'before';
  let value: unknown;
  try {
    value = parsePrismaCursor(cursor);
  } catch {
    value = undefined;
  }
  if (typeof value === 'string' && isUuid(value)) return { id: value };
  if (Array.isArray(value) && value.length === PLACE.length) {
    const [at, id, owner] = value as unknown[];
    if (at instanceof Date && !Number.isNaN(at.getTime()) && typeof id === 'string' && isUuid(id) && typeof owner === 'string') {
      return { at, id, owner };
    }
  }
  throw new BadUserInputError(`${field} is not a valid cursor`, field);
}

/** The argument pairs plugin-prisma's connections refuse, refused the same way by connections paged here. */
export function refuseMixedDirections(args: PageArgs): void {
  const refuse = (a: string, b: string) => {
    throw new BadUserInputError(`Arguments "${a}" and "${b}" are not supported at the same time`, b);
  };
  if (args.before != null && args.after != null) refuse('before', 'after');
  if (args.before != null && args.first != null) refuse('before', 'first');
  if (args.after != null && args.last != null) refuse('after', 'last');
}

/** How many rows a page reads (its size and one more) and whether it reads backwards (`last`/`before`). */
export function pageSize(args: PageArgs): { take: number; backwards: boolean } {
  const { limit, inverted } = parseCursorConnectionArgs({ args, defaultSize: DEFAULT_PAGE_SIZE, maxSize: MAX_PAGE_SIZE });
  return { take: limit, backwards: inverted };
}

/**
 * A Relay connection over rows read as pageSize says (backwards pages nearest
 * the cursor first), with the page arithmetic of Pothos' resolveCursorConnection
 * (parseCursorConnectionArgs). Built here rather than by resolveCursorConnection
 * for what a profile of a nested page showed: that one is async, so each of the
 * 20 nested pages of a list was a promise, and it encodes every edge's cursor
 * though most queries select none (5 % of the CPU of a cursor page). Here a page
 * whose rows are loaded is returned at once, and a cursor is encoded when read.
 * An empty page has no cursors, as plugin-prisma's connections answer.
 */
export function keysetConnection<T>(args: PageArgs, toCursor: (row: T) => string, rows: T[] | Promise<T[]>) {
  return Array.isArray(rows) ? connectionOf(args, toCursor, rows) : rows.then((loaded) => connectionOf(args, toCursor, loaded));
}

class Edge<T> {
  constructor(
    readonly node: T,
    private readonly toCursor: (row: T) => string,
  ) {}

  get cursor(): string {
    return this.toCursor(this.node);
  }
}

function connectionOf<T>(args: PageArgs, toCursor: (row: T) => string, rows: T[]) {
  const { expectedSize, inverted, hasPreviousPage, hasNextPage } = parseCursorConnectionArgs({
    args,
    defaultSize: DEFAULT_PAGE_SIZE,
    maxSize: MAX_PAGE_SIZE,
  });
  const page = rows.slice(0, expectedSize);
  if (inverted) page.reverse();
  const edges = page.map((row) => new Edge(row, toCursor));
  return {
    edges,
    pageInfo: {
      get startCursor() {
        return edges[0]?.cursor ?? null;
      },
      get endCursor() {
        return edges.at(-1)?.cursor ?? null;
      },
      hasPreviousPage: hasPreviousPage(rows.length),
      hasNextPage: hasNextPage(rows.length),
    },
  };
}
