import { readFileSync } from 'node:fs';

/**
 * A small reader for schema.prisma, and the database Prisma Migrate would make
 * from it on PostgreSQL, as "facts" (name → description) that
 * test/integration/schema-match.test.ts compares with pg_catalog. It knows the
 * subset of Prisma this project uses and throws on anything else, so a schema
 * change it cannot judge fails loudly instead of passing unchecked.
 *
 * Not Prisma's own DMMF (`getDMMF` of @prisma/internals 7.10, tried offline on
 * 2026-12-07): it leaves `Unsupported(...)` fields out of the models while
 * keeping their indexes, so KnowledgeEntry.searchVector (tsvector, the column
 * the knowledge search reads) would go unchecked.
 */

export const SCHEMA_PATH = new URL('../../prisma/schema.prisma', import.meta.url).pathname;

export type Expr =
  | { kind: 'string'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'ident'; name: string }
  | { kind: 'call'; name: string; args: Arg[] }
  | { kind: 'array'; items: Expr[] };
export interface Arg {
  name: string | undefined;
  value: Expr;
}
/** `@default(now())` is `{ name: 'default', args: [...] }`; `@@index` is `{ name: 'index' }`; `@db.Uuid` is `db.Uuid`. */
export interface Attribute {
  name: string;
  args: Arg[];
}
export interface Field {
  name: string;
  type: string;
  optional: boolean;
  list: boolean;
  /** The database type of `Unsupported("…")`. */
  unsupported: string | undefined;
  attributes: Attribute[];
}
export interface Model {
  name: string;
  fields: Field[];
  attributes: Attribute[];
}
export interface Enum {
  name: string;
  values: { name: string; attributes: Attribute[] }[];
  attributes: Attribute[];
}
export interface PrismaSchema {
  models: Model[];
  enums: Enum[];
}

// ---------------------------------------------------------------- reader

interface Token {
  kind: 'ident' | 'string' | 'number' | 'punct' | 'newline' | 'end';
  text: string;
  line: number;
}

const TOKEN =
  /(?<space>[ \t\r]+)|(?<comment>\/\/[^\n]*)|(?<newline>\n)|(?<string>"(?:[^"\\\n]|\\.)*")|(?<number>-?\d+(?:\.\d+)?)|(?<ident>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*)|(?<punct>@@|[@{}()[\],:?=])/y;

function tokenize(source: string): Token[] {
  const tokens: Token[] = [];
  let line = 1;
  let depth = 0; // inside (…) or […] a newline is only whitespace
  TOKEN.lastIndex = 0;
  while (TOKEN.lastIndex < source.length) {
    const at = TOKEN.lastIndex;
    const m = TOKEN.exec(source);
    if (!m?.groups) throw new Error(`schema.prisma:${line}: unexpected ${JSON.stringify(source.slice(at, at + 10))}`);
    const g = m.groups;
    if (g.newline) {
      if (depth === 0) tokens.push({ kind: 'newline', text: '\n', line });
      line += 1;
    } else if (g.punct) {
      if (g.punct === '(' || g.punct === '[') depth += 1;
      if (g.punct === ')' || g.punct === ']') depth -= 1;
      tokens.push({ kind: 'punct', text: g.punct, line });
    } else if (g.string) tokens.push({ kind: 'string', text: g.string, line });
    else if (g.number) tokens.push({ kind: 'number', text: g.number, line });
    else if (g.ident) tokens.push({ kind: 'ident', text: g.ident, line });
  }
  tokens.push({ kind: 'end', text: '', line });
  return tokens;
}

