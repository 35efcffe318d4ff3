import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PrismaClient } from '../../src/infra/db.js';
import { migrate, readMigrations, type Migration } from '../../src/infra/migrate.js';
import { describeEachDatabase, type TestDatabase } from '../helpers/db.js';
import { describeKeys, expectedDatabase, parsePrismaSchema, readPrismaSchema, type DatabaseFacts, type KeyPart } from '../helpers/prisma-schema.js';

/**
 * The database our hand-written migrations build must be the one Prisma Migrate
 * would build from prisma/schema.prisma, down to constraint names, or
 * `prisma migrate diff` / `migrate dev` on a machine with the engine would
 * report drift and want to rewrite it.
 */

/** Prisma's own bookkeeping table, as `prisma migrate deploy` creates it. */
const PRISMA_MIGRATIONS: DatabaseFacts = {
  'table "_prisma_migrations"': 'table',
  'column "_prisma_migrations"."id"': 'character varying(36) NOT NULL',
  'column "_prisma_migrations"."checksum"': 'character varying(64) NOT NULL',
  'column "_prisma_migrations"."finished_at"': 'timestamp with time zone NULL',
  'column "_prisma_migrations"."migration_name"': 'character varying(255) NOT NULL',
  'column "_prisma_migrations"."logs"': 'text NULL',
  'column "_prisma_migrations"."rolled_back_at"': 'timestamp with time zone NULL',
  'column "_prisma_migrations"."started_at"': 'timestamp with time zone NOT NULL DEFAULT now()',
  'column "_prisma_migrations"."applied_steps_count"': 'integer NOT NULL DEFAULT 0',
  'primary key "_prisma_migrations_pkey"': '_prisma_migrations(id)',
};

const CONSTRAINT_KIND: Record<string, string> = {
  p: 'primary key',
  f: 'foreign key',
  u: 'unique constraint',
  c: 'check constraint',
  x: 'exclusion constraint',
  t: 'trigger constraint',
};
const RULE: Record<string, string> = { a: 'NO ACTION', r: 'RESTRICT', c: 'CASCADE', n: 'SET NULL', d: 'SET DEFAULT' };
const RELKIND: Record<string, string> = { r: 'table', p: 'partitioned table', v: 'view', m: 'materialized view', f: 'foreign table' };

