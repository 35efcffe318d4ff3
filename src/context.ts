import type { Config } from './config.js';
import type { Cache } from './infra/cache/index.js';
import type { Database, PrismaClient } from './infra/db.js';
import type { Logger } from './infra/log.js';
import type { Metrics } from './infra/metrics.js';
import { createLoaders, type Loaders } from './loaders/index.js';
import type { Answers } from './services/answers/index.js';
import type { Principal, ScopeContext } from './services/auth.js';
import type { Replays } from './services/event-replay.js';
import type { LiveEvents, ParleyPubSub } from './services/types.js';
import type { KnowledgeSearch } from './services/knowledge.js';
import type { Typing } from './services/typing.js';

/** Long-lived dependencies shared by every request of one app. */
export interface AppDeps {
  config: Config;
  db: Database;
  log: Logger;
  adminToken: string;
  cache: Cache;
  pubsub: ParleyPubSub;
  /** Publishes live events; services call it after their write commits. */
  events: LiveEvents;
  /** Subscriptions catching up after a pub/sub outage: their database reads bounded, their events shared. */
  replays: Replays;
  typing: Typing;
  /** Prometheus metrics; undefined when PARLEY_METRICS=false. The answers engine reports through `metrics?.answer()`. */
  metrics: Metrics | undefined;
  /** Knowledge ranking, batched across requests, one statement per product (searchKnowledge and answers). */
  knowledgeSearch: KnowledgeSearch;
  /** Assistant replies: answer cache, engine, streaming. */
  answers: Answers;
}

export interface Context extends ScopeContext {
  deps: AppDeps;
  prisma: PrismaClient;
  loaders: Loaders;
  /** The tags (and shortest TTL) of every cache policy this execution read: what a response cached whole depends on. */
  responseReads: { tags: string[]; ttlMs: number };
  startedConversations: Set<string>;
}

/** Fresh loaders per request (and, for subscriptions, per event). */
export function createContext(deps: AppDeps, principal: Principal): Context {
  const responseReads: Context['responseReads'] = { tags: [], ttlMs: Infinity };
  let loaders: Loaders | undefined;
  const cache = deps.cache.withTagRecorder((tags, ttlMs) => {
    for (const tag of tags) if (!responseReads.tags.includes(tag)) responseReads.tags.push(tag);
    if (ttlMs < responseReads.ttlMs) responseReads.ttlMs = ttlMs;
  });
  return {
    ...principal,
    deps,
    prisma: deps.db.prisma,
    cache,
    events: deps.events,
    // Made when first used: a planned read or a cached response never uses them (~1 % of a planned read's CPU).
    get loaders() {
      return (loaders ??= createLoaders(deps.db.prisma, cache));
    },
    responseReads,
    startedConversations: new Set(),
  };
}

const eventLoaders = new WeakMap<object, Loaders>();

/**
 * The context one subscription event is resolved with: the subscriber's own,
 * with loaders (and per-context caches) that live as long as the event, so a
 * long-lived subscription never serves a row read for an earlier event. This
 * node's subscribers of one event share its loaders — a channel's subscribers
 * are all of one product — so a fan-out to N clients reads each row once.
 */
export function eventContext<C extends Context>(subscription: C, event: unknown): C {
  const key = typeof event === 'object' && event !== null ? event : undefined;
  let loaders = key && eventLoaders.get(key);
  if (!loaders) {
    loaders = createContext(subscription.deps, subscription).loaders;
    if (key) eventLoaders.set(key, loaders);
  }
  return { ...subscription, loaders };
}