export function parsePrismaSchema(source: string): PrismaSchema {
  const tokens = tokenize(source);
  let pos = 0;
  const peek = (offset = 0) => tokens[Math.min(pos + offset, tokens.length - 1)]!;
  const fail = (message: string): never => {
    throw new Error(`schema.prisma:${peek().line}: ${message}, found ${JSON.stringify(peek().text)}`);
  };
  const next = () => tokens[pos++] ?? fail('unexpected end');
  const is = (text: string) => peek().kind !== 'string' && peek().text === text;
  const take = (text: string) => (is(text) ? next() : fail(`expected ${JSON.stringify(text)}`));
  const ident = () => (peek().kind === 'ident' ? next().text : fail('expected a name'));
  const skipNewlines = () => {
    while (peek().kind === 'newline') pos += 1;
  };
  const endOfLine = () => {
    if (!is('}')) take('\n');
  };

  function expr(): Expr {
    const t = peek();
    if (t.kind === 'string') return { kind: 'string', value: JSON.parse(next().text) as string };
    if (t.kind === 'number') return { kind: 'number', value: Number(next().text) };
    if (is('[')) {
      next();
      const items: Expr[] = [];
      while (!is(']')) {
        items.push(expr());
        if (!is(']')) take(',');
      }
      next();
      return { kind: 'array', items };
    }
    const name = ident();
    return is('(') ? { kind: 'call', name, args: args() } : { kind: 'ident', name };
  }
  function args(): Arg[] {
    take('(');
    const out: Arg[] = [];
    while (!is(')')) {
      const named = peek().kind === 'ident' && peek(1).text === ':';
      const name = named ? ident() : undefined;
      if (named) take(':');
      out.push({ name, value: expr() });
      if (!is(')')) take(',');
    }
    next();
    return out;
  }
  function attribute(): Attribute {
    next(); // @ or @@
    const name = ident();
    return { name, args: is('(') ? args() : [] };
  }

  const schema: PrismaSchema = { models: [], enums: [] };
  for (skipNewlines(); peek().kind !== 'end'; skipNewlines()) {
    const keyword = ident();
    const name = ident();
    take('{');
    if (keyword === 'generator' || keyword === 'datasource') {
      while (!is('}')) next();
    } else if (keyword === 'enum') {
      const e: Enum = { name, values: [], attributes: [] };
      for (skipNewlines(); !is('}'); skipNewlines()) {
        if (is('@@')) e.attributes.push(attribute());
        else {
          const value = { name: ident(), attributes: [] as Attribute[] };
          while (is('@')) value.attributes.push(attribute());
          e.values.push(value);
        }
        endOfLine();
      }
      schema.enums.push(e);
    } else if (keyword === 'model') {
      const model: Model = { name, fields: [], attributes: [] };
      for (skipNewlines(); !is('}'); skipNewlines()) {
        if (is('@@')) model.attributes.push(attribute());
        else {
          const fieldName = ident();
          const type = expr();
          if (type.kind !== 'ident' && !(type.kind === 'call' && type.name === 'Unsupported')) fail('expected a field type');
          const unsupported = type.kind === 'call' ? stringArg(type.args, 0, undefined) : undefined;
          const list = is('[') && peek(1).text === ']';
          if (list) pos += 2;
          const optional = is('?');
          if (optional) next();
          const field: Field = {
            name: fieldName,
            type: type.kind === 'ident' ? type.name : 'Unsupported',
            optional,
            list,
            unsupported,
            attributes: [],
          };
          while (is('@')) field.attributes.push(attribute());
          model.fields.push(field);
        }
        endOfLine();
      }
      schema.models.push(model);
    } else fail(`a "${keyword}" block is not understood by this reader`);
    take('}');
  }
  return schema;
}

export function readPrismaSchema(path = SCHEMA_PATH): PrismaSchema {
  return parsePrismaSchema(readFileSync(path, 'utf8'));
}

// ------------------------------------------------------- argument helpers

export function attr(on: { attributes: Attribute[] }, name: string): Attribute | undefined {
  return on.attributes.find((a) => a.name === name);
}

/** A named argument, or else the positional one at `position`. */
export function arg(args: Arg[], name: string, position?: number): Expr | undefined {
  return args.find((a) => a.name === name)?.value ?? (position === undefined ? undefined : args.filter((a) => !a.name)[position]?.value);
}

