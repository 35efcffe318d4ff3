import { encodeGlobalID } from '@pothos/plugin-relay';
import { describe, expect, it } from 'vitest';
import type { Dataset } from '../../bench/dataset.js';
import { buildScenarios, firstDifference, parleyCursor, requestBody, seededRandom } from '../../bench/scenarios.js';

/**
 * The bench's answer check: Parley's and PostGraphile's `data` for the same
 * request, each in its own schema, come out in one canonical shape, and a
 * difference is found and named.
 */

const product = 'a0000000-0000-4000-8000-000000000001';
const conversation = 'c0000000-0000-4000-8000-000000000001';
const message = 'f0000000-0000-4000-8000-000000000001';
const dataset: Dataset = {
  readProducts: [{ id: product, key: 'pk_live_read', conversations: [conversation] }],
  writeProducts: [{ id: 'b0000000-0000-4000-8000-000000000001', key: 'pk_live_write', conversationIds: ['x'] }],
  counts: { products: 2, knowledge: 0, conversations: 1, messages: 1, feedback: 1 },
  generatedInMs: 0,
  generatedAt: new Date(0),
};
const scenarios = buildScenarios(dataset, new Map([[conversation, 'pg-cursor']]));

const parleyNested = {
  conversations: {
    edges: [
      {
        node: {
          id: encodeGlobalID('Conversation', conversation),
          title: 'Hello',
          messageCount: 1,
          messages: { edges: [{ node: { id: encodeGlobalID('Message', message), role: 'USER', content: 'Hi', feedback: { rating: 'UP' } } }] },
          lastMessage: { content: 'Hi' },
        },
      },
    ],
  },
};
const postgraphileNested = {
  allConversations: {
    edges: [
      {
        node: {
          rowId: conversation,
          title: 'Hello',
          messageCount: 1,
          messagesByConversationId: {
            edges: [{ node: { rowId: message, role: 'USER', content: 'Hi', feedbacksByMessageId: { nodes: [{ rating: 'UP' }] } } }],
          },
          messageByLastMessageId: { content: 'Hi' },
        },
      },
    ],
  },
};

describe('bench answer check', () => {
  it('puts both schemas of the nested read in one shape', () => {
    const { normalise } = scenarios.nested;
    expect(normalise!(parleyNested, 'parley')).toEqual(normalise!(postgraphileNested, 'postgraphile'));
    expect(firstDifference(normalise!(parleyNested, 'parley'), normalise!(postgraphileNested, 'postgraphile'))).toBeNull();
  });

  it('names where the answers differ', () => {
    const { normalise } = scenarios.nested;
    const other = structuredClone(postgraphileNested);
    other.allConversations.edges[0]!.node.messagesByConversationId.edges[0]!.node.feedbacksByMessageId.nodes = [];
    expect(firstDifference(normalise!(parleyNested, 'parley'), normalise!(other, 'postgraphile'))).toBe(
      '$.0.messages.0.rating: Parley "UP", peer null',
    );
    expect(firstDifference([1, 2], [1])).toBe('$: Parley has 2 items, peer 1');
  });

  it('compares the widget read with timestamps as instants', () => {
    const { normalise } = scenarios.widget;
    const parley = {
      conversation: {
        id: encodeGlobalID('Conversation', conversation),
        messages: {
          edges: [{ node: { id: encodeGlobalID('Message', message), role: 'USER', content: 'Hi', createdAt: '2026-10-24T02:59:23.983Z' } }],
        },
      },
    };
    const peer = {
      allConversations: {
        nodes: [
          {
            rowId: conversation,
            messagesByConversationId: {
              edges: [{ node: { rowId: message, role: 'USER', content: 'Hi', createdAt: '2026-10-24T02:59:23.983000+00:00' } }],
            },
          },
        ],
      },
    };
    expect(normalise!(parley, 'parley')).toEqual(normalise!(peer, 'postgraphile'));
    expect(normalise!({ conversation: null }, 'parley')).toEqual(normalise!({ allConversations: { nodes: [] } }, 'postgraphile'));
  });

  it('sends the same product, conversation and direction to both servers', () => {
    const request = scenarios.nestedCursor.next(seededRandom(1));
    const parley = JSON.parse(requestBody(request, 'parley'));
    const peer = JSON.parse(requestBody(request, 'postgraphile'));
    expect(parley.variables).toEqual({ cursor: parleyCursor(conversation) });
    expect(peer.variables).toEqual({ productId: product, cursor: 'pg-cursor' });
    expect(parley.query.includes('after:')).toBe(peer.query.includes('after:'));
    expect(request.key).toBe('pk_live_read');
  });

  it('sends Parley the cursor Parley issued for the conversation once the harness has it', () => {
    const withOwn = buildScenarios(dataset, new Map([[conversation, 'pg-cursor']]), new Map([[conversation, 'parley-cursor']]));
    const parley = JSON.parse(requestBody(withOwn.nestedCursor.next(seededRandom(1)), 'parley'));
    expect(parley.variables).toEqual({ cursor: 'parley-cursor' });
  });
});
