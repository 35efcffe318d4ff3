import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestApp, type TestApp } from '../helpers/app.js';
import { describeEachDatabase } from '../helpers/db.js';
import { formatPrismaCursor } from '@pothos/plugin-prisma';
import { decodeGlobalID } from '@pothos/plugin-relay';
import { seedConversations } from '../helpers/fixtures.js';

const NESTED = /* GraphQL */ `
  query Nested($n: Int!) {
    conversations(first: $n) {
      edges {
        node {
          id
          messages(first: $n) { edges { node { id content feedback { rating } } } }
          lastMessage { content }
        }
      }
    }
  }
`;

/** The nested read as a cursor page: `first`/`after` or `last`/`before`. */
const NESTED_PAGE = /* GraphQL */ `
  query NestedPage($first: Int, $after: String, $last: Int, $before: String) {
    conversations(first: $first, after: $after, last: $last, before: $before) {
      edges {
        cursor
        node {
          id title messageCount
          messages(first: 20) { edges { node { id role content feedback { rating } } } }
          lastMessage { content }
        }
      }
      pageInfo { hasNextPage hasPreviousPage }
    }
  }
`;

describeEachDatabase('SQL statements per nested query', (variant) => {
  let t: TestApp;
  let key: string;

  beforeAll(async () => {
    t = await createTestApp(variant);
    const product = await t.product();
    key = product.key;
    await seedConversations(t.prisma, product.id, { conversations: 25, messages: 25, feedbackEvery: 2 });
  });
  afterAll(() => t?.dispose());

  /** What a read costs when nothing is cached (the cache is flushed first). */
  const cold: TestApp['gql'] = async (query, options) => {
    await t.app.deps.cache.flush();
    return t.gql(query, options);
  };

  it('uses the same small number of statements for first: 20 and first: 5', async () => {
    const big = await cold(NESTED, { key, variables: { n: 20 } });
    expect(big.errors).toBeUndefined();
    expect(big.data.conversations.edges).toHaveLength(20);
    expect(big.data.conversations.edges[0].node.messages.edges).toHaveLength(20);
    const small = await cold(NESTED, { key, variables: { n: 5 } });
    expect(small.errors).toBeUndefined();
    expect(small.data.conversations.edges).toHaveLength(5);

    // Product lookup for the key + one statement for the whole nested read.
    expect(big.sql.length).toBeLessThanOrEqual(4);
    expect(small.sql.length).toBe(big.sql.length);
    expect(big.sql.length).toBe(2);
    // The text too, so a change of plan shows in review (as plugin-prisma's own tests snapshot theirs).
    expect(big.sql).toMatchSnapshot();
  });

  it('reads a cursor page forwards and backwards in one statement after the key, with the same rows as the whole list', async () => {
    const all = await cold(NESTED_PAGE, { key, variables: { first: 25 } });
    expect(all.errors).toBeUndefined();
    const edges = all.data.conversations.edges;
    expect(edges).toHaveLength(25);
    const nodes = (from: number, to: number) => edges.slice(from, to).map((e: any) => e.node);

    const forwards = await cold(NESTED_PAGE, { key, variables: { first: 5, after: edges[5].cursor } });
    expect(forwards.errors).toBeUndefined();
    expect(forwards.data.conversations.edges.map((e: any) => e.node)).toEqual(nodes(6, 11));
    expect(forwards.data.conversations.edges.map((e: any) => e.cursor)).toEqual(edges.slice(6, 11).map((e: any) => e.cursor));
    expect(forwards.data.conversations.pageInfo).toEqual({ hasNextPage: true, hasPreviousPage: true });
    expect(forwards.sql).toHaveLength(2);

    const backwards = await cold(NESTED_PAGE, { key, variables: { last: 5, before: edges[15].cursor } });
    expect(backwards.errors).toBeUndefined();
    expect(backwards.data.conversations.edges.map((e: any) => e.node)).toEqual(nodes(10, 15));
    expect(backwards.data.conversations.pageInfo).toEqual({ hasNextPage: true, hasPreviousPage: true });
    expect(backwards.sql).toHaveLength(2);
    expect({ forwards: forwards.sql, backwards: backwards.sql }).toMatchSnapshot();

    const end = await cold(NESTED_PAGE, { key, variables: { first: 5, after: edges[21].cursor } });
    expect(end.data.conversations.edges.map((e: any) => e.node)).toEqual(nodes(22, 25));
    expect(end.data.conversations.pageInfo).toEqual({ hasNextPage: false, hasPreviousPage: true });
    const start = await cold(NESTED_PAGE, { key, variables: { last: 5, before: edges[3].cursor } });
    expect(start.data.conversations.edges.map((e: any) => e.node)).toEqual(nodes(0, 3));
    expect(start.data.conversations.pageInfo).toEqual({ hasNextPage: true, hasPreviousPage: false });
  });

  it('still reads a cursor of the earlier format (the row id alone), with one more statement to find its row', async () => {
    const all = await cold(NESTED_PAGE, { key, variables: { first: 25 } });
    const edges = all.data.conversations.edges;
    const idCursor = (i: number) => formatPrismaCursor({ id: decodeGlobalID(edges[i].node.id).id }, 'id');
    const forwards = await cold(NESTED_PAGE, { key, variables: { first: 5, after: idCursor(5) } });
    expect(forwards.errors).toBeUndefined();
    expect(forwards.data.conversations.edges).toEqual(edges.slice(6, 11));
    expect(forwards.sql.length).toBeLessThanOrEqual(3);
    const backwards = await cold(NESTED_PAGE, { key, variables: { last: 5, before: idCursor(15) } });
    expect(backwards.data.conversations.edges).toEqual(edges.slice(10, 15));
    expect(backwards.sql.length).toBeLessThanOrEqual(3);
  });

  it("reads a cursor page of a conversation's messages in the conversation's statement, forwards and backwards", async () => {
    const MESSAGES = `query M($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
      conversation(id: $id) { id messages(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id role content createdAt feedback { rating } } } pageInfo { hasNextPage hasPreviousPage }
      } }
    }`;
    const list = await cold(NESTED_PAGE, { key, variables: { first: 1 } });
    const id = list.data.conversations.edges[0].node.id;
    const all = await cold(MESSAGES, { key, variables: { id, first: 25 } });
    expect(all.errors).toBeUndefined();
    const edges = all.data.conversation.messages.edges;
    expect(edges).toHaveLength(25);

    const widget = await cold(MESSAGES, { key, variables: { id, last: 20 } });
    expect(widget.data.conversation.messages.edges).toEqual(edges.slice(5));
    expect(widget.sql).toHaveLength(2);

    const forwards = await cold(MESSAGES, { key, variables: { id, first: 5, after: edges[5].cursor } });
    expect(forwards.errors).toBeUndefined();
    expect(forwards.data.conversation.messages.edges).toEqual(edges.slice(6, 11));
    expect(forwards.data.conversation.messages.pageInfo).toEqual({ hasNextPage: true, hasPreviousPage: true });
    expect(forwards.sql).toHaveLength(2);

    const backwards = await cold(MESSAGES, { key, variables: { id, last: 5, before: edges[15].cursor } });
    expect(backwards.data.conversation.messages.edges).toEqual(edges.slice(10, 15));
    expect(backwards.data.conversation.messages.pageInfo).toEqual({ hasNextPage: true, hasPreviousPage: true });
    expect(backwards.sql).toHaveLength(2);
    expect({ widget: widget.sql, forwards: forwards.sql, backwards: backwards.sql }).toMatchSnapshot();

    // A cursor of the earlier format (the row id alone) still pages, in a statement of its own.
    const idCursor = formatPrismaCursor({ id: decodeGlobalID(edges[15].node.id).id }, 'id');
    const old = await cold(MESSAGES, { key, variables: { id, last: 5, before: idCursor } });
    expect(old.errors).toBeUndefined();
    expect(old.data.conversation.messages.edges.map((e: any) => e.node)).toEqual(edges.slice(10, 15).map((e: any) => e.node));
    expect(old.sql.length).toBeLessThanOrEqual(4);
  });

  it('reads a cursor page of conversations and their messages in index order: no sort, no row beyond the page', async () => {
    const all = await cold(NESTED_PAGE, { key, variables: { first: 25 } });
    const edges = all.data.conversations.edges;
    const plans: string[] = [];
    for (const variables of [
      { first: 5, after: edges[5].cursor },
      { last: 5, before: edges[15].cursor },
    ]) {
      const page = await cold(NESTED_PAGE, { key, variables });
      // The planned read's statement (plugins/planned-reads.ts): the conversations with their pages as JSON.
      const at = page.sql.findIndex((sql) => sql.startsWith('SELECT c."id", c."lastMessageAt"'));
      expect(at).toBeGreaterThanOrEqual(0);
      // The plan PostgreSQL would pick for a product with many conversations: an index scan, the only way to
      // avoid reading and sorting them all. A page order no index yields shows as a Sort node.
      const plan = await t.prisma.$transaction(async (tx) => {
        await tx.$executeRawUnsafe('SET LOCAL enable_seqscan = off');
        await tx.$executeRawUnsafe('SET LOCAL enable_bitmapscan = off');
        const rows = await tx.$queryRawUnsafe<{ 'QUERY PLAN': unknown }[]>(`EXPLAIN (FORMAT JSON) ${page.sql[at]}`, ...page.sqlArgs[at]!);
        return JSON.stringify(rows[0]!['QUERY PLAN']);
      });
      plans.push(plan);
    }
    for (const plan of plans) {
      expect(plan).not.toMatch(/"Node Type":"(Sort|Incremental Sort)"/);
      expect(plan).toContain('Conversation_productId_lastMessageAt_id_idx');
      expect(plan).toContain('Message_conversationId_createdAt_id_idx');
    }
  });

  it('answers a repeated nested read from the cache without any statement', async () => {
    const first = await cold(NESTED, { key, variables: { n: 20 } });
    const again = await t.gql(NESTED, { key, variables: { n: 20 } });
    expect(again.data).toEqual(first.data);
    expect(again.sql).toEqual([]);
  });

  it('searches knowledge in one statement, and answers a repeated search with none (no re-read of the hits)', async () => {
    const productId = (await t.app.deps.db.prisma.product.findFirstOrThrow({ where: { name: 'Test product' } })).id;
    for (let i = 0; i < 8; i += 1) {
      await t.prisma.knowledgeEntry.create({
        data: { productId, title: `Parcel ${i}`, content: `Where is my parcel number ${i}? Track it online.`, tags: ['parcel'] },
      });
    }
    const SEARCH = `query($q: String!) { searchKnowledge(query: $q, first: 5) { score entry { id title content tags createdAt updatedAt } } }`;
    const first = await cold(SEARCH, { key, variables: { q: 'where is my parcel' } });
    expect(first.errors).toBeUndefined();
    expect(first.data.searchKnowledge).toHaveLength(5);
    // Product lookup + the ranking statement, which returns whole rows: the hits are not read again.
    expect(first.sql).toHaveLength(2);
    expect(first.sql.filter((s) => /FROM "public"\."KnowledgeEntry"/.test(s))).toEqual([]);
    const again = await t.gql(SEARCH, { key, variables: { q: 'where is my parcel' } });
    expect(again.data).toEqual(first.data);
    expect(again.sql).toEqual([]);
  });

  it('returns feedback and lastMessage from the same statement', async () => {
    const { data, sql } = await cold(NESTED, { key, variables: { n: 20 } });
    const nodes = data.conversations.edges.map((e: any) => e.node);
    const ratings = nodes.flatMap((n: any) => n.messages.edges.map((e: any) => e.node.feedback?.rating)).filter(Boolean);
    expect(ratings.length).toBeGreaterThan(0);
    for (const node of nodes) expect(node.lastMessage.content).toMatch(/^Question 24 of conversation/);
    expect(sql.filter((s) => /"Feedback"/.test(s))).toHaveLength(1);
  });

  it('reads no content column when only ids are asked for', async () => {
    const { sql, errors } = await cold(`{ conversations(first: 20) { edges { node { id messages(first: 20) { edges { node { id } } } } } } }`, {
      key,
    });
    expect(errors).toBeUndefined();
    const read = sql.filter((s) => /"Conversation"/.test(s));
    expect(read).toHaveLength(1);
    expect(read[0]).not.toMatch(/content/);
    expect(read[0]).not.toMatch(/"title"/);
  });

  it('batches stats of many products into one statement', async () => {
    for (let i = 0; i < 5; i++) await t.product(`Other ${i}`);
    const { data, sql, errors } = await cold(
      `{ products(first: 10) { edges { node { name stats { conversationCount messageCount feedbackUp feedbackDown } } } } }`,
      { admin: true },
    );
    expect(errors).toBeUndefined();
    expect(data.products.edges.length).toBe(6);
    expect(sql.filter((s) => /count\(\*\)/i.test(s))).toHaveLength(1);
    expect(sql.length).toBe(2);
    const first = data.products.edges[0].node.stats;
    expect(first.conversationCount).toBe(25);
    expect(first.messageCount).toBe(25 * 25);
  });
});

