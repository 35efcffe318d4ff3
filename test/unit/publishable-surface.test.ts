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
});
