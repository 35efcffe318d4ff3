import { GraphQLError, type ExecutionResult } from 'graphql';
import type { Plugin } from 'graphql-yoga';
import type { Context } from '../context.js';

/**
 * What was opened with a product key that has since been rotated, on any node:
 * the rotation bumps the cache tag of the old key's lookup, which every node
 * hears (the cache's invalidation channel); `revokeTags` is fed those bumps.
 * Sockets close with 4403 (ws.ts), subscription streams over SSE end with an
 * UNAUTHENTICATED error — "the old key stops working at once" holds for what
 * was already open, not only for new requests.
 */
export class KeyRevocations {
  private readonly watchers = new Map<string, Set<() => void>>();

  /** Calls `onRevoke` once if the key with this hash is rotated; returns the unwatch function. */
  watch(keyHash: string, onRevoke: () => void): () => void {
    let set = this.watchers.get(keyHash);
    if (!set) this.watchers.set(keyHash, (set = new Set()));
    set.add(onRevoke);
    return () => {
      set.delete(onRevoke);
      if (!set.size && this.watchers.get(keyHash) === set) this.watchers.delete(keyHash);
    };
  }

  /** Cache tags bumped here or announced by another node; `productKey:<hash>` ones revoke that key. */
  revokeTags(tags: readonly string[]): void {
    for (const tag of tags) {
      if (!tag.startsWith(KEY_TAG)) continue;
      const hash = tag.slice(KEY_TAG.length);
      const set = this.watchers.get(hash);
      if (!set) continue;
      this.watchers.delete(hash);
      for (const onRevoke of set) onRevoke();
    }
  }

  /** Keys being watched (for tests: nothing is left behind once sockets and streams end). */
  get size(): number {
    return this.watchers.size;
  }
}

const KEY_TAG = 'productKey:';

const ROTATED = 'This product key was rotated: subscribe again with the new key.';
const EXPIRED = 'This conversation token expired: start a new conversation.';

/**
 * Ends the subscriptions of a product key when it is rotated, and those a conversation token
 * opened when it expires: one last UNAUTHENTICATED error, then complete.
 */
export function useKeyRevocation(revocations: KeyRevocations): Plugin<Context> {
  return {
    onSubscribe({ args }) {
      // The hash of the key this request sent, of either kind (a publishable principal's row also holds the secret key's).
      const { key, tokenExpiresAt } = args.contextValue as Context;
      if (!key) return;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable(result)) return;
          setResult(
            endOnRevoke(result, (onRevoke) => {
              const unwatch = revocations.watch(key.hash, () => onRevoke(ROTATED));
              const cancel = tokenExpiresAt === undefined ? undefined : at(tokenExpiresAt, () => onRevoke(EXPIRED));
              return () => {
                unwatch();
                cancel?.();
              };
            }),
          );
        },
      };
    },
  };
}

/** Longest delay setTimeout keeps (about 24.8 days); a longer one fires at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Calls `run` at `time` (ms since the epoch), however far; returns the cancel function. */
function at(time: number, run: () => void): () => void {
  let timer: NodeJS.Timeout;
  const schedule = () => {
    const left = time - Date.now();
    timer = left > MAX_TIMER_MS ? setTimeout(schedule, MAX_TIMER_MS) : setTimeout(run, Math.max(0, left));
    timer.unref();
  };
  schedule();
  return () => clearTimeout(timer);
}

function endOnRevoke(
  source: AsyncIterable<ExecutionResult>,
  watch: (onRevoke: (message: string) => void) => () => void,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = source[Symbol.asyncIterator]();
  let revoke!: (message: string) => void;
  const revoked = new Promise<string>((resolve) => (revoke = resolve));
  const unwatch = watch(revoke);
  let ended = false;
  const end = async () => {
    ended = true;
    unwatch();
    await iterator.return?.();
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (ended) return { done: true, value: undefined };
      const next = await Promise.race([iterator.next(), revoked.then((message) => ({ revoked: message }))]);
      if ('revoked' in next) {
        await end();
        return { done: false, value: { errors: [new GraphQLError(next.revoked, { extensions: { code: 'UNAUTHENTICATED' } })] } };
      }
      if (next.done) {
        ended = true;
        unwatch();
      }
      return next;
    },
    async return() {
      await end();
      return { done: true, value: undefined };
    },
    async throw(error?: unknown) {
      await end();
      throw error;
    },
  };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<ExecutionResult> {
  return typeof value === 'object' && value !== null && Symbol.asyncIterator in value;
}
