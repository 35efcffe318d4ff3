import { z } from 'zod';
import { BadUserInputError } from '../errors.js';

export const MAX_PAGE_SIZE = 100;
/** A connection's page size when neither `first` nor `last` is given. */
export const DEFAULT_PAGE_SIZE = 20;
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

/** Length in characters (code points), so an emoji counts once, as it does for PostgreSQL. */
export function characters(value: string): number {
  let n = 0;
  for (let i = 0; i < value.length; i++) {
    const code = value.charCodeAt(i);
    // A high surrogate followed by a low one is one character.
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < value.length) {
      const next = value.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    n++;
  }
  return n;
}

/** PostgreSQL text cannot hold U+0000: refused as input instead of failing as an internal error. */
export const noNul = (value: string) => !value.includes('\u0000');
export const NO_NUL_MESSAGE = 'must not contain NUL (U+0000) characters';

/** Text of at most `max` characters (code points) that PostgreSQL can store. */
export const plainText = (max: number) =>
  z
    .string()
    .refine((v) => v.length <= max || characters(v) <= max, `must be at most ${max} characters`)
    .refine(noNul, NO_NUL_MESSAGE);

/** Trimmed, non-empty text of at most `max` characters (code points). */
export const text = (max: number) =>
  z
    .string()
    .trim()
    .min(1, 'must not be empty')
    .refine((v) => v.length <= max || characters(v) <= max, `must be at most ${max} characters`)
    .refine(noNul, NO_NUL_MESSAGE);

/** Optional text: blank means none (null), as a widget sends "" for an empty comment box. */
export const optionalText = (max: number) => z.preprocess((v) => (typeof v === 'string' && v.trim() === '' ? null : v), text(max).nullish());

/** Parses `value` with `schema`; the first problem becomes BAD_USER_INPUT naming `input.<path>`. */
export function parseInput<S extends z.ZodType>(schema: S, value: unknown, root = 'input'): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const field = [root, ...issue.path.map(String)].join('.');
  throw new BadUserInputError(`${field} ${issue.message}`, field);
}
