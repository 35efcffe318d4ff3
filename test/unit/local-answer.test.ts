import { describe, expect, it } from 'vitest';
import { composeLocalAnswer, isRelevant, NO_ANSWER } from '../../src/services/answers/local-engine.js';
import type { RankedHit } from '../../src/services/knowledge.js';

const hit = (title: string, content: string, score: number, matched: number, asked: number): RankedHit => ({
  entry: { id: `id-${title}`, productId: 'p', title, content, tags: [], createdAt: new Date(0), updatedAt: new Date(0) },
  score,
  matched,
  asked,
});

describe('composeLocalAnswer', () => {
  it('says it does not know when nothing matches', () => {
    expect(composeLocalAnswer('Do you sell gift cards?', [])).toEqual({ content: NO_ANSWER, sourceIds: [] });
  });

  it('an entry holding less than half of the question’s terms is not an answer', () => {
    const weak = hit('Weather', 'It is sunny today.', 0.1, 1, 3);
    expect(isRelevant(weak)).toBe(false);
    expect(composeLocalAnswer('Is it sunny in Paris tomorrow?', [weak]).sourceIds).toEqual([]);
    expect(isRelevant(hit('Half', 'x', 0.1, 1, 2))).toBe(true);
  });

  it('quotes a short entry whole, and adds a close second entry under its title', () => {
    const shipping = hit('Shipping', 'Orders ship in 2 days.', 0.6, 2, 2);
    const returns = hit('Returns', 'Returns are free.', 0.4, 1, 2);
    const far = hit('Far', 'Barely related.', 0.1, 1, 2);
    expect(composeLocalAnswer('shipping returns', [shipping, returns, far])).toEqual({
      content: 'Orders ship in 2 days.\n\nReturns: Returns are free.',
      sourceIds: ['id-Shipping', 'id-Returns'],
    });
    expect(composeLocalAnswer('shipping', [shipping, far]).sourceIds).toEqual(['id-Shipping']);
  });

  it('from a long entry, quotes the sentences that share most with the question, in their order, bounded', () => {
    const filler = Array.from({ length: 20 }, (_, i) => `Unrelated sentence number ${i} about nothing in particular.`).join(' ');
    const content = `Welcome to the manual. ${filler} Refunds are paid within 5 days. ${filler} A refund needs the receipt.`;
    const answer = composeLocalAnswer('How are refunds paid?', [hit('Manual', content, 0.5, 2, 2)]);
    expect(answer.content).toBe('Refunds are paid within 5 days. A refund needs the receipt.');
    expect(composeLocalAnswer('How are refunds paid?', [hit('Manual', content, 0.5, 2, 2)])).toEqual(answer);
    const huge = composeLocalAnswer('nothing', [hit('Manual', `${'word '.repeat(300)}.`, 0.5, 1, 1)]);
    expect(huge.content.length).toBeLessThanOrEqual(601);
  });
});
