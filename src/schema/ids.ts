import { formatPrismaCursor, parsePrismaCursor } from '@pothos/plugin-prisma';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { BadUserInputError } from '../errors.js';
import { isUuid } from '../services/ids.js';

/**
 * Decodes a Relay global id of the expected type to its database id. A
 * malformed id, or one of another type, is a BAD_USER_INPUT naming the
 * argument; a well-formed id that does not exist — or belongs to another
 * product — is for the caller to treat as NOT_FOUND / null.
 */
export function parseGlobalId(globalId: string, typename: string, field: string): string {
  let decoded: { typename: string; id: string } | undefined;
  try {
    decoded = decodeGlobalID(globalId);
  } catch {
    decoded = undefined;
  }
  if (!decoded || decoded.typename !== typename || !isUuid(decoded.id)) {
    throw new BadUserInputError(`${field} is not a valid ${typename} id`, field);
  }
  return decoded.id;
}

/** For node lookups: the raw id inside a global id must be a UUID. */
export function nodeUuid(id: string, typename: string): string {
  if (!isUuid(id)) throw new BadUserInputError(`id is not a valid ${typename} id`, 'id');
  return id;
}

/**
 * The row id inside a connection's `after`/`before` cursor, or undefined when
 * neither is given. Anything but a uuid is BAD_USER_INPUT naming the argument
 * (Prisma would fail on it). Prisma finds a cursor's row by id alone, whoever
 * owns it, so callers must also filter on the cursor row being their own: a
 * foreign row would position the page where a missing one gives an empty page.
 */
export function cursorUuid(fieldArgs: object): string | undefined {
  // The connection arguments are there at run time even where a field's type names only its own.
  const args = fieldArgs as { after?: string | null; before?: string | null };
  const cursor = args.after ?? args.before;
  if (cursor == null) return undefined;
  const field = args.after != null ? 'after' : 'before';
  let id: unknown;
  try {
    id = parsePrismaCursor(cursor);
  } catch {
    id = undefined;
  }
  if (typeof id !== 'string' || !isUuid(id)) throw new BadUserInputError(`${field} is not a valid cursor`, field);
  return id;
}

/** What a conversations cursor holds: the row's place in the order, and the product it was issued to. */
const CONVERSATION_CURSOR = ['lastMessageAt', 'id', 'productId'];

/**
 * A conversation's cursor: its place in the list (lastMessageAt, id), so a
 * page starts there without first reading the cursor's row, and the product
 * it was issued to, so another product's cursor gives an empty page as it did
 * when the row was looked up among the caller's own. Encoded as plugin-prisma
 * encodes compound cursors (`GPC:` + typed tuple), which cursors of the
 * earlier format (`GPC:` + the id) share.
 */
export function conversationCursor(row: { lastMessageAt: Date | string; id: string }, productId: string): string {
  // A page read from the cache may hold the date as a string: the same row gets the same cursor.
  return formatPrismaCursor({ lastMessageAt: new Date(row.lastMessageAt), id: row.id, productId }, CONVERSATION_CURSOR);
}

/**
 * The `after`/`before` cursor of a conversations page: the place it starts
 * from, only an id (a cursor of the earlier format), 'elsewhere' for another
 * product's, or undefined when neither argument is given. Anything else is
 * BAD_USER_INPUT naming the argument.
 */
export function conversationCursorPlace(
  fieldArgs: { after?: string | null | undefined; before?: string | null | undefined },
  productId: string,
): { lastMessageAt: Date; id: string } | { id: string } | 'elsewhere' | undefined {
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
  if (Array.isArray(value) && value.length === CONVERSATION_CURSOR.length) {
    const [lastMessageAt, id, owner] = value as unknown[];
    if (lastMessageAt instanceof Date && !Number.isNaN(lastMessageAt.getTime()) && typeof id === 'string' && isUuid(id) && typeof owner === 'string') {
      return owner === productId ? { lastMessageAt, id } : 'elsewhere';
    }
  }
  throw new BadUserInputError(`${field} is not a valid cursor`, field);
}

/** The argument pairs plugin-prisma's connections refuse, refused the same way by connections paged here. */
export function refuseMixedDirections(args: { first?: number | null; last?: number | null; after?: string | null; before?: string | null }): void {
  const refuse = (a: string, b: string) => {
    throw new BadUserInputError(`Arguments "${a}" and "${b}" are not supported at the same time`, b);
  };
  if (args.before != null && args.after != null) refuse('before', 'after');
  if (args.before != null && args.first != null) refuse('before', 'first');
  if (args.after != null && args.last != null) refuse('after', 'last');
}
