import type { RedisClient } from '../infra/redis.js';
import { NotFoundError } from '../errors.js';
import type { PrismaClient } from '../infra/db.js';
import type { Logger } from '../infra/log.js';
import type { WireEvent } from '../infra/pubsub/index.js';
import type { MessageRole } from '../generated/prisma/client.js';
import type { LiveEvents } from './types.js';

/**
 * Typing indicators: ephemeral, never stored in the database. A state lives
 * for `ttlMs` unless refreshed; only changes are broadcast (a refresh is not),
 * and an expiry is broadcast as `isTyping: false` exactly once.
 *
 * Several nodes: the state is one Redis key per conversation and role holding
 * its deadline in Redis' own clock. Every node that set or refreshed it keeps a
 * local timer; when one fires, an atomic script either reports the time left
 * (a refresh moved the deadline: wait again), or deletes the key and tells
 * that one caller to broadcast the false. The delete decides, so exactly one
 * node broadcasts, and any node that touched the state can (one node stopping
 * does not leave a conversation "typing" for ever while another node lives).
 * The Redis store publishes the change in the same script that makes it (one
 * round trip), when it is given the event.
 */

export interface TypingStore {
  /** Typing until now + ttlMs; true when it was not (a change to broadcast: `announce`, if given and the store publishes). */
  start(key: string, ttlMs: number, announce?: WireEvent): Promise<boolean>;
  /** Not typing any more; true when it was. */
  stop(key: string, announce?: WireEvent): Promise<boolean>;
  /** 'expired' (to this caller only) once past the deadline, else the ms left, or 'gone' when not typing. */
  expire(key: string, announce?: WireEvent): Promise<'expired' | 'gone' | number>;
  /** Whether the store publishes the `announce` events it is given (else the caller publishes). @default false */
  readonly publishes?: boolean;
}

export function memoryTypingStore(): TypingStore {
  // A key stays until its expiry is broadcast: subscribers think "typing" until then.
  const deadlines = new Map<string, number>();
  return {
    publishes: false,
    start: async (key, ttlMs) => {
      const existed = deadlines.has(key);
      deadlines.set(key, Date.now() + ttlMs);
      return !existed;
    },
    stop: async (key) => deadlines.delete(key),
    expire: async (key) => {
      const deadline = deadlines.get(key);
      if (deadline === undefined) return 'gone';
      const left = deadline - Date.now();
      if (left > 0) return left;
      deadlines.delete(key);
      return 'expired';
    },
  };
}

// Deadlines in Redis' clock (TIME), so nodes' clocks never have to agree.
const NOW = `local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`;
// ARGV[n] / ARGV[n+1]: the channel and payload to PUBLISH when the state changes ('' = publish nothing).
const ANNOUNCE = (n: number) => `if ARGV[${n}] ~= '' then redis.call('PUBLISH', ARGV[${n}], ARGV[${n + 1}]) end`;
const START = `${NOW}
local existed = redis.call('EXISTS', KEYS[1])
redis.call('SET', KEYS[1], now + tonumber(ARGV[1]), 'PX', tonumber(ARGV[1]) + tonumber(ARGV[2]))
if existed == 0 then ${ANNOUNCE(3)} end
return 1 - existed`;
const STOP = `local existed = redis.call('DEL', KEYS[1])
if existed == 1 then ${ANNOUNCE(1)} end
return existed`;
const EXPIRE = `local deadline = redis.call('GET', KEYS[1])
if not deadline then return -1 end
${NOW}
local left = tonumber(deadline) - now
if left > 0 then return left end
redis.call('DEL', KEYS[1])
${ANNOUNCE(1)}
return 0`;

/** `graceMs`: how long a key outlives its deadline if every node that could expire it is gone. */
export function redisTypingStore(redis: RedisClient, prefix: string, graceMs = 60_000): TypingStore {
  const name = (key: string) => `${prefix}typing:${key}`;
  const wire = (event: WireEvent | undefined) => [event?.channel ?? '', event?.payload ?? ''];
  return {
    publishes: true,
    start: async (key, ttlMs, announce) => {
      const started = (await redis.eval(START, 1, name(key), ttlMs, graceMs, ...wire(announce))) === 1;
      if (started) announce?.sent();
      return started;
    },
    stop: async (key, announce) => {
      const stopped = (await redis.eval(STOP, 1, name(key), ...wire(announce))) === 1;
      if (stopped) announce?.sent();
      return stopped;
    },
    expire: async (key, announce) => {
      const result = Number(await redis.eval(EXPIRE, 1, name(key), ...wire(announce)));
      if (result === 0) announce?.sent();
      return result < 0 ? 'gone' : result === 0 ? 'expired' : result;
    },
  };
}

