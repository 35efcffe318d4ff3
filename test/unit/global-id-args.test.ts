import SchemaBuilder from '@pothos/core';
import RelayPlugin, { encodeGlobalID } from '@pothos/plugin-relay';
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
import { graphql } from 'graphql';
import { describe, expect, it } from 'vitest';
import { BadUserInputError } from '../../src/errors.js';
import GlobalIdArgsPlugin from '../../src/schema/global-id-args.js';

// The plugin on a schema of its own, in the order builder.ts lists the plugins: what a field's
// scopes and resolver see of a t.arg.globalID argument, and when a bad one is refused.

interface Ctx {
  user: boolean;
  seenByScopes: unknown[];
}

// plugin-prisma's types are loaded for the whole project and make its `prisma` option required: not used here.
const builder = new SchemaBuilder<{ Context: Ctx; AuthScopes: { user: boolean } }>({
  plugins: [ScopeAuthPlugin, RelayPlugin, GlobalIdArgsPlugin],
  scopeAuth: { authScopes: (ctx: Ctx) => ({ user: ctx.user }) },
  relay: {},
} as never);
const Thing = builder.objectRef<{ id: string }>('Thing').implement({ fields: (t) => ({ id: t.exposeID('id') }) });
const ThingInput = builder.inputType('ThingInput', { fields: (t) => ({ thingId: t.globalID({ for: Thing, required: true }) }) });
builder.queryType({
  fields: (t) => ({
    thing: t.string({
      args: { id: t.arg.globalID({ for: Thing, required: true }) },
      authScopes: (_root, args, ctx) => {
        ctx.seenByScopes.push(args);
        return { user: true };
      },
      resolve: (_root, { id }) => `${id.typename} ${id.id}`,
    }),
    inputThing: t.string({
      args: { input: t.arg({ type: ThingInput, required: true }) },
      authScopes: { user: true },
      resolve: (_root, { input }) => input.thingId.id,
    }),
  }),
});
const schema = builder.toSchema();

const UUID = '0190f5f0-0000-7000-8000-000000000000';
const run = async (source: string, user = true) => {
  const contextValue: Ctx = { user, seenByScopes: [] };
  return { ...(await graphql({ schema, source, contextValue })), seenByScopes: contextValue.seenByScopes };
};

describe('t.arg.globalID with the global-id-args plugin', () => {
  it('scopes and resolver see the id decoded: plugin-relay maps arguments before scope-auth runs', async () => {
    const result = await run(`{ thing(id: "${encodeGlobalID('Thing', UUID)}") }`);
    expect(result.errors).toBeUndefined();
    expect(result.data).toEqual({ thing: `Thing ${UUID}` });
    expect(result.seenByScopes).toEqual([{ id: { typename: 'Thing', id: UUID } }]);
  });

  it('an id of another type, malformed, or without a uuid inside: BAD_USER_INPUT naming the argument', async () => {
    for (const id of [encodeGlobalID('Other', UUID), 'garbage', encodeGlobalID('Thing', '42')]) {
      for (const [query, field] of [
        [`{ thing(id: "${id}") }`, 'id'],
        [`{ inputThing(input: { thingId: "${id}" }) }`, 'input.thingId'],
      ] as const) {
        const { errors } = await run(query);
        expect(errors?.[0]?.message, query).toBe(`${field} is not a valid Thing id`);
        expect(errors?.[0]?.originalError, query).toBeInstanceOf(BadUserInputError);
        expect(errors?.[0]?.extensions, query).toMatchObject({ field });
      }
    }
  });

  it("is refused after the field's scopes: without them the answer is the auth error", async () => {
    const { errors } = await run(`{ inputThing(input: { thingId: "${encodeGlobalID('Other', UUID)}" }) }`, false);
    expect(errors?.[0]?.message).toMatch(/Not authorized/);
  });
});
