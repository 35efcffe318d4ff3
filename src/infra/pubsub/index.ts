import { MemoryPubSub } from './memory.js';
import { RedisEventPubSub } from './redis.js';
import type { EventMap, PubSub, PubSubOptions } from './types.js';

// The interfaces live in types.ts, which the implementations import: imports run one way.
export * from './types.js';

/**
 * Typed publish/subscribe for live events. A channel is a topic plus an id
 * (`conversation` + its id): subscribers listen to exactly the channel they
 * need, never to a broad topic filtered in code. In-process by default; with a
 * Redis URL, Redis pub/sub over a publisher and a subscriber connection
 * (channels.ts: one SUBSCRIBE per channel, awaited), so an event published on one node reaches every node.
 *
 * Delivery is at most once: an event published while Redis is unreachable is
 * lost. A stream says where that may have happened (GAP), and the subscriber
 * reads what was stored meanwhile from where it was stored.
 */

export async function createPubSub<E extends EventMap>(options: PubSubOptions): Promise<PubSub<E>> {
  const prefix = options.prefix ?? 'parley:';
  const maxBuffered = options.maxBuffered ?? 10_000;
  if (!options.redisUrl) return new MemoryPubSub<E>(prefix, maxBuffered);
  const pubsub = new RedisEventPubSub<E>({ url: options.redisUrl, ca: options.redisCa }, prefix, maxBuffered, options.log);
  await pubsub.connect();
  return pubsub;
}
