import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { createPubSub, GAP } from '../../src/infra/pubsub/index.js';
import type { Logger } from '../../src/infra/log.js';
import { createLiveEvents, type ConversationEvent, type ParleyEvents, type ParleyPubSub } from '../../src/services/events.js';
import { createTyping, memoryTypingStore, type Typing, type TypingStore } from '../../src/services/typing.js';

// The typing state machine on the in-process store, on a fake clock: what is
// broadcast, and when, is decided here without waiting for real time.

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {}, always() {} };
const TTL = 5_000;

let pubsub: ParleyPubSub;
let seen: ConversationEvent[];
let typing: Typing;

async function start(store: TypingStore = memoryTypingStore()) {
  pubsub = await createPubSub<ParleyEvents>({ log: silent });
  const stream = pubsub.subscribe('conversation', 'c1');
  seen = [];
  void (async () => {
    for await (const event of stream) if (event !== GAP) seen.push(event);
  })();
  typing = createTyping({ events: createLiveEvents(pubsub, silent), store, ttlMs: TTL, log: silent });
}

const at = (ms: number) => vi.advanceTimersByTimeAsync(ms);
const states = () => seen.map((e) => (e.type === 'typingChanged' ? `${e.role}:${e.isTyping}` : e.type));

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(async () => {
  typing.dispose();
  await pubsub.dispose();
  vi.useRealTimers();
});

describe('typing indicators', () => {
  it('broadcasts true once however often it is refreshed within the TTL, then false once the refreshes stop', async () => {
    await start();
    expect(await typing.set('c1', 'USER', true)).toBe(true);
    await at(4_000);
    await typing.set('c1', 'USER', true);
    await at(4_000);
    await typing.set('c1', 'USER', true); // t = 8 s: 16 s after the first ping would long have expired it
    await at(4_999);
    expect(states()).toEqual(['USER:true']);
    await at(2);
    expect(states()).toEqual(['USER:true', 'USER:false']);
    expect(typing.stats().timers).toBe(0);
    await at(60_000);
    expect(states()).toEqual(['USER:true', 'USER:false']);
  });

  it('an explicit false is broadcast at once and ends the expiry; false when not typing is no change', async () => {
    await start();
    await typing.set('c1', 'USER', true);
    await typing.set('c1', 'USER', false);
    await typing.set('c1', 'USER', false);
    expect(states()).toEqual(['USER:true', 'USER:false']);
    expect(typing.stats().timers).toBe(0);
    await at(TTL * 2);
    expect(states()).toEqual(['USER:true', 'USER:false']);
  });

  it('typing again after an expiry is a change again', async () => {
    await start();
    await typing.set('c1', 'USER', true);
    await at(TTL + 1);
    await typing.set('c1', 'USER', true);
    expect(states()).toEqual(['USER:true', 'USER:false', 'USER:true']);
  });

  it('keeps USER and ASSISTANT apart', async () => {
    await start();
    await typing.set('c1', 'USER', true);
    await typing.set('c1', 'ASSISTANT', true);
    await typing.set('c1', 'USER', false);
    expect(states()).toEqual(['USER:true', 'ASSISTANT:true', 'USER:false']);
  });

  it('withAssistantTyping keeps ASSISTANT typing through a reply longer than the TTL and stops when it settles', async () => {
    await start();
    const reply = typing.withAssistantTyping('c1', () => new Promise<string>((resolve) => setTimeout(() => resolve('done'), 3 * TTL)));
    await at(3 * TTL - 1);
    expect(states()).toEqual(['ASSISTANT:true']);
    await at(1);
    expect(await reply).toBe('done');
    expect(states()).toEqual(['ASSISTANT:true', 'ASSISTANT:false']);
    await at(TTL * 2);
    expect(states()).toEqual(['ASSISTANT:true', 'ASSISTANT:false']);
  });

  it('withAssistantTyping stops typing when the work fails, and passes the failure on', async () => {
    await start();
    const failing = typing.withAssistantTyping('c1', async () => {
      throw new Error('engine down');
    });
    await expect(failing).rejects.toThrow('engine down');
    expect(states()).toEqual(['ASSISTANT:true', 'ASSISTANT:false']);
  });

  it('a store that fails (Redis unreachable) gives false, not an error, and broadcasts nothing', async () => {
    const broken: TypingStore = {
      start: () => Promise.reject(new Error('connection refused')),
      stop: () => Promise.reject(new Error('connection refused')),
      expire: () => Promise.reject(new Error('connection refused')),
    };
    await start(broken);
    expect(await typing.set('c1', 'USER', true)).toBe(false);
    expect(await typing.set('c1', 'USER', false)).toBe(false);
    expect(states()).toEqual([]);
  });
});
