import { encodeGlobalID } from '@pothos/plugin-relay';
import {
  getArgumentValues,
  getNamedType,
  getOperationAST,
  getVariableValues,
  Kind,
  type DocumentNode,
  type ExecutionResult,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLObjectType,
  type GraphQLSchema,
  type SelectionSetNode,
  type VariableDefinitionNode,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../context.js';
import { cursorPlace, keysetConnection, pageSize, placeCursor, refuseMixedDirections, type PageArgs } from '../schema/pages.js';
import {
  CONVERSATION_COLUMNS,
  FEEDBACK_COLUMNS,
  MESSAGE_COLUMNS,
  readConversation,
  readConversationTree,
  type ConversationColumn,
  type ConversationRow,
  type FeedbackColumn,
  type MessageColumn,
  type MessageColumns,
  type MessageRow,
  type TreeShape,
} from '../services/conversation-tree.js';
import { isUuid } from '../services/ids.js';
import { parseGlobalId } from '../schema/ids.js';
import { noNul } from '../services/validation.js';

/**
 * Planned reads: a query that selects only a product's conversations and what
 * lies beneath them (messages, feedback, last message, pages and cursors) is
 * answered from one SQL statement that returns the tree (services/conversation-tree.ts)
 * and written straight into the response, without resolving its ~3,400 fields one
 * by one through the executor and plugin-prisma. That per-field work, Prisma's
 * row mapping and the garbage it left were ~60 % of the CPU of a cursor page
 * (the closing note of the fast-reads issue has the profiles). The plan of a
 * document is made once; everything it does not cover — another root field,
 * a field outside the tables below, directives, fragments on interfaces, a
 * publishable key, an admin, an argument the resolvers would refuse — runs
 * through the executor as before, so errors and checks stay where they are.
 * test/integration/planned-reads.test.ts runs queries both ways and compares.
 */

/** The fields answered here, by type; every other field leaves the whole operation to the executor. */
const FIELDS: Readonly<Record<string, ReadonlySet<string>>> = {
  Query: new Set(['conversations', 'conversation']),
  QueryConversationsConnection: new Set(['edges', 'nodes', 'pageInfo']),
  QueryConversationsConnectionEdge: new Set(['cursor', 'node']),
  ConversationMessagesConnection: new Set(['edges', 'nodes', 'pageInfo']),
  ConversationMessagesConnectionEdge: new Set(['cursor', 'node']),
  PageInfo: new Set(['hasNextPage', 'hasPreviousPage', 'startCursor', 'endCursor']),
  Conversation: new Set(['id', 'sessionId', 'title', 'messageCount', 'lastMessageAt', 'createdAt', 'lastMessage', 'messages']),
  Message: new Set(['id', 'role', 'content', 'createdAt', 'model', 'latencyMs', 'cached', 'feedback']),
  Feedback: new Set(['id', 'rating', 'comment', 'createdAt']),
};

/** A selected field: its response key, its name, its node (for arguments) and, for objects, what is selected on them. */
interface Selected {
  key: string;
  name: string;
  node: FieldNode;
  type: string;
  children?: Selected[];
}

interface Plan {
  /** The operation's variables, coerced per request. */
  variables: readonly VariableDefinitionNode[];
  root: Selected[];
  /** The root field read: `conversations` (a page) or `conversation` (one by id, e.g. the chat widget's). */
  conversations: Selected;
  conversationsField: GraphQLField<unknown, unknown>;
  messages?: { node: FieldNode; field: GraphQLField<unknown, unknown> } | undefined;
  shape: Omit<TreeShape, 'messages'> & { messages?: MessageColumns | undefined };
}

export function usePlannedReads(): Plugin<Context> {
  const plans = new WeakMap<DocumentNode, Map<string, Plan | null>>();
  const planOf = (schema: GraphQLSchema, document: DocumentNode, operationName: string | undefined) => {
    let byName = plans.get(document);
    if (!byName) plans.set(document, (byName = new Map()));
    let plan = byName.get(operationName ?? '');
    if (plan === undefined) byName.set(operationName ?? '', (plan = makePlan(schema, document, operationName)));
    return plan;
  };
  return {
    onExecute({ args, executeFn, setExecuteFn }) {
      const plan = planOf(args.schema as GraphQLSchema, args.document, args.operationName ?? undefined);
      if (!plan) return;
      setExecuteFn((executeArgs) => {
        const ctx = executeArgs.contextValue as Context;
        const run = () => executeFn(executeArgs);
        // A product's key, not an admin's request. A publishable key only for the one conversation its token
        // opens (every row below it is of that conversation); anything else is for auth-scopes to refuse.
        if (!ctx.product || ctx.isAdmin || !ctx.key) return run();
        const request = planRequest(plan, executeArgs.schema as GraphQLSchema, executeArgs.variableValues);
        if (!request) return run();
        if (ctx.key.kind !== 'SECRET' && (request.id === undefined || !ctx.conversationId || request.id !== ctx.conversationId)) return run();
        // Anything that goes wrong (the database, a row the plan did not expect) is left to the executor,
        // which reports it with its path and code as for any query.
        return answer(plan, request, ctx).catch(run) as ReturnType<typeof executeFn>;
      });
    },
  };
}

/** The plan of a document's operation, or null when the executor must run it. */
export function makePlan(schema: GraphQLSchema, document: DocumentNode, operationName: string | undefined): Plan | null {
  const operation = getOperationAST(document, operationName);
  if (operation?.operation !== 'query' || operation.directives?.length) return null;
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
  }
  const root = selectionOf(schema, fragments, 'Query', operation.selectionSet);
  const reads = root?.filter((s) => s.name !== '__typename');
  if (!root || reads?.length !== 1) return null;
  const conversations = reads[0]!;
  // The conversations selected, wherever they are (edges.node, nodes; the root field itself for one by id).
  const conversationSelections = childrenOfType(conversations, 'Conversation');
  const messageFields = conversationSelections.filter((s) => s.name === 'messages');
  // Two pages of messages (aliases with other arguments) would need two subqueries: left to the executor.
  if (messageFields.length > 1) return null;
  const columns = new Set<ConversationColumn>(['id', 'lastMessageAt']);
  for (const s of conversationSelections) if ((CONVERSATION_COLUMNS as readonly string[]).includes(s.name)) columns.add(s.name as ConversationColumn);
  const lastMessages = conversationSelections.filter((s) => s.name === 'lastMessage');
  const messagesField = messageFields[0];
  const queryType = schema.getQueryType()!;
  const conversationType = schema.getType('Conversation') as GraphQLObjectType;
  return {
    variables: operation.variableDefinitions ?? [],
    root,
    conversations,
    conversationsField: queryType.getFields()[conversations.name]!,
    messages: messagesField && { node: messagesField.node, field: conversationType.getFields().messages! },
    shape: {
      columns: [...columns],
      lastMessage: lastMessages.length
        ? messageColumns(
            lastMessages.flatMap((s) => s.children ?? []),
            false,
          )
        : undefined,
      messages: messagesField ? messageColumns(childrenOfType(messagesField, 'Message'), true) : undefined,
    },
  };
}