/** Reads the same facts from pg_catalog, for everything in the current schema. */
async function databaseFacts(prisma: PrismaClient): Promise<DatabaseFacts> {
  const facts: DatabaseFacts = {};
  const ours = `n.nspname = current_schema()`;

  const relations = await prisma.$queryRawUnsafe<{ name: string; kind: string }[]>(
    `SELECT c.relname AS name, c.relkind::text AS kind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE ${ours} AND c.relkind IN ('r', 'p', 'v', 'm', 'f')`,
  );
  for (const r of relations) facts[`table "${r.name}"`] = RELKIND[r.kind]!;

  const columns = await prisma.$queryRawUnsafe<{ table: string; column: string; type: string; notnull: boolean; dflt: string | null }[]>(
    `SELECT c.relname AS "table", a.attname AS "column", format_type(a.atttypid, a.atttypmod) AS type, a.attnotnull AS notnull,
            CASE WHEN a.attgenerated = '' THEN pg_get_expr(d.adbin, d.adrelid) END AS dflt
       FROM pg_attribute a
       JOIN pg_class c ON c.oid = a.attrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
      WHERE ${ours} AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`,
  );
  for (const c of columns) {
    facts[`column "${c.table}"."${c.column}"`] = `${c.type} ${c.notnull ? 'NOT NULL' : 'NULL'}${c.dflt === null ? '' : ` DEFAULT ${c.dflt}`}`;
  }

  const enums = await prisma.$queryRawUnsafe<{ name: string; labels: string }[]>(
    `SELECT t.typname AS name, json_agg(e.enumlabel ORDER BY e.enumsortorder)::text AS labels
       FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_enum e ON e.enumtypid = t.oid
      WHERE ${ours} GROUP BY t.typname`,
  );
  for (const e of enums) facts[`enum "${e.name}"`] = JSON.stringify(JSON.parse(e.labels));

  // Key columns in order with their DESC flag; an expression shows up as a null column.
  const indexes = await prisma.$queryRawUnsafe<
    { name: string; table: string; method: string; unique: boolean; primary: boolean; predicate: string | null; keys: string }[]
  >(
    `SELECT ic.relname AS name, tc.relname AS "table", am.amname AS method, i.indisunique AS "unique", i.indisprimary AS "primary",
            pg_get_expr(i.indpred, i.indrelid) AS predicate,
            (SELECT json_agg(json_build_object('column', a.attname, 'desc', pg_index_column_has_property(i.indexrelid, k.ord::int, 'desc')) ORDER BY k.ord)
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
               LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum AND k.attnum <> 0)::text AS keys
       FROM pg_index i
       JOIN pg_class ic ON ic.oid = i.indexrelid
       JOIN pg_class tc ON tc.oid = i.indrelid
       JOIN pg_namespace n ON n.oid = tc.relnamespace
       JOIN pg_am am ON am.oid = ic.relam
      WHERE ${ours}`,
  );
  for (const i of indexes) {
    if (i.primary) continue; // described by its constraint
    const keys = (JSON.parse(i.keys) as { column: string | null; desc: boolean }[]).map(
      (k): KeyPart => ({ column: k.column ?? '(expression)', desc: k.desc }),
    );
    const where = i.predicate === null ? '' : ` WHERE ${i.predicate}`;
    facts[`${i.unique ? 'unique index' : 'index'} "${i.name}"`] = `${i.table} USING ${i.method} (${describeKeys(keys)})${where}`;
  }

  const constraints = await prisma.$queryRawUnsafe<
    {
      name: string;
      kind: string;
      table: string;
      refTable: string | null;
      onDelete: string;
      onUpdate: string;
      columns: string;
      refColumns: string | null;
      definition: string;
    }[]
  >(
    `SELECT con.conname AS name, con.contype::text AS kind, c.relname AS "table", rc.relname AS "refTable",
            con.confdeltype::text AS "onDelete", con.confupdtype::text AS "onUpdate",
            (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(con.conkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum)::text AS columns,
            (SELECT json_agg(a.attname ORDER BY k.ord) FROM unnest(con.confkey) WITH ORDINALITY AS k(attnum, ord)
               JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.attnum)::text AS "refColumns",
            pg_get_constraintdef(con.oid) AS definition
       FROM pg_constraint con
       JOIN pg_class c ON c.oid = con.conrelid
       JOIN pg_namespace n ON n.oid = c.relnamespace
       LEFT JOIN pg_class rc ON rc.oid = con.confrelid
      WHERE ${ours} AND con.contype <> 'n'`, // 'n': NOT NULL, already part of each column (PostgreSQL 18)
  );
  for (const c of constraints) {
    const kind = CONSTRAINT_KIND[c.kind] ?? `constraint (${c.kind})`;
    const columnsOf = (json: string | null) => (JSON.parse(json ?? '[]') as string[]).join(', ');
    facts[`${kind} "${c.name}"`] =
      c.kind === 'p'
        ? `${c.table}(${columnsOf(c.columns)})`
        : c.kind === 'f'
          ? `${c.table}(${columnsOf(c.columns)}) REFERENCES ${c.refTable}(${columnsOf(c.refColumns)}) ON DELETE ${RULE[c.onDelete]} ON UPDATE ${RULE[c.onUpdate]}`
          : `${c.table} ${c.definition}`;
  }
  return facts;
}

const pick = (facts: DatabaseFacts, kinds: string[]) =>
  Object.fromEntries(Object.entries(facts).filter(([key]) => kinds.some((kind) => key.startsWith(`${kind} "`))));

/** Keys whose description differs, or that only one side has. */
const differences = (expected: DatabaseFacts, actual: DatabaseFacts) =>
  [...new Set([...Object.keys(expected), ...Object.keys(actual)])].filter((key) => expected[key] !== actual[key]).sort();

