// Expected errors, one class per code. Services throw these; the GraphQL layer
// turns them into errors with `extensions.code` and masks everything else.

export type ErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'BAD_USER_INPUT'
  | 'CONFLICT'
  | 'RATE_LIMITED'
  | 'OVERLOADED'
  | 'DATABASE_UNAVAILABLE';

export abstract class ParleyError extends Error {
  abstract readonly code: ErrorCode;
  readonly extensions: Record<string, unknown>;
  constructor(message: string, extensions: Record<string, unknown> = {}) {
    super(message);
    this.name = new.target.name;
    this.extensions = extensions;
  }
}

export class UnauthenticatedError extends ParleyError {
  readonly code = 'UNAUTHENTICATED';
}

export class ForbiddenError extends ParleyError {
  readonly code = 'FORBIDDEN';
}

export class NotFoundError extends ParleyError {
  readonly code = 'NOT_FOUND';
  constructor(what: string) {
    super(`${what} not found`);
  }
}

export class BadUserInputError extends ParleyError {
  readonly code = 'BAD_USER_INPUT';
  /** `field` is the input path that was rejected, e.g. `input.content`. */
  constructor(message: string, field?: string) {
    super(message, field ? { field } : {});
  }
}

export class ConflictError extends ParleyError {
  readonly code = 'CONFLICT';
}

/** Too many requests: `retryAfter` (seconds) says when the next one can succeed. */
export class RateLimitedError extends ParleyError {
  readonly code = 'RATE_LIMITED';
  readonly retryAfter: number;
  constructor(message: string, retryAfterMs: number) {
    const retryAfter = Math.max(1, Math.ceil(retryAfterMs / 1000));
    super(message, { retryAfter });
    this.retryAfter = retryAfter;
  }
}

/**
 * This node runs as many operations as it can serve in time and refused this
 * one before it started (nothing was written): retry after `retryAfter` seconds, here or on another node.
 */
export class OverloadedError extends ParleyError {
  readonly code = 'OVERLOADED';
  readonly retryAfter: number;
  constructor(retryAfterS: number) {
    super('This server is busy and did not start your request; nothing was done. Retry after retryAfter seconds.', { retryAfter: retryAfterS });
    this.retryAfter = retryAfterS;
  }
}

/** The database could not be used in time (pool exhausted, server unreachable): retry later. */
export class DatabaseUnavailableError extends ParleyError {
  readonly code = 'DATABASE_UNAVAILABLE';
  constructor(message = 'The database is unavailable right now; try again shortly.', extensions: Record<string, unknown> = {}) {
    super(message, extensions);
  }
}

/** The code a GraphQL error goes out with: set in its extensions, or its original ParleyError's; else masked. */
export function graphqlErrorCode(error: { extensions?: Record<string, unknown> | undefined; originalError?: unknown }): string {
  const code = error.extensions?.code ?? (error.originalError as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'INTERNAL_SERVER_ERROR';
}

/** The HTTP status a request answered only with this error gets (others are 200, as GraphQL over HTTP says). */
export const HTTP_STATUS: Partial<Record<string, number>> = { UNAUTHENTICATED: 401, FORBIDDEN: 403, RATE_LIMITED: 429, OVERLOADED: 503 };
