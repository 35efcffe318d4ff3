import { AsyncLocalStorage } from 'node:async_hooks';
import { pino, type DestinationStream, type Logger as Pino } from 'pino';

/**
 * Structured JSON logs through pino, one object per line: `time` (ISO),
 * `level` (its name), `msg`, the fields, and the `requestId` of the request
 * being served (see withRequestId). Debug and info go to stdout, warn and
 * error to stderr, unless a destination is given (tests).
 *
 * Secrets never reach a line: fields named like credentials are replaced
 * whole, and anything shaped like a product key or an admin token is masked
 * wherever it appears, in the message, in nested fields or in an error's
 * message and stack (a driver error can quote a statement's parameters).
 */

type Level = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  /** Written whatever the level (as info, to stdout): the line an operator always needs, e.g. that the node is ready. */
  always(msg: string, fields?: Record<string, unknown>): void;
}

export interface LoggerOptions {
  /** Where lines go. @default stdout (debug, info) and stderr (warn, error) */
  destination?: DestinationStream;
  /** Exact values to mask besides the key and token shapes (e.g. a configured admin token). @default none */
  secrets?: readonly string[];
}

const requestIds = new AsyncLocalStorage<string>();

/** Runs `fn` with every line it logs (however deep the async calls) carrying `requestId`. */
export function withRequestId<T>(requestId: string, fn: () => T): T {
  return requestIds.run(requestId, fn);
}

export function currentRequestId(): string | undefined {
  return requestIds.getStore();
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export function createLogger(level: LogLevel, options: LoggerOptions = {}): Logger {
  const destination =
    options.destination ??
    pino.multistream(
      [
        { level: 'debug', stream: pino.destination({ dest: 1, sync: true }) },
        { level: 'warn', stream: pino.destination({ dest: 2, sync: true }) },
      ],
      { dedupe: true },
    );
  const logger: Pino = pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      base: { pid: process.pid },
      mixin: () => {
        const requestId = requestIds.getStore();
        return requestId ? { requestId } : {};
      },
    },
    destination,
  );
  const mask = masker(options.secrets ?? []);
  const line = (msg: string, fields?: Record<string, unknown>) => ({ msg: mask(msg), ...(fields ? (clean(fields, mask, 0) as object) : {}) });
  const write = (lvl: Level) => (msg: string, fields?: Record<string, unknown>) => {
    if (!logger.isLevelEnabled(lvl)) return;
    // `msg` first, as the lines always had it (people and tests grep `"msg":"…".*"field"`).
    logger[lvl](line(msg, fields));
  };
  // A child at info whatever the configured level: with PARLEY_LOG_LEVEL=warn start-up printed nothing at all.
  const always = logger.child({}, { level: logger.levelVal > pino.levels.values.info! ? 'info' : logger.level });
  return {
    debug: write('debug'),
    info: write('info'),
    warn: write('warn'),
    error: write('error'),
    always: (msg, fields) => always.info(line(msg, fields)),
  };
}

// Field names whose value is a credential, whatever it looks like.
const SECRET_FIELD =
  /^(authorization|x-product-key|x-admin-token|x-conversation-token|productkey|admintoken|conversationtoken|token|key|password|secret|cookie)$/i;
// sk_live_, pk_pub_ and pk_live_ + base64url (issued keys), ct_ + base64url (conversation tokens),
// adm_ + at least 8 characters (admin tokens are 24+), sk- + 16 or more (an LLM provider's API key).
const SECRET_SHAPES = /\b([ps]k_[a-z]+_)[A-Za-z0-9_-]{6,}|\b(ct_)[A-Za-z0-9_-]{16,}|\b(adm_)[A-Za-z0-9_-]{8,}|\b(sk-)[A-Za-z0-9_-]{16,}/g;
// The password of a connection URL (postgresql://user:password@host).
const URL_PASSWORD = /(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]*:)[^@\s]+@/gi;

function masker(secrets: readonly string[]): (text: string) => string {
  const exact = secrets.filter((s) => s.length >= 8);
  return (text) => {
    let out = text
      .replace(SECRET_SHAPES, (_all, key?: string, ct?: string, adm?: string, sk?: string) => `${key ?? ct ?? adm ?? sk}[redacted]`)
      .replace(URL_PASSWORD, '$1[redacted]@');
    for (const secret of exact) if (out.includes(secret)) out = out.split(secret).join('[redacted]');
    return out;
  };
}

function clean(value: unknown, mask: (text: string) => string, depth: number): unknown {
  if (typeof value === 'string') return mask(value);
  if (value instanceof Error) {
    return { name: value.name, message: mask(value.message), ...(value.stack ? { stack: mask(value.stack) } : {}) };
  }
  if (typeof value !== 'object' || value === null) return value;
  if (depth >= 6) return '[nested]';
  if (Array.isArray(value)) return value.map((v) => clean(v, mask, depth + 1));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = SECRET_FIELD.test(k) ? '[redacted]' : clean(v, mask, depth + 1);
  return out;
}
