import { isObjectType, type GraphQLResolveInfo } from 'graphql';
import { encodeGlobalID } from '@pothos/plugin-relay';
import { describe, expect, it } from 'vitest';
import { schema } from '../../src/schema/index.js';

/** A resolver of the built schema, called as graphql-js would for one row. */
function resolverOf(type: string, field: string) {
  const object = schema.getType(type);
  if (!isObjectType(object)) throw new Error(`${type} is not an object type`);
  const resolve = object.getFields()[field]!.resolve!;
  const info = { path: { prev: undefined, key: field, typename: type }, parentType: object, fieldName: field } as unknown as GraphQLResolveInfo;
  return (row: object) => resolve(row, {}, {}, info);
}

describe('exposed columns', () => {
  it('are answered from the row, without plugin-prisma looking up a selection mapping', () => {
    // An empty context holds no mapping: plugin-prisma would go to its loader (and fail without a client).
    expect(resolverOf('Message', 'content')({ id: 'm', content: 'Where is my parcel?' })).toBe('Where is my parcel?');
    expect(resolverOf('Message', 'model')({ id: 'm', model: null })).toBeNull();
    expect(resolverOf('Feedback', 'rating')({ id: 'f', rating: 'UP' })).toBe('UP');
    expect(resolverOf('Conversation', 'messageCount')({ id: 'c', messageCount: 0 })).toBe(0);
  });

  it('leave a row that lacks the column to plugin-prisma, which loads it', () => {
    expect(() => resolverOf('Message', 'content')({ id: 'm' })).toThrow();
  });

  it('leave relations to plugin-prisma', () => {
    expect(() => resolverOf('Message', 'feedback')({ id: 'm', feedback: null })).toThrow();
  });

  it('answer a node id at once, the global id plugin-relay gives, so a row is not a promise', () => {
    for (const type of ['Product', 'KnowledgeEntry', 'Conversation', 'Message', 'Feedback']) {
      const id = resolverOf(type, 'id')({ id: '0190a0b0-0000-7000-8000-000000000001' });
      expect(id).toBe(encodeGlobalID(type, '0190a0b0-0000-7000-8000-000000000001'));
    }
  });
});
