import { isObjectType } from 'graphql';
import { expect, it } from 'vitest';
import { schema } from '../../src/schema/index.js';
import { RESPONSE_TAGS } from '../../src/schema/response-tags.js';

// A response cached whole is dropped by the tags of the types it reaches: a
// type missing from the map would make its writes invisible to the cache.

it('names the tags (or refuses caching) of every object type of the schema', () => {
  const objectTypes = Object.values(schema.getTypeMap())
    .filter((type) => isObjectType(type) && !type.name.startsWith('__'))
    .map((type) => type.name)
    .sort();
  expect(objectTypes.filter((name) => !(name in RESPONSE_TAGS))).toEqual([]);
  expect(Object.keys(RESPONSE_TAGS).filter((name) => !objectTypes.includes(name))).toEqual([]);
});