function stringArg(args: Arg[], position: number, name: string | undefined): string | undefined {
  const value = name ? arg(args, name, position) : args.filter((a) => !a.name)[position]?.value;
  if (value && value.kind !== 'string') throw new Error(`expected a string argument, got ${JSON.stringify(value)}`);
  return value?.value;
}

// --------------------------------------------- what Prisma Migrate creates

/** Name → description, e.g. `index "Message_conversationId_createdAt_idx"` → `Message USING btree (conversationId, createdAt)`. */
export type DatabaseFacts = Record<string, string>;

export interface KeyPart {
  column: string;
  desc: boolean;
}

export const describeKeys = (keys: KeyPart[]) => keys.map((k) => (k.desc ? `${k.column} DESC` : k.column)).join(', ');

const REFERENTIAL_ACTION: Record<string, string> = {
  Cascade: 'CASCADE',
  Restrict: 'RESTRICT',
  NoAction: 'NO ACTION',
  SetNull: 'SET NULL',
  SetDefault: 'SET DEFAULT',
};

const FIELD_ATTRIBUTES = ['id', 'unique', 'default', 'map', 'updatedAt'];

const INDEX_TYPE: Record<string, string> = { BTree: 'btree', Hash: 'hash', Gist: 'gist', Gin: 'gin', SpGist: 'spgist', Brin: 'brin' };

/** PostgreSQL's limit is 63 bytes; Prisma shortens the part before the suffix. */
function constraintName(table: string, columns: string[], suffix: string): string {
  return `${`${table}_${columns.join('_')}`.slice(0, 63 - suffix.length)}${suffix}`;
}

