import { decodeGlobalID } from '@pothos/plugin-relay';
import { BadUserInputError } from '../errors.js';
import { conversationFieldScopes, type Principal } from '../services/auth.js';
import { isUuid } from '../services/ids.js';
import { cursorPlace, type PageArgs } from './pages.js';

/** A global id's type name and the row id inside it. */
export interface GlobalId {
  typename: string;
  id: string;
}

/**
 * A global id's type name and id, or undefined when it is not one: the one
 * place Parley decodes global ids (plugin-relay's decoder throws on garbage).
 * plugin-relay decodes `t.arg.globalID` arguments and node ids with it too
 * (`relay.decodeGlobalID` in builder.ts).
 */
export function decodeGlobalId(globalId: string): GlobalId | undefined {
  try {
    return decodeGlobalID(globalId);
  } catch {
    return undefined;
  }
}

/**
 * The row id inside a global id of one of `typenames`. A malformed id, one of
 * another type, or one without a UUID inside (Prisma would fail on it) is a
 * BAD_USER_INPUT naming the argument; a well-formed id that does not exist — or
 * belongs to another product — is for the caller to treat as NOT_FOUND / null.
 */
export function parseGlobalId(globalId: string, typenames: readonly string[], field: string): string {
  const decoded = decodeGlobalId(globalId);
  if (!decoded || !typenames.includes(decoded.typename) || !isUuid(decoded.id)) {
    throw new BadUserInputError(`${field} is not a valid ${typenames.join(' or ')} id`, field);
  }
  return decoded.id;
}

const REFUSED = Symbol('refused global id');

/**
 * The arguments of a field whose global id argument was refused (see
 * global-id-args.ts): none but the refusal, which the field throws once its
 * auth scopes have run, as its resolver did when it parsed ids by hand.
 */
export function refusedArgs(error: BadUserInputError): Record<string, unknown> {
  return { [REFUSED]: error };
}

/** The refusal refusedArgs holds, if these arguments are such. */
export function refusalOf(args: object): BadUserInputError | undefined {
  return (args as { [REFUSED]?: BadUserInputError })[REFUSED];
}

/**
 * `t.withAuth` scopes of a root field about the conversation its
 * `t.arg.globalID` argument at `path` names (see conversationFieldScopes).
 * They see the argument decoded: Pothos runs plugin-relay's arg mapper (and
 * the check of global-id-args.ts) before every plugin's resolver wrapper,
 * scope-auth's included. An id refused is BAD_USER_INPUT here, whoever asks:
 * the scopes cannot be known without it. conversationEvents keeps a plain ID
 * argument (see events.ts): that one is parsed here.
 */
export function conversationArgScopes(path: 'id' | 'conversationId' | 'input.conversationId') {
  return (_root: unknown, args: object, ctx: Principal) => {
    const refusal = refusalOf(args);
    if (refusal) throw refusal;
    const arg =
      path === 'input.conversationId'
        ? (args as { input: { conversationId: GlobalId } }).input.conversationId
        : (args as Record<'id' | 'conversationId', GlobalId | string>)[path];
    return conversationFieldScopes(ctx, typeof arg === 'string' ? parseGlobalId(arg, ['Conversation'], path) : arg.id);
  };
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
