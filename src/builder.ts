import SchemaBuilder from '@pothos/core';
import { DateTimeResolver, JSONResolver } from 'graphql-scalars';
import PrismaPlugin from '@pothos/plugin-prisma';
import RelayPlugin from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { AuthScopeFailureType, type AuthFailure } from '@pothos/plugin-scope-auth';
import { BadUserInputError, ForbiddenError } from './errors.js';
import ExposedColumnsPlugin from './schema/exposed-columns.js';
import GlobalIdArgsPlugin from './schema/global-id-args.js';
import { decodeGlobalId } from './schema/ids.js';
import type { Context } from './context.js';
import type PrismaTypes from './generated/pothos-prisma-types.js';
import { getDatamodel } from './generated/pothos-prisma-types.js';
import type { Product } from './generated/prisma/client.js';
import { adminTokenRequired, authScopes, FULL_ACCESS, productKeyRequired, type AuthScopes } from './services/auth.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './services/validation.js';

/** A request that acts for a product: what a field's resolver sees once a product-implying scope passed. */
type ProductContext = Context & { product: Product };

/** The scopes a failure refused, at any depth. */
function refused(failure: AuthFailure, scope: keyof AuthScopes): boolean {
  if (failure.kind === AuthScopeFailureType.AuthScope) return failure.scope === scope;
  if (failure.kind === AuthScopeFailureType.AllAuthScopes || failure.kind === AuthScopeFailureType.AnyAuthScopes) {
    return failure.failures.some((f) => refused(f, scope));
  }
  return false;
}

const NODE_TYPES = new Set(['Product', 'KnowledgeEntry', 'Conversation', 'Message', 'Feedback']);

export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  AuthScopes: AuthScopes;
  // Every scope but fullAccess and admin implies a product key: `t.withAuth(…)` narrows ctx.product.
  AuthContexts: {
    product: ProductContext;
    publishableKey: ProductContext;
    conversationToken: ProductContext;
    conversation: ProductContext;
    publishableSearch: ProductContext;
  };
  DefaultAuthStrategy: 'any';
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    JSON: { Input: unknown; Output: unknown };
  };
}>({
  defaultFieldNullability: false,
  // ExposedColumnsPlugin wraps plugin-prisma's resolvers, so it comes first (see its file).
  // Scope auth first: its checks run before any other plugin's wrapper (exposedColumns wraps plugin-prisma's resolvers).
  plugins: [ScopeAuthPlugin, ExposedColumnsPlugin, PrismaPlugin, RelayPlugin, GlobalIdArgsPlugin],
  scopeAuth: {
    authScopes,
    defaultStrategy: 'any',
    // A subscription is refused when it starts, not at its first event.
    authorizeOnSubscribe: true,
    // Object types check their scopes once per object (isTypeOf), not once per field.
    runScopesOnType: true,
    // No product key: UNAUTHENTICATED; no admin token: FORBIDDEN; a publishable key beyond its reach: FORBIDDEN.
    unauthorizedError: (_parent, context, _info, result) => {
      if (!context.product && refused(result.failure, 'product')) return productKeyRequired();
      if (!context.isAdmin && refused(result.failure, 'admin')) return adminTokenRequired();
      return new ForbiddenError('Not allowed with a publishable key: it may start a conversation and use the one its conversation token opens.');
    },
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodesOnConnection: true,
    // An id naming no node type is the client's mistake, not an internal error.
    // Open to publishable keys: each node type's lookup (findUnique) only finds what the principal may see.
    nodeQueryOptions: { skipTypeScopes: true, authScopes: { fullAccess: true, publishableKey: true } },
    nodesQueryOptions: { skipTypeScopes: true, authScopes: { fullAccess: true, publishableKey: true } },
    // Also decodes `t.arg.globalID` arguments, once global-id-args.ts has checked them.
    decodeGlobalID: (globalID) => {
      const decoded = decodeGlobalId(globalID);
      if (!decoded || !NODE_TYPES.has(decoded.typename)) throw new BadUserInputError('id is not a valid node id', 'id');
      return decoded;
    },
  },
  prisma: {
    client: (ctx) => ctx.prisma,
    dmmf: getDatamodel(),
    exposeDescriptions: false,
    filterConnectionTotalCount: true,
    defaultConnectionSize: DEFAULT_PAGE_SIZE,
    maxConnectionSize: MAX_PAGE_SIZE,
    onUnusedQuery: null,
  },
});

// graphql-scalars' DateTime (RFC 3339 in UTC, validated on input) and JSON (any JSON value).
builder.addScalarType('DateTime', DateTimeResolver);
builder.addScalarType('JSON', JSONResolver);

// Fail closed: every root field is for full access unless it opens itself to publishable keys (skipTypeScopes).
builder.queryType({ authScopes: FULL_ACCESS });
builder.mutationType({ authScopes: FULL_ACCESS });
builder.subscriptionType({ authScopes: FULL_ACCESS });
