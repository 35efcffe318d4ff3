import { z } from 'zod';
import { BadUserInputError } from '../errors.js';

export const MAX_PAGE_SIZE = 100;
export const MAX_BATCH = 100;

export const limits = {
  messageContent: 8_000,
  title: 200,
  knowledgeContent: 50_000,
  knowledgeTitle: 200,
  comment: 2_000,
  sessionId: 200,
  productName: 200,
  tag: 50,
  tags: 20,
  searchQuery: 500,
} as const;

/** Trimmed, non-empty text of at most `max` characters. */
export const text = (max: number) =>
  z.string().trim().min(1, 'must not be empty').max(max, `must be at most ${max} characters`);

/** Parses `value` with `schema`; the first problem becomes BAD_USER_INPUT naming `input.<path>`. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, root = 'input'): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = [root, ...issue.path.map(String)].join('.');
  throw new BadUserInputError(`${field} ${issue.message}`, field);
}