describeEachDatabase('SQL statements per sendMessage', (variant) => {
  let t: TestApp;
  let key: string;
  let conversationId: string;
  const send = (message: string, reply: string, content: string) =>
    t.gql(`mutation($input: SendMessageInput!) { sendMessage(input: $input) { message { ${message} } reply { ${reply} } } }`, {
      key,
      variables: { input: { conversationId, content } },
    });
  const MESSAGE = 'id role content createdAt cached';
  const REPLY = 'id role content createdAt model cached latencyMs sources { id }';
  /** The same messages read back by id. */
  const reread = (message: string, reply: string, ids: { message: string; reply: string }) =>
    t.gql(`query($a: ID!, $b: ID!) { a: node(id: $a) { ... on Message { ${message} } } b: node(id: $b) { ... on Message { ${reply} } } }`, {
      key,
      variables: { a: ids.message, b: ids.reply },
    });
  const messageReads = (sql: string[]) => sql.filter((s) => /FROM "public"\."Message"/.test(s));

  beforeAll(async () => {
    t = await createTestApp(variant);
    const product = await t.product();
    key = product.key;
    const added = await t.gql(`mutation { addKnowledge(input: { title: "Shipping", content: "Shipping takes three days." }) { id } }`, { key });
    expect(added.errors).toBeUndefined();
    const started = await t.gql(`mutation { startConversation(input: { sessionId: "sql" }) { id } }`, { key });
    conversationId = started.data.startConversation.id;
  });
  afterAll(() => t?.dispose());

  it('stores the question and the reply and ranks once: the payload reads no message again', async () => {
    const sent = await send(MESSAGE, REPLY, 'How long does shipping take?');
    expect(sent.errors).toBeUndefined();
    // The ranking, then the USER message and the reply in one statement (and the sources' entries, a loader of their own).
    expect(sent.sql.filter((s) => /INSERT INTO "Message"/.test(s))).toHaveLength(1);
    expect(messageReads(sent.sql)).toEqual([]);
    expect(sent.sql.length).toBeLessThanOrEqual(3);
    expect(sent.sql).toMatchSnapshot();
    // What the payload shows is what a read of the stored rows shows.
    const { message, reply } = sent.data.sendMessage;
    expect(reply.sources).toHaveLength(1);
    expect((await reread(MESSAGE, REPLY, { message: message.id, reply: reply.id })).data).toEqual({ a: message, b: reply });
  });

  it('a relation selected on the payload is loaded as for any message', async () => {
    const withRelation = 'id content conversation { id sessionId }';
    const sent = await send(withRelation, withRelation, 'Do you ship abroad?');
    expect(sent.errors).toBeUndefined();
    const { message, reply } = sent.data.sendMessage;
    expect(message.conversation).toEqual({ id: conversationId, sessionId: 'sql' });
    expect((await reread(withRelation, withRelation, { message: message.id, reply: reply.id })).data).toEqual({ a: message, b: reply });
  });
});