export interface Typing {
  /** Records a typing state; resolves false when it could not be recorded (Redis unreachable). */
  set(conversationId: string, role: MessageRole, isTyping: boolean): Promise<boolean>;
  /** ASSISTANT is typing (refreshed) while `produce` runs, and stops when it settles. */
  withAssistantTyping<T>(conversationId: string, produce: () => Promise<T>): Promise<T>;
  /** ASSISTANT is typing, refreshed until `stop()` (for work that ends after another step, e.g. storing the reply). */
  assistantTyping(conversationId: string): Promise<{ stop(): Promise<void> }>;
  /** Expiry timers pending or running on this node (0: every false this node owes is published). */
  stats(): { timers: number };
  dispose(): void;
}

export interface TypingOptions {
  events: LiveEvents;
  store: TypingStore;
  ttlMs: number;
  log: Logger;
}

export function createTyping({ events, store, ttlMs, log }: TypingOptions): Typing {
  const timers = new Map<string, NodeJS.Timeout>();
  // Store failures (Redis down) are retried this often until the state is settled.
  const retryMs = Math.min(ttlMs, 1_000);
  let disposed = false;

  let checking = 0;
  // The event for the store to publish with the change, when it can (Redis); else undefined and published here.
  const wire = (conversationId: string, role: MessageRole, isTyping: boolean) =>
    store.publishes ? events.wire.typingChanged(conversationId, role, isTyping) : undefined;

  const schedule = (key: string, conversationId: string, role: MessageRole, ms: number) => {
    if (disposed) return;
    clearTimeout(timers.get(key));
    const timer = setTimeout(() => void check(key, conversationId, role), Math.max(1, ms));
    timer.unref();
    timers.set(key, timer);
  };

  const check = async (key: string, conversationId: string, role: MessageRole) => {
    // Forgotten first, so a refresh arriving meanwhile schedules its own timer.
    timers.delete(key);
    checking += 1;
    try {
      const announce = wire(conversationId, role, false);
      const outcome = await store.expire(key, announce);
      if (typeof outcome === 'number') schedule(key, conversationId, role, outcome);
      else if (outcome === 'expired' && !announce) await events.typingChanged(conversationId, role, false);
    } catch (error) {
      log.warn('typing: expiry check failed, retrying', { error: (error as Error).message });
      schedule(key, conversationId, role, retryMs);
    } finally {
      checking -= 1;
    }
  };

  const set = async (conversationId: string, role: MessageRole, isTyping: boolean): Promise<boolean> => {
    const key = `${conversationId}:${role}`;
    try {
      const announce = wire(conversationId, role, isTyping);
      if (isTyping) {
        const started = await store.start(key, ttlMs, announce);
        // An existing timer re-reads the deadline when it fires; one per state and node is enough.
        if (!timers.has(key)) schedule(key, conversationId, role, ttlMs);
        if (started && !announce) await events.typingChanged(conversationId, role, true);
      } else {
        clearTimeout(timers.get(key));
        timers.delete(key);
        if ((await store.stop(key, announce)) && !announce) await events.typingChanged(conversationId, role, false);
      }
      return true;
    } catch (error) {
      log.warn('typing: state not recorded', { error: (error as Error).message });
      return false;
    }
  };

  const assistantTyping = async (conversationId: string) => {
    await set(conversationId, 'ASSISTANT', true);
    const refresh = setInterval(() => void set(conversationId, 'ASSISTANT', true), Math.max(50, Math.floor(ttlMs / 2)));
    refresh.unref();
    let stopped: Promise<void> | undefined;
    return {
      stop: () =>
        (stopped ??= (async () => {
          clearInterval(refresh);
          await set(conversationId, 'ASSISTANT', false);
        })()),
    };
  };

  return {
    set,
    withAssistantTyping: async (conversationId, produce) => {
      const typing = await assistantTyping(conversationId);
      try {
        return await produce();
      } finally {
        await typing.stop();
      }
    },
    assistantTyping,
    stats: () => ({ timers: timers.size + checking }),
    dispose: () => {
      disposed = true;
      for (const timer of timers.values()) clearTimeout(timer);
      timers.clear();
    },
  };
}

/** setTyping of the calling product's widget: its user (role USER) in one of its conversations. */
export async function setUserTyping(
  prisma: PrismaClient,
  typing: Typing,
  productId: string,
  conversationId: string,
  isTyping: boolean,
): Promise<boolean> {
  const conversation = await prisma.conversation.findFirst({ where: { id: conversationId, productId }, select: { id: true } });
  if (!conversation) throw new NotFoundError('Conversation');
  return typing.set(conversationId, 'USER', isTyping);
}
