import { z } from 'zod';

// The only reader of process.env. Every variable is documented in .env.example.

const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');

// Digits only: Number(' ') is 0 and Number('0x1F') is 31, neither is a port a person meant.
const wholeNumber = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

const redisUrl = z
  .string()
  .url()
  .refine((v) => /^rediss?:\/\//.test(v), 'must be a redis:// or rediss:// URL');

const postgresUrl = z
  .string()
  .url()
  .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// or postgresql:// URL');

const envSchema = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: wholeNumber(0, 65535).default(4000),
  PARLEY_DATA_DIR: z.string().min(1).default('./.parley'),
  DATABASE_URL: postgresUrl.optional(),
  DATABASE_POOL_SIZE: wholeNumber(1, 500).default(10),
  PARLEY_ADMIN_TOKEN: z
    .string()
    .min(24, 'must be at least 24 characters')
    .startsWith('adm_', 'must start with adm_ (so a Bearer token is recognised as the admin token)')
    .optional(),
  PARLEY_DEMO: bool.optional(),
  REDIS_URL: redisUrl.optional(),
  PARLEY_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'must be 1-64 letters, digits or _ : . -')
    .default('parley:'),
  PARLEY_CACHE_L1_MAX_ENTRIES: wholeNumber(1, 10_000_000).default(10_000),
  PARLEY_CACHE_L1_MAX_MB: wholeNumber(1, 65_536).default(64),
  PARLEY_REDIS_TIMEOUT_MS: wholeNumber(1, 60_000).default(50),
  PARLEY_CACHE_GENERATION_TRUST_MS: wholeNumber(0, 60_000).default(0),
  PARLEY_WARM_PRODUCTS: wholeNumber(0, 10_000).default(20),
  PARLEY_TYPING_TTL_MS: wholeNumber(100, 600_000).default(5_000),
  PARLEY_WS_KEEPALIVE_MS: wholeNumber(0, 600_000).default(12_000),
  PARLEY_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
});

export type Config = Readonly<{
  env: 'development' | 'production' | 'test';
  host: string;
  port: number;
  dataDir: string;
  database: Readonly<{ url: string | undefined; poolSize: number }>;
  /** Without a URL, cache L2, pub/sub and locks stay in-process (one node). */
  redis: Readonly<{ url: string | undefined; prefix: string }>;
  cache: Readonly<{
    l1MaxEntries: number;
    l1MaxBytes: number;
    /** Bound of every Redis call the cache makes; past it the read goes to L1 + database. */
    redisTimeoutMs: number;
    /** How long a node trusts its copy of tag generations without asking Redis (0 = always ask). */
    generationTrustMs: number;
    /** Products whose hot reads are loaded into the cache at start-up. */
    warmProducts: number;
  }>;
  live: Readonly<{
    /** A typing indicator not refreshed for this long is broadcast as stopped. */
    typingTtlMs: number;
    /** graphql-ws ping interval; a socket that misses a pong for as long is dropped (0 = no pings). */
    wsKeepAliveMs: number;
  }>;
  adminToken: string | undefined;
  /** Seed a demo product on an empty database. Off in production unless asked for. */
  demo: boolean;
  logLevel: 'debug' | 'info' | 'warn' | 'error' | 'silent';
}>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // Empty (or blank) strings mean "unset", as in most .env files.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v.trim() !== ''));
  const parsed = envSchema.safeParse(cleaned);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`Invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  return deepFreeze({
    env: e.NODE_ENV,
    host: e.HOST,
    port: e.PORT,
    dataDir: e.PARLEY_DATA_DIR,
    database: { url: e.DATABASE_URL, poolSize: e.DATABASE_POOL_SIZE },
    redis: { url: e.REDIS_URL, prefix: e.PARLEY_REDIS_PREFIX },
    cache: {
      l1MaxEntries: e.PARLEY_CACHE_L1_MAX_ENTRIES,
      l1MaxBytes: e.PARLEY_CACHE_L1_MAX_MB * 1024 * 1024,
      redisTimeoutMs: e.PARLEY_REDIS_TIMEOUT_MS,
      generationTrustMs: e.PARLEY_CACHE_GENERATION_TRUST_MS,
      warmProducts: e.PARLEY_WARM_PRODUCTS,
    },
    live: { typingTtlMs: e.PARLEY_TYPING_TTL_MS, wsKeepAliveMs: e.PARLEY_WS_KEEPALIVE_MS },
    adminToken: e.PARLEY_ADMIN_TOKEN,
    demo: e.PARLEY_DEMO ?? e.NODE_ENV !== 'production',
    logLevel: e.PARLEY_LOG_LEVEL,
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
