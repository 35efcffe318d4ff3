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

/** Ends the subscriptions of a product key when it is rotated: one last UNAUTHENTICATED error, then complete. */
export function useKeyRevocation(revocations: KeyRevocations): Plugin<Context> {
  return {
    onSubscribe({ args }) {
      // The hash of the key this request sent, of either kind (a publishable principal's row also holds the secret key's).
      const keyHash = (args.contextValue as Context).key?.hash;
      if (!keyHash) return;
      return {
        onSubscribeResult({ result, setResult }) {
          if (!isAsyncIterable(result)) return;
          setResult(endOnRevoke(result, (onRevoke) => revocations.watch(keyHash, onRevoke)));
        },
      };
    },
  };
}

function endOnRevoke(
  source: AsyncIterable<ExecutionResult>,
  watch: (onRevoke: () => void) => () => void,
): AsyncIterableIterator<ExecutionResult> {
  const iterator = source[Symbol.asyncIterator]();
  let revoke!: () => void;
  const revoked = new Promise<void>((resolve) => (revoke = resolve));
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
      const next = await Promise.race([iterator.next(), revoked.then(() => 'revoked' as const)]);
      if (next === 'revoked') {
        await end();
        return {
          done: false,
          value: { errors: [new GraphQLError('This product key was rotated: subscribe again with the new key.', { extensions: { code: 'UNAUTHENTICATED' } })] },
        };
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
