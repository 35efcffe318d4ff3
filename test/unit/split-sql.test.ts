import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS_DIR, splitSqlStatements } from '../../src/infra/migrate.js';

describe('splitSqlStatements', () => {
  it('splits on top-level semicolons and trims each statement', () => {
    expect(splitSqlStatements('SELECT 1;\n  SELECT 2 ;SELECT 3')).toEqual(['SELECT 1', 'SELECT 2', 'SELECT 3']);
  });

  it("keeps semicolons inside '…' strings, including after '' escapes", () => {
    expect(splitSqlStatements("INSERT INTO t VALUES ('a;b', 'it''s; fine', ''); SELECT ';'")).toEqual([
      "INSERT INTO t VALUES ('a;b', 'it''s; fine', '')",
      "SELECT ';'",
    ]);
  });

  it("keeps semicolons inside E'…' strings with backslash-escaped quotes", () => {
    expect(splitSqlStatements("SELECT E'it\\'s; here'; SELECT 2")).toEqual(["SELECT E'it\\'s; here'", 'SELECT 2']);
  });

  it('keeps semicolons inside "…" identifiers, including after "" escapes', () => {
    expect(splitSqlStatements('CREATE TABLE "a;b" ("say ""hi;""" int); SELECT 2')).toEqual(['CREATE TABLE "a;b" ("say ""hi;""" int)', 'SELECT 2']);
  });

  it('keeps $$…$$ and $tag$…$tag$ bodies whole, even with quotes and other tags inside', () => {
    const fn = `CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 'x;'; -- a quote in a comment: '
  RETURN 1;
END $$`;
    const block = `DO $body_1$
BEGIN
  EXECUTE $q$ SELECT 1; $q$;
  RAISE NOTICE 'done; $$';
END
$body_1$`;
    expect(splitSqlStatements(`${fn};\n${block};\nSELECT $1`)).toEqual([fn, block, 'SELECT $1']);
  });

  it('treats a $ after an identifier character as part of the identifier, not a dollar quote', () => {
    expect(splitSqlStatements('SELECT a$b$ FROM t; SELECT 2')).toEqual(['SELECT a$b$ FROM t', 'SELECT 2']);
  });

  it('ignores semicolons and quotes in -- and /* */ comments, and /* */ nests', () => {
    const script = `SELECT 1 -- not the end; it's a comment
, 2;
/* a; "b; 'c; /* nested; */ still inside; */ SELECT 3;`;
    expect(splitSqlStatements(script)).toEqual([
      "SELECT 1 -- not the end; it's a comment\n, 2",
      `/* a; "b; 'c; /* nested; */ still inside; */ SELECT 3`,
    ]);
  });

  it('drops empty and comment-only pieces', () => {
    const script = `-- CreateEnum
;;
  /* only; a comment */ ;
SELECT 1;
-- trailing comment; with a semicolon
/* and another */
`;
    expect(splitSqlStatements(script)).toEqual(['SELECT 1']);
    expect(splitSqlStatements('-- nothing here\n/* at all */')).toEqual([]);
    expect(splitSqlStatements('')).toEqual([]);
  });

  it('splits the init migration into its 24 statements', () => {
    const sql = readFileSync(join(MIGRATIONS_DIR, '20261121000000_init', 'migration.sql'), 'utf8');
    const statements = splitSqlStatements(sql);
    // Counted by hand: 2 CREATE TYPE, 5 CREATE TABLE, 10 CREATE [UNIQUE] INDEX, 7 ALTER TABLE … ADD FOREIGN KEY.
    const kinds = statements.map((s) => /^(?:--[^\n]*\n)*\s*(CREATE TYPE|CREATE TABLE|CREATE (?:UNIQUE )?INDEX|ALTER TABLE)\b/.exec(s)?.[1]);
    expect(statements).toHaveLength(24);
    expect(kinds.filter((k) => k === 'CREATE TYPE')).toHaveLength(2);
    expect(kinds.filter((k) => k === 'CREATE TABLE')).toHaveLength(5);
    expect(kinds.filter((k) => k === 'CREATE INDEX' || k === 'CREATE UNIQUE INDEX')).toHaveLength(10);
    expect(kinds.filter((k) => k === 'ALTER TABLE')).toHaveLength(7);
    // The generated column keeps its comment (which holds a ';') and its whole expression.
    const knowledge = statements.find((s) => s.includes('CREATE TABLE "KnowledgeEntry"'));
    expect(knowledge).toMatch(/STORED,\s+"createdAt"[\s\S]*CONSTRAINT "KnowledgeEntry_pkey" PRIMARY KEY \("id"\)\s*\)$/);
  });
});
