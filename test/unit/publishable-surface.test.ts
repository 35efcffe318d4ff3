import type { GraphQLObjectType } from 'graphql';
import { describe, expect, it } from 'vitest';
import { schema } from '../../src/schema/index.js';

// The rules of the publishable key, read from the schema itself: root types are closed to it
// (scope-auth `fullAccess`), and only the fields below open themselves (skipTypeScopes). A field
// added later is closed until it is added here on purpose; test/integration/key-kinds.test.ts
// attacks each rule through the API.

const OPEN_TO_PUBLISHABLE = {
  Query: ['conversation', 'node', 'nodes', 'searchKnowledge'],
  Mutation: ['sendMessage', 'setTyping', 'startConversation', 'submitFeedback'],
  Subscription: ['conversationEvents'],
};

const options = (thing: { extensions?: unknown }) => ((thing.extensions ?? {}) as { pothosOptions?: Record<string, unknown> }).pothosOptions ?? {};

describe('what the publishable key may reach, as the schema declares it', () => {
  for (const [name, open] of Object.entries(OPEN_TO_PUBLISHABLE)) {
    it(`${name}: closed by default, open only where declared`, () => {
      const type = schema.getType(name) as GraphQLObjectType;
      expect(options(type).authScopes).toEqual({ fullAccess: true });
      const opened = Object.values(type.getFields())
        .filter((field) => options(field).skipTypeScopes === true)
        .map((field) => field.name)
        .sort();
      expect(opened).toEqual([...open].sort());
      // Every opened field still declares who may use it.
      for (const field of opened) expect(options(type.getFields()[field]!).authScopes, field).toBeDefined();
    });
  }

  it('objects of a conversation check it; product-wide objects are for full access only', () => {
    for (const name of ['Conversation', 'Message', 'Feedback']) {
      expect(typeof options(schema.getType(name)!).authScopes, name).toBe('function');
    }
    for (const name of ['Product', 'ProductStats', 'AnswerStats', 'AnswerModelStats', 'CacheStat']) {
      expect(options(schema.getType(name)!).authScopes, name).toEqual({ fullAccess: true });
    }
  });

  it('every root field says whose it is: a product key or the admin token (scopes, not checks inside resolvers)', () => {
    // node/nodes are shared by every principal (the admin token finds products by id): their lookups filter rows.
    const SHARED = new Set(['Query.node', 'Query.nodes']);
    const ADMIN = ['Query.cacheStats', 'Query.products', 'Mutation.createProduct', 'Mutation.rotateProductKey', 'Mutation.updateProduct'];
    const whose = (scopes: unknown): string[] => {
      if (typeof scopes === 'function') {
        // Conversation fields: scopes depend on the key's kind; both kinds name the product.
        const args = { id: 'x', conversationId: 'x', input: { conversationId: 'x' } };
        try {
          return [
            ...whose(scopes({}, args, { key: null, product: {}, isAdmin: false, conversationId: null })),
            ...whose(scopes({}, args, { key: { kind: 'PUBLISHABLE' }, product: {}, isAdmin: false, conversationId: null })),
          ];
        } catch {
          return ['product']; // the argument is not a conversation id: BAD_USER_INPUT before anything
        }
      }
      if (!scopes || typeof scopes !== 'object') return [];
      return Object.entries(scopes).flatMap(([key, value]) =>
        key === '$all' || key === '$any' ? whose(value) : key === 'conversation' ? ['product'] : value === true ? [key] : [],
      );
    };
    const admin: string[] = [];
    for (const name of ['Query', 'Mutation', 'Subscription']) {
      for (const field of Object.values((schema.getType(name) as GraphQLObjectType).getFields())) {
        const id = `${name}.${field.name}`;
        if (SHARED.has(id)) continue;
        const named = whose(options(field).authScopes);
        expect(named.includes('product') || named.includes('admin'), `${id} names no product or admin scope`).toBe(true);
        if (named.includes('admin')) admin.push(id);
      }
    }
    expect(admin.sort()).toEqual(ADMIN.sort());
  });
});