describe('prisma schema reader', () => {
  it('reads models, enums, field modifiers and attributes', () => {
    const schema = parsePrismaSchema(`
      // a comment with "quotes" and @attributes
      datasource db {
        provider = "postgresql"
      }
      enum Colour {
        RED
        GREEN @map("green")
        @@map("colour")
      }
      /// Doc comment.
      model Pot {
        id     Int      @id @default(autoincrement())
        label  String?  @unique(map: "pot_label") @db.VarChar(40)
        tags   String[] @default(["a", "b"])
        colour Colour   @default(RED) @map("paint")
        shape  Unsupported("circle")?
        lidId  Int
        lid    Lid      @relation(fields: [lidId], references: [id])
        @@index([lidId, label(sort: Desc)], type: Brin)
        @@unique([colour, lidId])
        @@map("pots")
      }
      model Lid {
        id   Int   @id
        pots Pot[]
      }
    `);
    expect(schema.enums).toEqual([
      {
        name: 'Colour',
        values: [
          { name: 'RED', attributes: [] },
          { name: 'GREEN', attributes: [{ name: 'map', args: [{ name: undefined, value: { kind: 'string', value: 'green' } }] }] },
        ],
        attributes: [{ name: 'map', args: [{ name: undefined, value: { kind: 'string', value: 'colour' } }] }],
      },
    ]);
    const pot = schema.models.find((m) => m.name === 'Pot')!;
    expect(pot.fields.map((f) => [f.name, f.type, f.optional, f.list])).toEqual([
      ['id', 'Int', false, false],
      ['label', 'String', true, false],
      ['tags', 'String', false, true],
      ['colour', 'Colour', false, false],
      ['shape', 'Unsupported', true, false],
      ['lidId', 'Int', false, false],
      ['lid', 'Lid', false, false],
    ]);
    expect(pot.fields.find((f) => f.name === 'shape')!.unsupported).toBe('circle');
    expect(pot.fields.find((f) => f.name === 'label')!.attributes.map((a) => a.name)).toEqual(['unique', 'db.VarChar']);
    expect(pot.attributes.map((a) => a.name)).toEqual(['index', 'unique', 'map']);

    expect(expectedDatabase(schema)).toEqual({
      'enum "colour"': '["RED","green"]',
      'table "pots"': 'table',
      'column "pots"."id"': `integer NOT NULL DEFAULT nextval('pots_id_seq'::regclass)`,
      'column "pots"."label"': 'character varying(40) NULL',
      'column "pots"."tags"': `text[] NULL DEFAULT ARRAY['a'::text, 'b'::text]`,
      'column "pots"."paint"': `colour NOT NULL DEFAULT 'RED'::colour`,
      'column "pots"."shape"': 'circle NULL',
      'column "pots"."lidId"': 'integer NOT NULL',
      'unique index "pot_label"': 'pots USING btree (label)',
      'primary key "pots_pkey"': 'pots(id)',
      'index "pots_lidId_label_idx"': 'pots USING brin (lidId, label DESC)',
      'unique index "pots_paint_lidId_key"': 'pots USING btree (paint, lidId)',
      'foreign key "pots_lidId_fkey"': 'pots(lidId) REFERENCES Lid(id) ON DELETE RESTRICT ON UPDATE CASCADE',
      'table "Lid"': 'table',
      'column "Lid"."id"': 'integer NOT NULL',
      'primary key "Lid_pkey"': 'Lid(id)',
    });
  });

  it('refuses what it does not understand instead of skipping it', () => {
    expect(() => parsePrismaSchema('view V {\n id Int @id\n}')).toThrow(/view/);
    expect(() => expectedDatabase(parsePrismaSchema('model M {\n id Int @id\n x Int @ignore\n}'))).toThrow(/@ignore/);
    expect(() => expectedDatabase(parsePrismaSchema('model M {\n id Int @id\n x String @db.Inet\n}'))).toThrow(/db\.Inet/);
    expect(() => expectedDatabase(parsePrismaSchema('model M {\n id Int @id\n @@fulltext([id])\n}'))).toThrow(/fulltext/);
  });

  it('reads every model and enum of prisma/schema.prisma', () => {
    const schema = readPrismaSchema();
    expect(schema.models.map((m) => m.name)).toEqual([
      'Product',
      'KnowledgeEntry',
      'Conversation',
      'Message',
      'Feedback',
      'ProviderStat',
      'IdempotencyKey',
    ]);
    expect(schema.enums.map((e) => e.name)).toEqual(['MessageRole', 'Rating']);
  });
});

