import SchemaBuilder, { BasePlugin, type PothosOutputFieldConfig, type SchemaTypes } from '@pothos/core';
import { encodeGlobalID } from '@pothos/plugin-relay';
import type { GraphQLFieldResolver } from 'graphql';

/**
 * Answers a field that exposes a column of a Prisma object (`t.exposeString('content')`,
 * `t.expose('role', …)`) straight from the row when the row holds the column.
 *
 * plugin-prisma wraps every field that selects from its parent's row, so each
 * exposed column of each row first looks up the selection mapping of its response
 * path (`getLoaderMapping`, `responsePath`) — in the CPU profile of a nested read
 * that was the largest cost after garbage collection, for fields whose answer is
 * `row[column]`. The mapping only matters to a field with children, or when the
 * row lacks the column (then plugin-prisma loads it): such fields and rows still go
 * through plugin-prisma. The column is still selected: plugin-prisma plans the
 * query from the field's `pothosPrismaSelect`, which this plugin leaves alone.
 *
 * The same for the `id` of a Prisma node declared with `id: nodeId('id')`: plugin-relay
 * answers it from an async resolver, so every row of a list became a promise, and
 * the executor completed each of its objects asynchronously (a microtask hop and
 * async-hook work per row: 9 % of the CPU of a nested cursor page). Here it is
 * the same global id, returned at once.
 *
 * Listed before PrismaPlugin, so it wraps plugin-prisma's resolver.
 */
const ID_COLUMN = 'parleyGlobalIdColumn';

export class ExposedColumnsPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  override wrapResolve(
    resolver: GraphQLFieldResolver<unknown, Types['Context'], object>,
    fieldConfig: PothosOutputFieldConfig<Types>,
  ): GraphQLFieldResolver<unknown, Types['Context'], object> {
    const idColumn = fieldConfig.extensions?.[ID_COLUMN];
    if (typeof idColumn === 'string') {
      const typename = fieldConfig.parentType;
      return (parent, args, context, info) => {
        const id = (parent as Record<string, unknown>)[idColumn];
        return typeof id === 'string' ? encodeGlobalID(typename, id) : resolver(parent, args, context, info);
      };
    }
    const column = exposedColumn(fieldConfig);
    if (column === undefined) return resolver;
    return (parent, args, context, info) => {
      const value = (parent as Record<string, unknown>)[column];
      return value === undefined ? resolver(parent, args, context, info) : value;
    };
  }
}

/** The column a field exposes as it is, when it is a plain column exposure on a Prisma object. */
function exposedColumn<Types extends SchemaTypes>(fieldConfig: PothosOutputFieldConfig<Types>): string | undefined {
  if (fieldConfig.kind !== 'PrismaObject') return undefined;
  const extensions = fieldConfig.extensions ?? {};
  const column = extensions.pothosExposedField;
  if (typeof column !== 'string' || extensions.pothosPrismaVariant !== column) return undefined;
  // Exactly `{ [column]: true }`: a field that selects anything more needs plugin-prisma's mapping.
  const select = extensions.pothosPrismaSelect;
  if (!select || typeof select !== 'object') return undefined;
  const keys = Object.keys(select);
  return keys.length === 1 && keys[0] === column && (select as Record<string, unknown>)[column] === true ? column : undefined;
}

/**
 * The `id` option of a `prismaNode` whose global id is the default encoding of a
 * text column (the builder has no custom `encodeGlobalID`), answered at once.
 */
export function nodeId<const Column extends string>(column: Column) {
  return { field: column, extensions: { [ID_COLUMN]: column } };
}

const pluginName = 'exposedColumns';

SchemaBuilder.registerPlugin(pluginName, ExposedColumnsPlugin);

/** The plugin's name, for `plugins: [...]` (Pothos plugins are listed by name). */
export default pluginName;

declare global {
  export namespace PothosSchemaTypes {
    export interface Plugins<Types extends SchemaTypes> {
      exposedColumns: ExposedColumnsPlugin<Types>;
    }
  }
}