/** The fields selected on an object type, fragments flattened; null when something is not answered here. */
function selectionOf(
  schema: GraphQLSchema,
  fragments: Map<string, FragmentDefinitionNode>,
  typeName: string,
  selectionSet: SelectionSetNode,
): Selected[] | null {
  const allowed = FIELDS[typeName];
  const type = schema.getType(typeName) as GraphQLObjectType | undefined;
  if (!allowed || !type) return null;
  const out: Selected[] = [];
  const keys = new Set<string>();
  const visit = (set: SelectionSetNode): boolean => {
    for (const selection of set.selections) {
      if (selection.directives?.length) return false;
      if (selection.kind === Kind.FIELD) {
        const key = selection.alias?.value ?? selection.name.value;
        const name = selection.name.value;
        // One field per response key: merging two selections of one key is the executor's.
        // `__proto__` would set a plain object's prototype instead of a key.
        if (keys.has(key) || key === '__proto__') return false;
        keys.add(key);
        if (name === '__typename') {
          out.push({ key, name, node: selection, type: typeName });
          continue;
        }
        if (!allowed.has(name)) return false;
        const field = type.getFields()[name];
        if (!field) return false;
        const child = getNamedType(field.type).name;
        const entry: Selected = { key, name, node: selection, type: child };
        if (selection.selectionSet) {
          const children = selectionOf(schema, fragments, child, selection.selectionSet);
          if (!children) return false;
          entry.children = children;
        }
        out.push(entry);
        continue;
      }
      const fragment = selection.kind === Kind.INLINE_FRAGMENT ? selection : fragments.get(selection.name.value);
      if (!fragment) return false;
      if (fragment.typeCondition && fragment.typeCondition.name.value !== typeName) return false;
      if (selection.kind === Kind.FRAGMENT_SPREAD && fragment.directives?.length) return false;
      if (!visit(fragment.selectionSet)) return false;
    }
    return true;
  };
  return visit(selectionSet) ? out : null;
}

