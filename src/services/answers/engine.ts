import type { RankedHit } from '../knowledge.js';
import type { Turn } from './context.js';
import { composeLocalAnswer, LOCAL_MODEL } from './local-engine.js';

/** What every answer engine is given: the question, whose it is, and the product's best passages for it. */
export interface AnswerInput {
  question: string;
  /** What the passages were searched with: the question, and for a follow-up the previous question too. @default question */
  retrieval?: string;
  /** The conversation's turns before the question, oldest first (read for engines that use them, and for follow-ups). */
  turns?: readonly Turn[];
  product: { id: string; name: string };
  passages: readonly RankedHit[];
  /** Pieces of the answer as they are produced (provider streaming); engines that answer at once never call it. */
  onDelta?: ((text: string) => void) | undefined;
  signal?: AbortSignal | undefined;
}

/** Provider calls of one answer that went wrong (counted per product in ProviderStat). */
export interface ProviderTrouble {
  engine: string;
  /** The provider model that was asked. */
  model: string;
  errors: number;
  retries: number;
  /** Why the local engine answered instead (`timeout`, `rate_limited`, `circuit_open`, ...), if it did. */
  fallback: string | null;
}

export interface EngineAnswer {
  content: string;
  sourceIds: string[];
  engine: 'local' | 'openai';
  model: string;
  /** Written by the local engine because the provider failed: never cached, so the provider answers next time. */
  fallback: boolean;
  provider: ProviderTrouble | null;
}

export interface AnswerEngine {
  readonly name: 'local' | 'openai';
  /**
   * Part of the answer cache key: switching engine or models never serves the
   * other configuration's answers.
   */
  readonly cacheId: string;
  /** Its answers depend on the conversation's earlier turns (a model's prompt carries them). */
  readonly usesTurns: boolean;
  answer(input: AnswerInput): Promise<EngineAnswer>;
}

export function localEngine(): AnswerEngine {
  return {
    name: 'local',
    cacheId: 'local:1',
    usesTurns: false,
    // A follow-up's passages were found with the previous question too; its excerpts are picked with both.
    answer: async ({ question, retrieval, passages }) => ({
      ...composeLocalAnswer(retrieval ?? question, passages),
      engine: 'local',
      model: LOCAL_MODEL,
      fallback: false,
      provider: null,
    }),
  };
}
