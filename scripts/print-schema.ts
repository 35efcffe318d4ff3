// Writes the printed GraphQL schema to schema.graphql (committed; a test fails when stale).
import { writeFileSync } from 'node:fs';
import { printSchema } from 'graphql';
import { schema } from '../src/schema/index.js';

export const SCHEMA_FILE = new URL('../schema.graphql', import.meta.url);

writeFileSync(SCHEMA_FILE, `${printSchema(schema)}\n`);
process.stdout.write(`wrote ${SCHEMA_FILE.pathname}\n`);
