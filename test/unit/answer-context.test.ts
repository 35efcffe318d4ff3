import { describe, expect, it } from 'vitest';
import { followUpRetrieval, isFollowUp, type Turn } from '../../src/services/answers/context.js';

describe('isFollowUp', () => {
  it('takes questions that continue, point back or name no topic for follow-ups', () => {
    for (const question of [
      'and how long does it take?',
      'And to Mexico?',
      'What about Canada?',
      'how about express?',
      'Can I return it?',
      'Is that free?',
      'How much are they?',
      'why?',
      'How long?',
      'Thanks, and when?',
    ])
      expect(isFollowUp(question), question).toBe(true);
  });

  it('takes questions that name their own topic for standalone ones', () => {
    for (const question of [
      'Do you ship to Canada?',
      'How long does shipping take?',
      'Is there a warranty on shoes?',
      'When is your support team open?',
      'Can I return shoes and get a refund?',
      'Bench question 12: where is my parcel?',
    ])
      expect(isFollowUp(question), question).toBe(false);
  });
});

describe('followUpRetrieval', () => {
  const turns: Turn[] = [
    { id: '1', role: 'USER', content: 'Do you ship to Canada?' },
    { id: '2', role: 'ASSISTANT', content: 'Yes, we ship to Canada and Mexico.' },
  ];
  it("searches a follow-up with the user's previous question, or alone when there is none", () => {
    expect(followUpRetrieval('and how long does it take?', turns)).toBe('Do you ship to Canada?\nand how long does it take?');
    expect(followUpRetrieval('and how long?', [])).toBe('and how long?');
  });
});