/** Every selection made on objects of `typeName` below `field`. */
function childrenOfType(field: Selected, typeName: string): Selected[] {
  const out: Selected[] = [];
  const walk = (s: Selected) => {
    for (const child of s.children ?? []) {
      if (child.type === typeName && child.children) out.push(...child.children);
      else if (child.type !== 'Conversation' && child.type !== 'Message') walk(child);
    }
  };
  if (field.type === typeName) out.push(...(field.children ?? []));
  else walk(field);
  return out;
}

/** `paged`: the rows of a page, whose order and cursors need their time. */
function messageColumns(selections: Selected[], paged: boolean): MessageColumns {
  const columns = new Set<MessageColumn>(paged ? ['id', 'createdAt'] : ['id']);
  for (const s of selections) if ((MESSAGE_COLUMNS as readonly string[]).includes(s.name)) columns.add(s.name as MessageColumn);
  const feedback = selections.filter((s) => s.name === 'feedback');
  if (!feedback.length) return { columns: [...columns] };
  const feedbackColumns = new Set<FeedbackColumn>(['id']);
  for (const f of feedback) {
    for (const s of f.children ?? []) if ((FEEDBACK_COLUMNS as readonly string[]).includes(s.name)) feedbackColumns.add(s.name as FeedbackColumn);
  }
  return { columns: [...columns], feedback: [...feedbackColumns] };
}

/** One request's arguments, checked as the resolvers check them. */
interface PlannedRequest {
  conversationArgs: PageArgs & { sessionId?: string | null };
  /** `conversation(id)`: the conversation's id. */
  id?: string | undefined;
  messageArgs: PageArgs | undefined;
  shape: TreeShape;
  /** The product whose list the cursor was issued for: another's gives an empty page, as the resolver answers. */
  owner?: string | undefined;
  from?: { lastMessageAt: Date; id: string } | undefined;
  take: number;
  towardsNewer: boolean;
}

const NO_ROW = '00000000-0000-0000-0000-000000000000';

/** The request's arguments, or undefined when the executor must answer (it reports what is wrong with them). */
function planRequest(plan: Plan, schema: GraphQLSchema, raw: Record<string, unknown> | null | undefined): PlannedRequest | undefined {
  try {
    const variables = getVariableValues(schema, plan.variables, raw ?? {}, { maxErrors: 1 });
    if (!variables.coerced) return undefined;
    const conversationArgs = getArgumentValues(
      plan.conversationsField,
      plan.conversations.node,
      variables.coerced,
    ) as PlannedRequest['conversationArgs'];
    // Read from the document before execution, where no arg mapper runs: the check t.arg.globalID gets from global-id-args.ts.
    const id =
      plan.conversations.name === 'conversation'
        ? parseGlobalId(String(conversationArgs['id' as keyof PageArgs]), ['Conversation'], 'id')
        : undefined;
    refuseMixedDirections(conversationArgs);
    if (conversationArgs.sessionId != null && !noNul(conversationArgs.sessionId)) return undefined;
    const place = cursorPlace(conversationArgs);
    // A cursor of the earlier format (the row id alone) costs the resolver a lookup of its own.
    if (place && !('at' in place)) return undefined;
    const { take, backwards } = pageSize(conversationArgs);
    let messageArgs: PageArgs | undefined;
    let messages: TreeShape['messages'];
    if (plan.messages && plan.shape.messages) {
      messageArgs = getArgumentValues(plan.messages.field, plan.messages.node, variables.coerced) as PageArgs;
      refuseMixedDirections(messageArgs);
      const messagePlace = cursorPlace(messageArgs);
      if (messagePlace && !('at' in messagePlace)) return undefined;
      const size = pageSize(messageArgs);
      const from = messagePlace && { ...messagePlace, owner: isUuid(messagePlace.owner) ? messagePlace.owner : NO_ROW };
      messages = { ...plan.shape.messages, page: { take: size.take, backwards: size.backwards, from } };
    }
    return {
      conversationArgs,
      messageArgs,
      shape: { ...plan.shape, messages },
      id,
      owner: place?.owner,
      from: place && { lastMessageAt: place.at, id: place.id },
      take,
      towardsNewer: backwards,
    };
  } catch {
    return undefined;
  }
}

