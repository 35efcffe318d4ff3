import SchemaBuilder, {
  BasePlugin,
  type InputFieldsMapping,
  type InputTypeFieldsMapping,
  mapInputFields,
  type PothosOutputFieldConfig,
  type SchemaTypes,
} from '@pothos/core';
import type { GraphQLFieldResolver } from 'graphql';
import { BadUserInputError } from '../errors.js';
import { parseGlobalId, refusalOf, refusedArgs } from './ids.js';

/** The types a global id argument may name. */
type Typenames = readonly string[];

/**
 * Refuses a `t.arg.globalID({ for: … })` argument (or such a field of an input
 * type) that is not a global id of its type with a UUID inside, as the
 * BAD_USER_INPUT clients know: "input.conversationId is not a valid
 * Conversation id", `extensions.field` naming it. Left to plugin-relay, an id
 * of another type is its PothosValidationError "ID: … is not of type:
 * Conversation", naming no argument, and a malformed one is whatever its
 * decoder (`relay.decodeGlobalID` in builder.ts) says: it is not told which
 * argument it decodes. A non-UUID id would reach Prisma.
 *
 * The check runs on the raw arguments, before plugin-relay's arg mapper (it is
 * put first whatever the plugin order), so that mapper only meets ids it
 * decodes. Arg mappers run before scope-auth, though, and a request without the
 * key or token a field needs is refused for that first (401/403), whatever its
 * ids: so a refused id is held (refusedArgs) and thrown by this plugin's
 * resolver wrapper, the innermost, once the field's scopes have passed.
 */
export class GlobalIdArgsPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  private readonly mappingCache = new Map<string, InputTypeFieldsMapping<Types, Typenames>>();
  /** `Type.field` of the fields with global id arguments. */
  private readonly checked = new Set<string>();

  override onOutputFieldConfig(fieldConfig: PothosOutputFieldConfig<Types>): PothosOutputFieldConfig<Types> {
    const ids = mapInputFields(fieldConfig.args, this.buildCache, (field) => typenamesOf(field.extensions), this.mappingCache);
    if (!ids) return fieldConfig;
    this.checked.add(`${fieldConfig.parentType}.${fieldConfig.name}`);
    const check = (args: Record<string, unknown>) => {
      try {
        checkGlobalIds(args, ids, '');
        return args;
      } catch (error) {
        if (error instanceof BadUserInputError) return refusedArgs(error);
        throw error;
      }
    };
    return { ...fieldConfig, argMappers: [check, ...(fieldConfig.argMappers ?? [])] };
  }

  override wrapResolve(resolver: Resolver<Types>, fieldConfig: PothosOutputFieldConfig<Types>): Resolver<Types> {
    return this.checked.has(`${fieldConfig.parentType}.${fieldConfig.name}`) ? refusingResolver(resolver) : resolver;
  }

  override wrapSubscribe(subscribe: Resolver<Types> | undefined, fieldConfig: PothosOutputFieldConfig<Types>): Resolver<Types> | undefined {
    return subscribe && this.wrapResolve(subscribe, fieldConfig);
  }
}

type Resolver<Types extends SchemaTypes> = GraphQLFieldResolver<unknown, Types['Context'], object>;

function refusingResolver<Types extends SchemaTypes>(resolver: Resolver<Types>): Resolver<Types> {
  return (parent, args, context, info) => {
    const refusal = refusalOf(args);
    if (refusal) throw refusal;
    return resolver(parent, args, context, info);
  };
}

/** The types a `t.arg.globalID({ for })` names (plugin-relay's extensions); null for any other input. */
function typenamesOf(extensions: Readonly<Record<string, unknown>> | null | undefined): Typenames | null {
  const forTypes = extensions?.isRelayGlobalID ? (extensions.relayGlobalIDFor as { typename: string }[] | null | undefined) : null;
  return forTypes ? forTypes.map((type) => type.typename) : null;
}

function checkGlobalIds<Types extends SchemaTypes>(values: Record<string, unknown>, ids: InputFieldsMapping<Types, Typenames>, prefix: string) {
  for (const [name, mapping] of ids) {
    eachItem(values[name], mapping.listDepth, `${prefix}${name}`, (value, path) => {
      if (mapping.kind !== 'InputObject') parseGlobalId(String(value), mapping.value, path);
      else if (mapping.fields.map) checkGlobalIds(value as Record<string, unknown>, mapping.fields.map, `${path}.`);
    });
  }
}

/** Visits a value that is not null, or the items of a list of them, with its path ("input.entries.3"). */
function eachItem(value: unknown, listDepth: number, path: string, visit: (value: unknown, path: string) => void) {
  if (value === null || value === undefined) return;
  if (listDepth === 0) visit(value, path);
  else if (Array.isArray(value)) {
    for (const [i, item] of value.entries()) eachItem(item, listDepth - 1, `${path}.${i}`, visit);
  }
}

const pluginName = 'globalIdArgs';

SchemaBuilder.registerPlugin(pluginName, GlobalIdArgsPlugin);

/** The plugin's name, for `plugins: [...]` (Pothos plugins are listed by name). */
export default pluginName;

declare global {
  export namespace PothosSchemaTypes {
    export interface Plugins<Types extends SchemaTypes> {
      globalIdArgs: GlobalIdArgsPlugin<Types>;
    }
  }
}