/** As format_type() prints it: lower-case simple names bare, others quoted. */
export function quoteIdent(name: string): string {
  return /^[a-z_][a-z0-9_$]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`;
}

export function expectedDatabase(schema: PrismaSchema): DatabaseFacts {
  const facts: DatabaseFacts = {};
  const models = new Map(schema.models.map((m) => [m.name, m]));
  const enums = new Map(schema.enums.map((e) => [e.name, e]));
  const tableOf = (model: Model) => mapped(model) ?? model.name;
  const columnOf = (field: Field) => mapped(field) ?? field.name;
  const fieldOf = (model: Model, name: string) => model.fields.find((f) => f.name === name) ?? raise(`${model.name} has no field ${name}`);
  /** `[a, b(sort: Desc)]` → key parts. */
  const keyParts = (model: Model, list: Expr | undefined): KeyPart[] => {
    if (list?.kind !== 'array') raise(`${model.name}: expected a list of fields`);
    return list.items.map((item) => {
      const name = item.kind === 'ident' ? item.name : item.kind === 'call' ? item.name : raise(`${model.name}: bad key ${JSON.stringify(item)}`);
      const sort = item.kind === 'call' ? arg(item.args, 'sort') : undefined;
      if (item.kind === 'call' && item.args.some((a) => a.name !== 'sort')) raise(`${model.name}.${name}: only sort: is understood`);
      return { column: columnOf(fieldOf(model, name)), desc: sort?.kind === 'ident' && sort.name === 'Desc' };
    });
  };

  for (const e of schema.enums) {
    const labels = e.values.map((v) => mapped(v) ?? v.name);
    facts[`enum "${mapped(e) ?? e.name}"`] = JSON.stringify(labels);
  }

  for (const model of schema.models) {
    const table = tableOf(model);
    facts[`table "${table}"`] = 'table';
    const scalars = model.fields.filter((f) => !models.has(f.type));

    for (const field of scalars) {
      const unknown = field.attributes.find((a) => !FIELD_ATTRIBUTES.includes(a.name) && !a.name.startsWith('db.'));
      if (unknown) raise(`${model.name}.${field.name}: @${unknown.name} is not understood`);
      const column = columnOf(field);
      const type = columnType(field, enums);
      // Prisma Migrate leaves list columns nullable (prisma/prisma#4729), so drift is measured against that.
      const notNull = !field.optional && !field.list;
      const dflt = columnDefault(field, type, table, column, enums);
      facts[`column "${table}"."${column}"`] = `${type} ${notNull ? 'NOT NULL' : 'NULL'}${dflt === undefined ? '' : ` DEFAULT ${dflt}`}`;

      if (attr(field, 'unique')) {
        const name = mapArg(attr(field, 'unique')!) ?? constraintName(table, [column], '_key');
        facts[`unique index "${name}"`] = `${table} USING btree (${column})`;
      }
    }

    const idField = scalars.filter((f) => attr(f, 'id'));
    const compositeId = attr(model, 'id');
    if (idField.length + (compositeId ? 1 : 0) !== 1) raise(`${model.name}: expected exactly one @id or @@id`);
    const pkColumns = compositeId ? keyParts(model, arg(compositeId.args, 'fields', 0)).map((k) => k.column) : [columnOf(idField[0]!)];
    const pkName = mapArg(compositeId ?? attr(idField[0]!, 'id')!) ?? `${table}_pkey`;
    facts[`primary key "${pkName}"`] = `${table}(${pkColumns.join(', ')})`;

    for (const a of model.attributes) {
      if (a.name === 'index' || a.name === 'unique') {
        const keys = keyParts(model, arg(a.args, 'fields', 0));
        const typeArg = arg(a.args, 'type');
        const method = typeArg?.kind === 'ident' ? (INDEX_TYPE[typeArg.name] ?? raise(`unknown index type ${typeArg.name}`)) : 'btree';
        const suffix = a.name === 'unique' ? '_key' : '_idx';
        const name =
          mapArg(a) ??
          constraintName(
            table,
            keys.map((k) => k.column),
            suffix,
          );
        facts[`${a.name === 'unique' ? 'unique index' : 'index'} "${name}"`] = `${table} USING ${method} (${describeKeys(keys)})`;
      } else if (a.name !== 'id' && a.name !== 'map') raise(`${model.name}: @@${a.name} is not understood`);
    }

    for (const relation of model.fields.filter((f) => models.has(f.type))) {
      const r = attr(relation, 'relation');
      const fields = r && arg(r.args, 'fields');
      if (!r || !fields) {
        const target = models.get(relation.type)!;
        const implicitManyToMany = relation.list && target.fields.some((f) => f.type === model.name && f.list);
        if (implicitManyToMany) raise(`${model.name}.${relation.name}: implicit many-to-many is not understood`);
        continue; // the other side holds the foreign key
      }
      const target = models.get(relation.type)!;
      const columns = keyParts(model, fields).map((k) => k.column);
      const references = keyParts(target, arg(r.args, 'references')).map((k) => k.column);
      const optional = fieldNames(fields).some((name) => fieldOf(model, name).optional);
      const onDelete = actionArg(r, 'onDelete') ?? (optional ? 'SetNull' : 'Restrict');
      const onUpdate = actionArg(r, 'onUpdate') ?? 'Cascade';
      const name = mapArg(r) ?? constraintName(table, columns, '_fkey');
      facts[`foreign key "${name}"`] =
        `${table}(${columns.join(', ')}) REFERENCES ${tableOf(target)}(${references.join(', ')}) ` +
        `ON DELETE ${REFERENTIAL_ACTION[onDelete]} ON UPDATE ${REFERENTIAL_ACTION[onUpdate]}`;
    }
  }
  return facts;
}

function columnType(field: Field, enums: Map<string, Enum>): string {
  const native = field.attributes.find((a) => a.name.startsWith('db.'));
  const nativeName = native?.name.slice(3);
  const params = (native?.args ?? []).map((a) => (a.value.kind === 'number' ? a.value.value : raise(`@${native!.name}: bad argument`)));
  const withParams = (base: string, suffix = '') => (params.length ? `${base}(${params.join(',')})${suffix}` : `${base}${suffix}`);
  let base: string | undefined;
  if (field.type === 'Unsupported') base = field.unsupported;
  else if (enums.has(field.type)) base = quoteIdent(mapped(enums.get(field.type)!) ?? field.type);
  else if (!native) {
    base = {
      String: 'text',
      Int: 'integer',
      BigInt: 'bigint',
      Float: 'double precision',
      Decimal: 'numeric(65,30)',
      Boolean: 'boolean',
      DateTime: 'timestamp(3) without time zone',
      Json: 'jsonb',
      Bytes: 'bytea',
    }[field.type];
  } else {
    base = {
      Uuid: 'uuid',
      Text: 'text',
      VarChar: withParams('character varying'),
      Char: withParams('character'),
      SmallInt: 'smallint',
      Integer: 'integer',
      BigInt: 'bigint',
      Real: 'real',
      DoublePrecision: 'double precision',
      Decimal: withParams('numeric'),
      Timestamp: withParams('timestamp', ' without time zone'),
      Timestamptz: withParams('timestamp', ' with time zone'),
      Date: 'date',
      Json: 'json',
      JsonB: 'jsonb',
    }[nativeName!];
  }
  if (!base) raise(`${field.name}: no PostgreSQL type known for ${field.type}${native ? ` @${native.name}` : ''}`);
  return field.list ? `${base}[]` : base;
}

/** The default as pg_get_expr() prints it, or undefined when Prisma sets none in the database. */
function columnDefault(field: Field, type: string, table: string, column: string, enums: Map<string, Enum>): string | undefined {
  const value = attr(field, 'default')?.args[0]?.value;
  if (!value) return undefined;
  const literal = (v: Expr, elementType: string): string => {
    if (v.kind === 'number') return String(v.value);
    if (v.kind === 'ident' && (v.name === 'true' || v.name === 'false')) return v.name;
    if (v.kind === 'ident' && enums.has(field.type)) return `'${v.name}'::${elementType}`;
    if (v.kind === 'string' && /^(text|character varying.*|jsonb|json)$/.test(elementType)) {
      return `'${v.value.replace(/'/g, "''")}'::${elementType.replace(/\(.*\)/, '')}`;
    }
    return raise(`${table}.${column}: default ${JSON.stringify(v)} is not understood`);
  };
  if (value.kind === 'call') {
    if (['uuid', 'cuid', 'nanoid', 'ulid'].includes(value.name)) return undefined; // generated by the client
    if (value.name === 'now') return 'CURRENT_TIMESTAMP';
    if (value.name === 'autoincrement') return `nextval('${quoteIdent(`${table}_${column}_seq`)}'::regclass)`;
    if (value.name === 'dbgenerated') return stringArg(value.args, 0, undefined);
    return raise(`${table}.${column}: @default(${value.name}()) is not understood`);
  }
  if (value.kind === 'array') {
    const element = type.replace(/\[\]$/, '');
    return value.items.length ? `ARRAY[${value.items.map((v) => literal(v, element)).join(', ')}]` : `ARRAY[]::${type}`;
  }
  return literal(value, type);
}

function mapped(on: { attributes: Attribute[] }): string | undefined {
  const a = attr(on, 'map');
  return a && stringArg(a.args, 0, 'name');
}

/** The `map:` argument of @id, @unique, @@index, @relation… (the database name). */
function mapArg(a: Attribute): string | undefined {
  const value = arg(a.args, 'map');
  return value?.kind === 'string' ? value.value : undefined;
}

function actionArg(a: Attribute, name: string): string | undefined {
  const value = arg(a.args, name);
  if (!value) return undefined;
  if (value.kind !== 'ident' || !REFERENTIAL_ACTION[value.name]) raise(`unknown referential action ${JSON.stringify(value)}`);
  return value.name;
}

function fieldNames(list: Expr): string[] {
  return list.kind === 'array' ? list.items.map((i) => (i.kind === 'ident' ? i.name : raise('expected a field name'))) : [];
}

function raise(message: string): never {
  throw new Error(`prisma-schema: ${message}`);
}
