import { builder } from '../builder.js';
import { FULL_ACCESS } from '../services/auth.js';
import type { AnswerModelStats as ModelStats, AnswerStats as Stats } from '../services/answers/stats.js';

// Answer statistics of a product (`viewer.stats.answers`), kept in the database: every node, across restarts.

const AnswerModelStats = builder.objectRef<ModelStats>('AnswerModelStats').implement({
  authScopes: FULL_ACCESS,
  description: 'Replies of one engine and model, and the trouble its provider gave.',
  fields: (t) => ({
    engine: t.exposeString('engine', { description: '`local` or `openai`.' }),
    model: t.exposeString('model'),
    count: t.exposeInt('count'),
    cached: t.exposeInt('cached', { description: 'Replies reused from the answer cache.' }),
    meanLatencyMs: t.exposeFloat('meanLatencyMs', { nullable: true, description: 'Mean time to generate a reply (cache misses).' }),
    meanCachedLatencyMs: t.exposeFloat('meanCachedLatencyMs', { nullable: true, description: 'Mean time to answer from the cache.' }),
    providerErrors: t.exposeInt('providerErrors', { description: 'Failed calls to the provider (timeouts, network, HTTP 429/5xx, refusals).' }),
    providerRetries: t.exposeInt('providerRetries', { description: 'Calls made again after a failure.' }),
    fallbacks: t.exposeInt('fallbacks', {
      description: 'Replies the local engine wrote instead, because this provider model failed or its circuit was open.',
    }),
  }),
});

export const AnswerStats = builder.objectRef<Stats>('AnswerStats').implement({
  authScopes: FULL_ACCESS,
  description: 'Assistant replies of the product since it exists.',
  fields: (t) => ({
    count: t.exposeInt('count'),
    cached: t.exposeInt('cached', { description: 'Replies reused from the answer cache.' }),
    cacheHitRate: t.exposeFloat('cacheHitRate', { description: 'cached / count (0 without replies).' }),
    meanLatencyMs: t.exposeFloat('meanLatencyMs', { nullable: true, description: 'Mean time to generate a reply (cache misses).' }),
    meanCachedLatencyMs: t.exposeFloat('meanCachedLatencyMs', { nullable: true, description: 'Mean time to answer from the cache.' }),
    providerErrors: t.exposeInt('providerErrors'),
    providerRetries: t.exposeInt('providerRetries'),
    fallbacks: t.exposeInt('fallbacks'),
    byModel: t.field({ type: [AnswerModelStats], description: 'Per engine and model.', resolve: (s) => s.byModel }),
  }),
});