async function answer(plan: Plan, request: PlannedRequest, ctx: Context): Promise<ExecutionResult> {
  const productId = ctx.product!.id;
  // The messages cursor's owner as planRequest read it (a non-uuid owner, NO_ROW, matches no conversation either).
  const writer = new Writer(request.messageArgs, request.shape.messages?.page.from?.owner);
  if (request.id !== undefined) {
    const [row] = await readConversation(ctx.deps.db, productId, request.id, request.shape);
    const data: Record<string, unknown> = {};
    for (const s of plan.root) data[s.key] = s.name === '__typename' ? 'Query' : row ? writer.object('Conversation', s.children!, row) : null;
    return { data };
  }
  // A cursor issued for another product's list gives an empty page, as the resolver answers.
  const rows =
    request.owner !== undefined && request.owner !== productId
      ? []
      : await readConversationTree(
          { db: ctx.deps.db, cache: ctx.cache },
          productId,
          request.conversationArgs.sessionId ?? null,
          { take: request.take, towardsNewer: request.towardsNewer, ...(request.from ? { from: request.from } : {}) },
          request.shape,
        );
  const connection = keysetConnection(request.conversationArgs, (row: ConversationRow) => placeCursor(row.lastMessageAt, row.id, productId), rows);
  const data: Record<string, unknown> = {};
  for (const s of plan.root) {
    data[s.key] = s.name === '__typename' ? 'Query' : writer.object(s.type, s.children!, connection);
  }
  return { data };
}

interface Connection {
  edges: { cursor: string; node: unknown }[];
  pageInfo: object;
}

/** Writes the selected fields of each object as graphql-js would complete them (same order, same serialisation). */
class Writer {
  /** `messageOwner`: the owner of the messages' cursor, the one conversation whose messages page it positions. */
  constructor(
    private readonly messageArgs: PageArgs | undefined,
    private readonly messageOwner: string | undefined,
  ) {}

  object(type: string, fields: Selected[], value: unknown): Record<string, unknown> {
    // A plain object (not graphql-js' Object.create(null), a dictionary): objects of one selection share
    // a shape, which JSON.stringify writes on its fast path. No key is `__proto__` (see selectionOf).
    const out: Record<string, unknown> = {};
    for (const f of fields) out[f.key] = f.name === '__typename' ? type : this.field(type, f, value);
    return out;
  }

  private nullable(type: string, fields: Selected[] | undefined, value: unknown) {
    return value == null ? null : this.object(type, fields!, value);
  }

  private field(type: string, f: Selected, value: unknown): unknown {
    switch (type) {
      case 'QueryConversationsConnection':
      case 'ConversationMessagesConnection': {
        const connection = value as Connection;
        if (f.name === 'pageInfo') return this.object('PageInfo', f.children!, connection.pageInfo);
        if (f.name === 'edges') return connection.edges.map((edge) => this.object(f.type, f.children!, edge));
        return connection.edges.map((edge) => this.object(f.type, f.children!, edge.node));
      }
      case 'QueryConversationsConnectionEdge':
      case 'ConversationMessagesConnectionEdge': {
        const edge = value as { cursor: string; node: unknown };
        return f.name === 'cursor' ? edge.cursor : this.object(f.type, f.children!, edge.node);
      }
      case 'PageInfo':
        return (value as Record<string, unknown>)[f.name];
      case 'Conversation': {
        const row = value as ConversationRow;
        if (f.name === 'id') return encodeGlobalID('Conversation', row.id);
        if (f.name === 'lastMessage') return this.nullable('Message', f.children, row.lastMessage);
        if (f.name === 'messages') {
          // A cursor issued for another conversation's messages gives an empty page, as the resolver answers.
          const rows = this.messageOwner !== undefined && this.messageOwner !== row.id ? [] : row.messages!;
          const connection = keysetConnection(this.messageArgs!, (m: MessageRow) => placeCursor(m.createdAt, m.id, row.id), rows);
          return this.object(f.type, f.children!, connection);
        }
        return column(row, f.name);
      }
      case 'Message': {
        const row = value as MessageRow;
        if (f.name === 'id') return encodeGlobalID('Message', row.id);
        if (f.name === 'feedback') return this.nullable('Feedback', f.children, row.feedback);
        return column(row, f.name);
      }
      case 'Feedback': {
        const row = value as Record<string, unknown>;
        if (f.name === 'id') return encodeGlobalID('Feedback', row.id as string);
        return column(row, f.name);
      }
      default:
        throw new Error(`planned reads: no writer for ${type}.${f.name}`);
    }
  }
}

const TIMES = new Set(['createdAt', 'lastMessageAt']);

/** A column as the schema serialises it: times as ISO-8601 in UTC (the DateTime scalar), the rest as stored. */
function column(row: object, name: string): unknown {
  const value = (row as Record<string, unknown>)[name];
  if (TIMES.has(name) && value != null) return new Date(value as string).toISOString();
  return value ?? null;
}
