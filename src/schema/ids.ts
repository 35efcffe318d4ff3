import { decodeGlobalID } from '@pothos/plugin-relay';
import { BadUserInputError } from '../errors.js';
import { conversationFieldScopes, type Principal } from '../services/auth.js';
import { isUuid } from '../services/ids.js';
import { cursorPlace, type PageArgs } from './pages.js';

/**
 * Decodes a Relay global id of the expected type to its database id. A
 * malformed id, or one of another type, is a BAD_USER_INPUT naming the
 * argument; a well-formed id that does not exist — or belongs to another
 * product — is for the caller to treat as NOT_FOUND / null.
 */
export function parseGlobalId(globalId: string, typename: string, field: string): string {
  const decoded = tryDecodeGlobalId(globalId);
  if (!decoded || decoded.typename !== typename || !isUuid(decoded.id)) {
    throw new BadUserInputError(`${field} is not a valid ${typename} id`, field);
  }
  return decoded.id;
}

/**
 * `t.withAuth` scopes of a root field about the conversation its argument at
 * `path` names (see conversationFieldScopes). They run before the field's
 * arguments have their types: the argument is read by its path.
 */
export function conversationArgScopes(path: 'id' | 'conversationId' | 'input.conversationId') {
  return (_root: unknown, args: object, ctx: Principal) => {
    const raw =
      path === 'input.conversationId'
        ? (args as { input: { conversationId: unknown } }).input.conversationId
        : (args as Record<string, unknown>)[path];
    return conversationFieldScopes(ctx, parseGlobalId(String(raw), 'Conversation', path));
  };
}

/** A global id's type name and id, or undefined when it is not one (plugin-relay's decoder throws). */
export function tryDecodeGlobalId(globalId: string): { typename: string; id: string } | undefined {
  try {
    return decodeGlobalID(globalId);
  } catch {
    return undefined;
  }
}

/** For node lookups: the raw id inside a global id must be a UUID. */
export function nodeUuid(id: string, typename: string): string {
  if (!isUuid(id)) throw new BadUserInputError(`id is not a valid ${typename} id`, 'id');
  return id;
}

/**
 * The row id inside a connection's `after`/`before` cursor, or undefined when
 * neither is given; a keyset cursor (see placeCursor) gives its row's id, so a
 * cursor of Query.conversations also pages Product.conversations. Anything
 * else is BAD_USER_INPUT naming the argument (Prisma would fail on it).
 * Prisma finds a cursor's row by id alone, whoever owns it, so callers must
 * also filter on the cursor row being their own: a foreign row would position
 * the page where a missing one gives an empty page.
 */
export function cursorUuid(fieldArgs: object): string | undefined {
  // The connection arguments are there at run time even where a field's type names only its own.
  return cursorPlace(fieldArgs as PageArgs)?.id;
}
