import { describe, expect, it } from 'vitest';
import { isComplexQuestion, lexicalKey, normalizeQuestion, routeModel } from '../../src/services/answers/question.js';

describe('normalizeQuestion (the answer cache key)', () => {
  it('ignores case, spacing and punctuation', () => {
    const key = normalizeQuestion('How long does shipping take?');
    expect(key).toBe('how long does shipping take');
    for (const q of [
      'how long does shipping take',
      '  HOW long   does shipping take ?!',
      'How long does shipping, take...',
      'How\tlong\ndoes shipping take？',
    ]) {
      expect(normalizeQuestion(q), q).toBe(key);
    }
  });

  it('drops filler and politeness, whole words only', () => {
    const key = normalizeQuestion('how long does shipping take');
    for (const q of [
      'Can you please tell me how long does shipping take?',
      'Hi there! How long does shipping take? Thanks',
      'Hello, could you kindly let me know how long does shipping take? Thank you!',
      'pls how long does shipping take thx',
    ]) {
      expect(normalizeQuestion(q), q).toBe(key);
    }
    // "hi" inside a word, and "can I" (not filler) stay.
    expect(normalizeQuestion('Which shipping options?')).toBe('which shipping options');
    expect(normalizeQuestion('Can I return shoes?')).toBe('can i return shoes');
    expect(normalizeQuestion('Can I return shoes?')).not.toBe(normalizeQuestion('return shoes'));
  });

  it('keeps numbers and letters of every script; apostrophes do not split words', () => {
    expect(normalizeQuestion('Where is order #1234?')).toBe('where is order 1234');
    expect(normalizeQuestion("What's the status?")).toBe(normalizeQuestion('Whats the status'));
    expect(normalizeQuestion('Où est ma commande ?')).toBe('où est ma commande');
    expect(normalizeQuestion('ＦＵＬＬ　ＷＩＤＴＨ')).toBe('full width');
  });

  it('a question made only of filler is still a key of its own', () => {
    expect(normalizeQuestion('Thanks!')).toBe('thanks');
    expect(normalizeQuestion('Hello?')).toBe('hello');
  });
});

describe('routeModel', () => {
  const routing = { fastModel: 'fast', largeModel: 'large', fastMaxChars: 40 };

  it('short simple questions go to the fast model, long ones to the large one', () => {
    expect(routeModel('How long does shipping take?', routing)).toBe('fast');
    expect(routeModel('x'.repeat(40), routing)).toBe('fast');
    expect(routeModel('x'.repeat(41), routing)).toBe('large');
  });

  it('complex questions go to the large model whatever their length', () => {
    expect(isComplexQuestion('Compare standard and express')).toBe(true);
    expect(isComplexQuestion('Why? And how?')).toBe(true);
    expect(isComplexQuestion('Explain refunds')).toBe(true);
    expect(isComplexQuestion('Where is my parcel?')).toBe(false);
    expect(routeModel('Explain refunds', routing)).toBe('large');
  });

  it('a threshold of 0 sends everything to the large model', () => {
    expect(routeModel('Hi', { ...routing, fastMaxChars: 0 })).toBe('large');
  });
});

describe('lexicalKey (a standalone question in the answer cache)', () => {
  const key = (question: string, lexemes: string[]) => lexicalKey(normalizeQuestion(question), lexemes);
  it('ignores word order and the words english analysis drops', () => {
    expect(key('How long does shipping take?', ['long', 'ship', 'take'])).toBe(
      key('Shipping: how long does it take?', ['take', 'ship', 'long', 'ship']),
    );
  });
  it('keeps the words that change the question: question words, negation, relations', () => {
    const lexemes = ['support', 'open'];
    expect(key('When is support open?', lexemes)).not.toBe(key('Where is support open?', lexemes));
    expect(key('Can I return shoes?', ['return', 'shoe'])).not.toBe(key("Can't I return shoes?", ['return', 'shoe']));
    expect(key('Is shipping free?', ['ship', 'free'])).not.toBe(key('Is shipping not free?', ['ship', 'free']));
    expect(key('Do you ship to Canada?', ['ship', 'canada'])).not.toBe(key('Do you ship from Canada?', ['ship', 'canada']));
    expect(key('Pay before delivery?', ['pay', 'deliveri'])).not.toBe(key('Pay after delivery?', ['pay', 'deliveri']));
  });
  it('keeps each relation with the word it governs, and a repeated one in order', () => {
    const lexemes = ['switch', 'standard', 'express', 'deliveri'];
    expect(key('Can I switch from standard to express delivery?', lexemes)).not.toBe(key('Can I switch from express to standard delivery?', lexemes));
    expect(key('Can I switch from standard to express delivery?', lexemes)).toBe(key('To express delivery: can I switch from standard?', lexemes));
    const days = ['order', 'place', 'friday', 'ship', 'monday'];
    expect(key('Does an order placed on Friday ship on Monday?', days)).not.toBe(key('Does an order placed on Monday ship on Friday?', days));
    expect(key('Can I pay with a gift card and PayPal?', ['pay', 'gift', 'card', 'paypal'])).not.toBe(
      key('Can I pay with a gift card or PayPal?', ['pay', 'gift', 'card', 'paypal']),
    );
  });
  it('reads "what\'s" as "what is" and "which" as "what"', () => {
    expect(key("What's your refund policy?", ['refund', 'polici'])).toBe(key('What is your refund policy?', ['refund', 'polici']));
    expect(key('Which days is support open?', ['day', 'support', 'open'])).toBe(key('What days is support open?', ['day', 'support', 'open']));
  });
  it('keys a question with no lexeme by its words', () => {
    expect(key('How are you?', [])).not.toBe(key('How is it?', []));
  });
});