describeEachDatabase('migrated database matches prisma/schema.prisma', (variant) => {
  const expected = { ...expectedDatabase(readPrismaSchema()), ...PRISMA_MIGRATIONS };
  let database: TestDatabase;
  let actual: DatabaseFacts;

  beforeAll(async () => {
    database = await variant.open();
    await migrate(database.db.prisma);
    actual = await databaseFacts(database.db.prisma);
  });
  afterAll(() => database?.dispose());

  it('has one table per model, plus _prisma_migrations, and nothing else', () => {
    expect(pick(actual, ['table'])).toEqual(pick(expected, ['table']));
  });

  it("has each model's scalar fields as columns with their type, nullability and default", () => {
    expect(pick(actual, ['column'])).toEqual(pick(expected, ['column']));
  });

  it('has the enum types with their labels in order', () => {
    expect(pick(actual, ['enum'])).toEqual(pick(expected, ['enum']));
  });

  it('has a primary key <Model>_pkey on each @id', () => {
    expect(pick(actual, ['primary key'])).toEqual(pick(expected, ['primary key']));
  });

  it('has a unique index <Model>_<fields>_key for each @unique and @@unique, and no other', () => {
    expect(pick(actual, ['unique index', 'unique constraint'])).toEqual(pick(expected, ['unique index', 'unique constraint']));
  });

  it('has an index <Model>_<fields>_idx for each @@index with its columns, order and method, and no other', () => {
    expect(pick(actual, ['index'])).toEqual(pick(expected, ['index']));
  });

  it('has a foreign key <Model>_<fields>_fkey for each @relation with its referential actions', () => {
    expect(pick(actual, ['foreign key'])).toEqual(pick(expected, ['foreign key']));
  });

  it('has nothing the schema does not declare', () => {
    expect(differences(expected, actual)).toEqual([]);
  });

  it('notices drift: each kind of difference a hand-written migration could introduce', async () => {
    const [init, ...rest] = readMigrations();
    let sql = init!.sql;
    const edit = (from: string, to: string) => {
      if (!sql.includes(from)) throw new Error(`the init migration no longer contains ${from}`);
      sql = sql.replace(from, to);
    };
    edit(`'USER', 'ASSISTANT', 'SYSTEM'`, `'USER', 'SYSTEM', 'ASSISTANT'`);
    edit(`"metadata" JSONB NOT NULL`, `"metadata" JSON NOT NULL`);
    edit(`"messageCount" INTEGER NOT NULL DEFAULT 0`, `"messageCount" INTEGER NOT NULL DEFAULT 1`);
    edit(`"comment" TEXT,`, `"comment" TEXT NOT NULL,\n    "extra" TEXT,`);
    edit(`CONSTRAINT "Feedback_pkey" PRIMARY KEY`, `CONSTRAINT "Feedback_pk" PRIMARY KEY`);
    edit(`CREATE UNIQUE INDEX "Product_keyHash_key"`, `CREATE UNIQUE INDEX "Product_keyHash_unique"`);
    edit(`USING GIN ("searchVector")`, `("searchVector")`);
    edit(`REFERENCES "Product"("id") ON DELETE CASCADE ON UPDATE CASCADE;\n`, `REFERENCES "Product"("id") ON DELETE RESTRICT ON UPDATE CASCADE;\n`);
    edit(
      `ALTER TABLE "Conversation" ADD CONSTRAINT "Conversation_lastMessageId_fkey" FOREIGN KEY ("lastMessageId") REFERENCES "Message"("id") ON DELETE SET NULL ON UPDATE CASCADE;`,
      '',
    );
    sql += `\nCREATE INDEX "Message_role_idx" ON "Message"("role");\nALTER TABLE "Message" ADD CONSTRAINT "Message_content_check" CHECK (length("content") > 0);\n`;
    const drifted: Migration = { name: init!.name, sql, checksum: createHash('sha256').update(sql).digest('hex') };
    // An index in another order: the page-order indexes replaced the init migration's, so the drift goes in theirs.
    const later = rest.map((m) => {
      if (!m.name.endsWith('_page_order_indexes')) return m;
      const from = `"Conversation"("productId", "lastMessageAt" DESC, "id" DESC)`;
      if (!m.sql.includes(from)) throw new Error(`${m.name} no longer contains ${from}`);
      const edited = m.sql.replace(from, `"Conversation"("productId", "lastMessageAt", "id" DESC)`);
      return { ...m, sql: edited, checksum: createHash('sha256').update(edited).digest('hex') };
    });

    const other = await variant.open();
    try {
      await migrate(other.db.prisma, [drifted, ...later]);
      expect(differences(expected, await databaseFacts(other.db.prisma))).toEqual(
        [
          'enum "MessageRole"',
          'column "Product"."metadata"',
          'column "Conversation"."messageCount"',
          'column "Feedback"."comment"',
          'column "Feedback"."extra"',
          'primary key "Feedback_pkey"',
          'primary key "Feedback_pk"',
          'unique index "Product_keyHash_key"',
          'unique index "Product_keyHash_unique"',
          'index "Conversation_productId_lastMessageAt_id_idx"',
          'index "KnowledgeEntry_searchVector_idx"',
          'foreign key "KnowledgeEntry_productId_fkey"', // the first of the edited ON DELETE CASCADEs
          'foreign key "Conversation_lastMessageId_fkey"',
          'index "Message_role_idx"',
          'check constraint "Message_content_check"',
        ].sort(),
      );
    } finally {
      await other.dispose();
    }
  });
});
