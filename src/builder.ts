import SchemaBuilder from '@pothos/core';
import DataloaderPlugin from '@pothos/plugin-dataloader';
import PrismaPlugin from '@pothos/plugin-prisma';
import RelayPlugin, { decodeGlobalID } from '@pothos/plugin-relay';
import { BadUserInputError } from './errors.js';
import ExposedColumnsPlugin from './schema/exposed-columns.js';
import type { Context } from './context.js';
import type PrismaTypes from './generated/pothos-prisma-types.js';
import { getDatamodel } from './generated/pothos-prisma-types.js';
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE } from './services/validation.js';

const NODE_TYPES = new Set(['Product', 'KnowledgeEntry', 'Conversation', 'Message', 'Feedback']);

export const builder = new SchemaBuilder<{
  Context: Context;
  PrismaTypes: PrismaTypes;
  DefaultFieldNullability: false;
  Scalars: {
    DateTime: { Input: Date; Output: Date | string };
    JSON: { Input: unknown; Output: unknown };
  };
}>({
  defaultFieldNullability: false,
  // ExposedColumnsPlugin wraps plugin-prisma's resolvers, so it comes first (see its file).
  plugins: [ExposedColumnsPlugin, PrismaPlugin, RelayPlugin, DataloaderPlugin],
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodesOnConnection: true,
    // An id naming no node type is the client's mistake, not an internal error.
    decodeGlobalID: (globalID) => {
      let decoded: { typename: string; id: string } | undefined;
      try {
        decoded = decodeGlobalID(globalID);
      } catch {
        decoded = undefined;
      }
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

builder.scalarType('DateTime', {
  description: 'An ISO-8601 date-time in UTC.',
  serialize: (value) => (value instanceof Date ? value.toISOString() : new Date(value).toISOString()),
  parseValue: (value) => {
    const date = new Date(String(value));
    if (Number.isNaN(date.getTime())) throw new TypeError('DateTime must be an ISO-8601 string');
    return date;
  },
});

builder.scalarType('JSON', {
  description: 'Arbitrary JSON.',
  serialize: (value) => value,
  parseValue: (value) => value,
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
