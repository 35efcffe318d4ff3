import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { parseClusterUrl, parseSentinelUrl } from './infra/redis.js';
import type { LogLevel } from './infra/log.js';

// The only reader of process.env. Every variable is documented in .env.example and
// docs/configuration.md (test/unit/docs.test.ts checks both).

const bool = z.enum(['true', 'false', '1', '0', 'yes', 'no']).transform((v) => v === 'true' || v === '1' || v === 'yes');

// Digits only: Number(' ') is 0 and Number('0x1F') is 31, neither is a port a person meant.
const wholeNumber = (min: number, max: number) =>
  z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max));

const REDIS_URL_FORMS = 'must be a redis://, rediss://, redis+sentinel:// or redis+cluster:// URL';

const redisUrl = z.string().superRefine((v, ctx) => {
  try {
    // One Redis (redis://, rediss://), a master watched by Sentinel (redis+sentinel://…) or a Redis Cluster
    // (redis+cluster://…), see src/infra/redis.ts.
    if (parseSentinelUrl(v) || parseClusterUrl(v)) return;
    if (/^rediss?:\/\//.test(v) && new URL(v)) return;
    ctx.addIssue({ code: 'custom', message: REDIS_URL_FORMS });
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: error instanceof TypeError ? REDIS_URL_FORMS : (error as Error).message });
  }
});

// Read here, once: a path that cannot be read, or a file that holds no certificate, stops the start
// naming the variable, instead of every Redis connection failing its TLS handshake later.
const pemCertificatesFile = z.string().transform((path, ctx) => {
  let pem: string;
  try {
    pem = readFileSync(path, 'utf8');
  } catch (error) {
    ctx.addIssue({ code: 'custom', message: `cannot read ${path}: ${(error as Error).message}` });
    return z.NEVER;
  }
  const certificates = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
  if (!certificates.length) ctx.addIssue({ code: 'custom', message: `${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)` });
  for (const certificate of certificates) {
    try {
      new X509Certificate(certificate);
    } catch (error) {
      ctx.addIssue({ code: 'custom', message: `${path} holds a certificate that does not parse: ${(error as Error).message}` });
    }
  }
  return pem;
});

const httpUrl = z
  .string()
  .url()
  .refine((v) => /^https?:\/\//.test(v), 'must be an http:// or https:// URL');

const postgresUrl = z
  .string()
  .url()
  .refine((v) => /^postgres(ql)?:\/\//.test(v), 'must be a postgres:// or postgresql:// URL');

const envObject = z.object({
  NODE_ENV: z.enum(['development', 'production', 'test']).default('development'),
  HOST: z.string().min(1).default('127.0.0.1'),
  PORT: wholeNumber(0, 65535).default(4000),
  PARLEY_DATA_DIR: z.string().min(1).default('./.parley'),
  DATABASE_URL: postgresUrl.optional(),
  DATABASE_POOL_SIZE: wholeNumber(1, 500).default(10),
  DATABASE_POOL_MIN: wholeNumber(0, 500).default(2),
  DATABASE_POOL_TIMEOUT_MS: wholeNumber(100, 600_000).default(5_000),
  DATABASE_IDLE_TIMEOUT_MS: wholeNumber(1_000, 3_600_000).default(30_000),
  DATABASE_STATEMENT_TIMEOUT_MS: wholeNumber(0, 3_600_000).default(30_000),
  DATABASE_PREPARED_STATEMENTS: bool.default(true),
  DATABASE_REPLICA_URLS: z
    .string()
    .transform((v) =>
      v
        .split(',')
        .map((u) => u.trim())
        .filter(Boolean),
    )
    .pipe(z.array(postgresUrl).max(16, 'at most 16 replicas'))
    .optional(),
  PARLEY_REPLICA_MAX_LAG_MS: wholeNumber(100, 600_000).default(1_000),
  PARLEY_ADMIN_TOKEN: z
    .string()
    .min(24, 'must be at least 24 characters')
    .startsWith('adm_', 'must start with adm_ (so a Bearer token is recognised as the admin token)')
    .optional(),
  PARLEY_DEMO: bool.optional(),
  REDIS_URL: redisUrl.optional(),
  PARLEY_REDIS_CA_FILE: pemCertificatesFile.optional(),
  PARLEY_REDIS_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9_:.-]{1,64}$/, 'must be 1-64 letters, digits or _ : . -')
    .default('parley:'),
  PARLEY_CACHE_L1_MAX_ENTRIES: wholeNumber(1, 10_000_000).default(10_000),
  PARLEY_CACHE_L1_MAX_MB: wholeNumber(1, 65_536).default(64),
  PARLEY_REDIS_TIMEOUT_MS: wholeNumber(1, 60_000).default(50),
  PARLEY_CACHE_GENERATION_TRUST_MS: wholeNumber(0, 60_000).default(0),
  PARLEY_WARM_PRODUCTS: wholeNumber(0, 10_000).default(20),
  PARLEY_RESPONSE_CACHE: bool.default(true),
  PARLEY_PLANNED_READS: bool.default(true),
  PARLEY_RESPONSE_CACHE_TTL_S: wholeNumber(1, 86_400).default(60),
  PARLEY_RESPONSE_CACHE_MAX_MB: wholeNumber(1, 65_536).default(64),
  PARLEY_RESPONSE_CACHE_ADMIT_AFTER: wholeNumber(1, 10).default(2),
  PARLEY_TYPING_TTL_MS: wholeNumber(100, 600_000).default(5_000),
  PARLEY_CONVERSATION_TOKEN_TTL_DAYS: wholeNumber(1, 3_650).default(30),
  PARLEY_WS_KEEPALIVE_MS: wholeNumber(0, 600_000).default(12_000),
  PARLEY_ANSWER_ENGINE: z.enum(['local', 'openai']).default('local'),
  PARLEY_ANSWER_TTL_S: wholeNumber(1, 30 * 86_400).default(86_400),
  PARLEY_ASSISTANT_TYPING_DELAY_MS: wholeNumber(0, 60_000).default(250),
  PARLEY_ANSWER_CONTEXT_TOKENS: wholeNumber(0, 100_000).default(600),
  PARLEY_ANSWER_MATCHING: z.enum(['lexical', 'exact']).default('lexical'),
  PARLEY_SEARCH_BATCH_MS: wholeNumber(0, 1_000).default(0),
  PARLEY_LLM_BASE_URL: z
    .string()
    .url()
    .refine((v) => /^https?:\/\//.test(v), 'must be an http:// or https:// URL')
    .transform((v) => v.replace(/\/+$/, ''))
    .default('https://api.openai.com/v1'),
  PARLEY_LLM_API_KEY: z.string().optional(),
  PARLEY_LLM_FAST_MODEL: z.string().min(1).max(200).default('gpt-4o-mini'),
  PARLEY_LLM_LARGE_MODEL: z.string().min(1).max(200).default('gpt-4o'),
  PARLEY_LLM_FAST_MAX_CHARS: wholeNumber(0, 100_000).default(200),
  PARLEY_LLM_TIMEOUT_MS: wholeNumber(100, 600_000).default(15_000),
  PARLEY_LLM_MAX_RETRIES: wholeNumber(0, 10).default(2),
  PARLEY_LLM_RETRY_BASE_MS: wholeNumber(1, 60_000).default(250),
  PARLEY_LLM_RETRY_MAX_MS: wholeNumber(1, 600_000).default(5_000),
  PARLEY_LLM_BREAKER_FAILURES: wholeNumber(1, 1_000).default(5),
  PARLEY_LLM_BREAKER_COOLDOWN_MS: wholeNumber(100, 3_600_000).default(30_000),
  PARLEY_EMBEDDINGS_MODEL: z.string().min(1).max(200).optional(),
  PARLEY_EMBEDDINGS_BASE_URL: z
    .string()
    .url()
    .refine((v) => /^https?:\/\//.test(v), 'must be an http:// or https:// URL')
    .transform((v) => v.replace(/\/+$/, ''))
    .optional(),
  PARLEY_EMBEDDINGS_API_KEY: z.string().optional(),
  PARLEY_EMBEDDINGS_BATCH_MS: wholeNumber(0, 1_000).default(10),
  PARLEY_SEMANTIC_THRESHOLD: z.coerce.number().min(0.5, 'must be between 0.5 and 1').max(1, 'must be between 0.5 and 1').default(0.92),
  PARLEY_LOG_LEVEL: z.enum(['debug', 'info', 'warn', 'error', 'silent']).default('info'),
  PARLEY_METRICS: bool.default(true),
  PARLEY_METRICS_TOKEN: z.string().trim().min(16, 'PARLEY_METRICS_TOKEN must be at least 16 characters').optional(),
  PARLEY_SLOW_MS: wholeNumber(0, 600_000).default(1_000),
  // OpenTelemetry's own variables (the exporter reads the other OTEL_EXPORTER_OTLP_* itself; see src/infra/tracing.ts).
  OTEL_EXPORTER_OTLP_ENDPOINT: httpUrl.optional(),
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: httpUrl.optional(),
  OTEL_SERVICE_NAME: z.string().trim().min(1).optional(),
  OTEL_SDK_DISABLED: bool.default(false),
  PARLEY_MAX_DEPTH: wholeNumber(1, 100).default(10),
  PARLEY_MAX_COST: wholeNumber(1, 100_000_000).default(100_000),
  PARLEY_MAX_ALIASES: wholeNumber(0, 10_000).default(15),
  PARLEY_MAX_TOKENS: wholeNumber(10, 1_000_000).default(1_000),
  PARLEY_MAX_DIRECTIVES: wholeNumber(0, 10_000).default(50),
  PARLEY_MAX_BODY_KB: wholeNumber(1, 1_048_576).default(1_024),
  PARLEY_MAX_CONCURRENT_OPERATIONS: wholeNumber(0, 1_000_000).optional(),
  PARLEY_INTROSPECTION: bool.optional(),
  PARLEY_RATE_LIMIT_PRODUCT_PER_MIN: wholeNumber(0, 100_000_000).default(60_000),
  PARLEY_RATE_LIMIT_ANONYMOUS_PER_MIN: wholeNumber(0, 100_000_000).default(300),
  PARLEY_RATE_LIMIT_BAD_CREDENTIALS: wholeNumber(0, 1_000_000).default(20),
  PARLEY_RATE_LIMIT_VISITOR_IP_PER_MIN: wholeNumber(0, 100_000_000).default(600),
  PARLEY_RATE_LIMIT_VISITOR_CONVERSATION_PER_MIN: wholeNumber(0, 100_000_000).default(120),
  PARLEY_WS_MESSAGES_PER_SEC: wholeNumber(0, 100_000).default(2_000),
  PARLEY_TRUST_PROXY: wholeNumber(0, 10).default(0),
  PARLEY_COMPRESSION_MIN_BYTES: wholeNumber(0, 100_000_000).default(1_024),
  PARLEY_SHUTDOWN_MS: wholeNumber(0, 600_000).default(10_000),
  PARLEY_APQ: bool.default(true),
  PARLEY_PERSISTED_ONLY: bool.default(false),
  PARLEY_PERSISTED_OPERATIONS: z.string().min(1).optional(),
  PARLEY_GET_MAX_AGE_S: wholeNumber(0, 86_400).default(0),
});

const envSchema = envObject.superRefine((e, ctx) => {
  if (e.DATABASE_POOL_MIN > e.DATABASE_POOL_SIZE) {
    ctx.addIssue({ code: 'custom', path: ['DATABASE_POOL_MIN'], message: 'must not exceed DATABASE_POOL_SIZE' });
  }
  if (e.DATABASE_REPLICA_URLS?.length && !e.DATABASE_URL) {
    ctx.addIssue({ code: 'custom', path: ['DATABASE_REPLICA_URLS'], message: 'needs DATABASE_URL (the primary)' });
  }
  // A CA given for a plain-text URL would be ignored: the operator meant TLS and would not get it.
  if (e.PARLEY_REDIS_CA_FILE && !/^rediss[:+]/.test(e.REDIS_URL ?? '')) {
    ctx.addIssue({
      code: 'custom',
      path: ['PARLEY_REDIS_CA_FILE'],
      message: 'needs a TLS REDIS_URL (rediss://, rediss+sentinel:// or rediss+cluster://)',
    });
  }
  if (e.PARLEY_PERSISTED_ONLY && !e.PARLEY_PERSISTED_OPERATIONS) {
    ctx.addIssue({ code: 'custom', path: ['PARLEY_PERSISTED_ONLY'], message: 'needs PARLEY_PERSISTED_OPERATIONS (the allow-list file)' });
  }
});

/** Every environment variable Parley reads (deployment files are checked against it). */
export const CONFIG_VARIABLES: readonly string[] = Object.freeze(Object.keys(envObject.shape));

export type Config = Readonly<{
  env: 'development' | 'production' | 'test';
  host: string;
  port: number;
  dataDir: string;
  database: Readonly<{
    url: string | undefined;
    /** Most connections each pool (primary, every replica) opens. */
    poolSize: number;
    /** Connections opened before /readyz turns ready and kept open while idle. */
    poolMin: number;
    /** How long a query waits for a free connection (or a new one to open) before it fails. */
    poolTimeoutMs: number;
    /** An idle connection above poolMin is closed after this long. */
    idleTimeoutMs: number;
    /** PostgreSQL statement_timeout of every connection (0 = none). */
    statementTimeoutMs: number;
    /** Statements prepared once per connection (off behind a pooler that cannot keep them, e.g. PgBouncer < 1.21 in transaction mode). */
    preparedStatements: boolean;
    /** Streaming replicas that take reads (see src/infra/read-routing.ts); empty = all on the primary. */
    replicaUrls: readonly string[];
    /** A replica further behind than this takes no reads; a product written this recently reads from the primary. */
    replicaMaxLagMs: number;
  }>;
  /** Without a URL, cache L2, pub/sub and locks stay in-process (one node). */
  redis: Readonly<{
    url: string | undefined;
    prefix: string;
    /** PEM of the CAs a TLS Redis's certificate must chain to (PARLEY_REDIS_CA_FILE); undefined = Node's roots and NODE_EXTRA_CA_CERTS. */
    ca: string | undefined;
  }>;
  /** Queries of conversations and what lies beneath them answered from one planned SQL statement (plugins/planned-reads.ts). */
  plannedReads: boolean;
  cache: Readonly<{
    l1MaxEntries: number;
    l1MaxBytes: number;
    /** Bound of every Redis call the cache makes; past it the read goes to L1 + database. */
    redisTimeoutMs: number;
    /** How long a node trusts its copy of tag generations without asking Redis (0 = always ask). */
    generationTrustMs: number;
    /** Products whose hot reads are loaded into the cache at start-up. */
    warmProducts: number;
    /** Whole query responses cached per product, document and variables (off: every query executes). */
    /** admitAfter: the request of a response (per node, within its TTL) that stores it; 1 = every response. */
    responses: Readonly<{ enabled: boolean; ttlMs: number; l1MaxBytes: number; admitAfter: number }>;
  }>;
  live: Readonly<{
    /** A typing indicator not refreshed for this long is broadcast as stopped. */
    typingTtlMs: number;
    /** graphql-ws ping interval; a socket that misses a pong for as long is dropped (0 = no pings). */
    wsKeepAliveMs: number;
  }>;
  answers: Readonly<{
    /** Who writes assistant replies: `local` (knowledge full-text search, offline) or an OpenAI-compatible API. */
    engine: 'local' | 'openai';
    /** How long an answer is reused for the same normalised question (until the knowledge changes). */
    ttlMs: number;
    /**
     * A reply not streamed: the assistant is shown typing only while its answer takes longer than this
     * (0 = from the start), and a question answered sooner is announced with its reply, in one round trip.
     */
    typingDelayMs: number;
    /** Concurrent knowledge searches of one product within this window run as one SQL statement (0 = one tick). */
    searchBatchMs: number;
    /** Earlier turns of the conversation an answer may carry (≈ 4 characters a token; 0 = none: every question answered alone). */
    contextTokens: number;
    /** When two questions are the same for the answer cache: same lexemes and meaning words (`lexical`), or same normalised words (`exact`). */
    matching: 'lexical' | 'exact';
    llm: Readonly<{
      /** OpenAI-compatible API root, e.g. https://api.openai.com/v1 or http://127.0.0.1:8080/v1 (no trailing slash). */
      baseUrl: string;
      apiKey: string | undefined;
      fastModel: string;
      largeModel: string;
      /** Questions up to this many characters (and not complex) go to the fast model; 0 = always the large one. */
      fastMaxChars: number;
      /** A provider that sends nothing (headers or the next chunk) for this long is given up on (and retried). */
      timeoutMs: number;
      maxRetries: number;
      /** First backoff (doubling, with jitter). */
      retryBaseMs: number;
      /** Longest single wait before a retry; a longer Retry-After is not waited for. */
      retryMaxMs: number;
      /** Consecutive failed calls that open the circuit (answers come from the local engine). */
      breakerFailures: number;
      /** How long the circuit stays open before one call probes the provider again. */
      breakerCooldownMs: number;
    }>;
    /**
     * Semantic matching of questions (PARLEY_EMBEDDINGS_MODEL set): questions embedded through the
     * OpenAI-compatible /embeddings endpoint, a question within `threshold` (cosine similarity) of an
     * answered question of the same product reuses its answer. Undefined: lexical matching only.
     */
    embeddings: Readonly<{ model: string; baseUrl: string; apiKey: string | undefined; batchMs: number; threshold: number }> | undefined;
  }>;
  adminToken: string | undefined;
  /** How long a conversation token (returned by startConversation, used with a publishable key) opens its conversation. */
  conversationTokenTtlMs: number;
  /** Seed a demo product on an empty database. Off in production unless asked for. */
  demo: boolean;
  logLevel: LogLevel;
  observability: Readonly<{
    /** Serve GET /metrics (Prometheus) and measure every operation. */
    metrics: boolean;
    /** When set, GET /metrics needs `Authorization: Bearer <token>`. */
    metricsToken: string | undefined;
    /** Operations slower than this are logged at warn with their SQL count (0 = never). */
    slowOperationMs: number;
    /** OpenTelemetry traces are exported (an OTLP endpoint is set and the SDK is not disabled). */
    tracing: boolean;
  }>;
  /** Query safety: refused before anything executes (see src/plugins/query-limits.ts). */
  limits: Readonly<{
    maxDepth: number;
    maxCost: number;
    maxAliases: number;
    maxTokens: number;
    maxDirectives: number;
    maxBodyBytes: number;
    /**
     * Queries and mutations executing at once per node; one more is refused before it starts
     * (OVERLOADED, HTTP 503). 0 = no bound. Default: 4 per pool connection (25 with the openai
     * engine, whose replies wait seconds on the provider without holding a connection).
     */
    maxConcurrentOperations: number;
    /** Schema introspection (and "Did you mean" hints); off in production unless asked for. */
    introspection: boolean;
  }>;
  /** Per product key, per visitor of a publishable key, per IP without credentials, wrong credentials per IP; 0 = off (see src/services/rate-limits.ts). */
  rateLimits: Readonly<{
    productPerMinute: number;
    anonymousPerMinute: number;
    /** Wrong keys or tokens from one IP per 5 minutes before its credentials are refused. */
    badCredentialsPerIp: number;
    /** Publishable-key requests per minute per product and client IP (a visitor), before the product's own budget. */
    visitorIpPerMinute: number;
    /** Publishable-key requests per minute per conversation (its conversation token), before the product's own budget. */
    visitorConversationPerMinute: number;
    /** graphql-ws messages per second per socket; past it the socket is closed (1008). */
    wsMessagesPerSecond: number;
  }>;
  http: Readonly<{
    /** Proxies in front whose X-Forwarded-For entries are trusted for the client's IP. */
    trustProxy: number;
    /** Responses at least this large are compressed (brotli or gzip, by Accept-Encoding); 0 = never. */
    compressionMinBytes: number;
    /** How long stop() lets operations in flight finish before cutting their connections. */
    shutdownMs: number;
    /** Cache-Control max-age of successful query results over GET (revalidated with ETag / 304). */
    getMaxAgeS: number;
  }>;
  /** Persisted operations (see src/plugins/persisted.ts). */
  persisted: Readonly<{
    /** Automatic persisted queries: a client may send only the sha256 of a document it sent before. */
    apq: boolean;
    /** Refuse every document that is not in the allow-list (APQ registration included). */
    only: boolean;
    /** JSON allow-list: { "<sha256 hex>": "<document>" } or an array of documents. */
    operationsFile: string | undefined;
  }>;
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
    database: {
      url: e.DATABASE_URL,
      poolSize: e.DATABASE_POOL_SIZE,
      poolMin: e.DATABASE_POOL_MIN,
      poolTimeoutMs: e.DATABASE_POOL_TIMEOUT_MS,
      idleTimeoutMs: e.DATABASE_IDLE_TIMEOUT_MS,
      statementTimeoutMs: e.DATABASE_STATEMENT_TIMEOUT_MS,
      preparedStatements: e.DATABASE_PREPARED_STATEMENTS,
      replicaUrls: e.DATABASE_REPLICA_URLS ?? [],
      replicaMaxLagMs: e.PARLEY_REPLICA_MAX_LAG_MS,
    },
    redis: { url: e.REDIS_URL, prefix: e.PARLEY_REDIS_PREFIX, ca: e.PARLEY_REDIS_CA_FILE },
    plannedReads: e.PARLEY_PLANNED_READS,
    cache: {
      l1MaxEntries: e.PARLEY_CACHE_L1_MAX_ENTRIES,
      l1MaxBytes: e.PARLEY_CACHE_L1_MAX_MB * 1024 * 1024,
      redisTimeoutMs: e.PARLEY_REDIS_TIMEOUT_MS,
      generationTrustMs: e.PARLEY_CACHE_GENERATION_TRUST_MS,
      warmProducts: e.PARLEY_WARM_PRODUCTS,
      responses: {
        enabled: e.PARLEY_RESPONSE_CACHE,
        ttlMs: e.PARLEY_RESPONSE_CACHE_TTL_S * 1000,
        l1MaxBytes: e.PARLEY_RESPONSE_CACHE_MAX_MB * 1024 * 1024,
        admitAfter: e.PARLEY_RESPONSE_CACHE_ADMIT_AFTER,
      },
    },
    live: { typingTtlMs: e.PARLEY_TYPING_TTL_MS, wsKeepAliveMs: e.PARLEY_WS_KEEPALIVE_MS },
    answers: {
      engine: e.PARLEY_ANSWER_ENGINE,
      ttlMs: e.PARLEY_ANSWER_TTL_S * 1000,
      typingDelayMs: e.PARLEY_ASSISTANT_TYPING_DELAY_MS,
      searchBatchMs: e.PARLEY_SEARCH_BATCH_MS,
      contextTokens: e.PARLEY_ANSWER_CONTEXT_TOKENS,
      matching: e.PARLEY_ANSWER_MATCHING,
      llm: {
        baseUrl: e.PARLEY_LLM_BASE_URL,
        apiKey: e.PARLEY_LLM_API_KEY,
        fastModel: e.PARLEY_LLM_FAST_MODEL,
        largeModel: e.PARLEY_LLM_LARGE_MODEL,
        fastMaxChars: e.PARLEY_LLM_FAST_MAX_CHARS,
        timeoutMs: e.PARLEY_LLM_TIMEOUT_MS,
        maxRetries: e.PARLEY_LLM_MAX_RETRIES,
        retryBaseMs: e.PARLEY_LLM_RETRY_BASE_MS,
        retryMaxMs: e.PARLEY_LLM_RETRY_MAX_MS,
        breakerFailures: e.PARLEY_LLM_BREAKER_FAILURES,
        breakerCooldownMs: e.PARLEY_LLM_BREAKER_COOLDOWN_MS,
      },
      embeddings: e.PARLEY_EMBEDDINGS_MODEL
        ? {
            model: e.PARLEY_EMBEDDINGS_MODEL,
            baseUrl: e.PARLEY_EMBEDDINGS_BASE_URL ?? e.PARLEY_LLM_BASE_URL,
            apiKey: e.PARLEY_EMBEDDINGS_API_KEY ?? e.PARLEY_LLM_API_KEY,
            batchMs: e.PARLEY_EMBEDDINGS_BATCH_MS,
            threshold: e.PARLEY_SEMANTIC_THRESHOLD,
          }
        : undefined,
    },
    adminToken: e.PARLEY_ADMIN_TOKEN,
    conversationTokenTtlMs: e.PARLEY_CONVERSATION_TOKEN_TTL_DAYS * 86_400_000,
    demo: e.PARLEY_DEMO ?? e.NODE_ENV !== 'production',
    logLevel: e.PARLEY_LOG_LEVEL,
    observability: {
      metrics: e.PARLEY_METRICS,
      metricsToken: e.PARLEY_METRICS_TOKEN,
      slowOperationMs: e.PARLEY_SLOW_MS,
      tracing: !e.OTEL_SDK_DISABLED && Boolean(e.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ?? e.OTEL_EXPORTER_OTLP_ENDPOINT),
    },
    limits: {
      maxDepth: e.PARLEY_MAX_DEPTH,
      maxCost: e.PARLEY_MAX_COST,
      maxAliases: e.PARLEY_MAX_ALIASES,
      maxTokens: e.PARLEY_MAX_TOKENS,
      maxDirectives: e.PARLEY_MAX_DIRECTIVES,
      maxBodyBytes: e.PARLEY_MAX_BODY_KB * 1024,
      maxConcurrentOperations: e.PARLEY_MAX_CONCURRENT_OPERATIONS ?? e.DATABASE_POOL_SIZE * (e.PARLEY_ANSWER_ENGINE === 'openai' ? 25 : 4),
      introspection: e.PARLEY_INTROSPECTION ?? e.NODE_ENV !== 'production',
    },
    rateLimits: {
      productPerMinute: e.PARLEY_RATE_LIMIT_PRODUCT_PER_MIN,
      anonymousPerMinute: e.PARLEY_RATE_LIMIT_ANONYMOUS_PER_MIN,
      badCredentialsPerIp: e.PARLEY_RATE_LIMIT_BAD_CREDENTIALS,
      visitorIpPerMinute: e.PARLEY_RATE_LIMIT_VISITOR_IP_PER_MIN,
      visitorConversationPerMinute: e.PARLEY_RATE_LIMIT_VISITOR_CONVERSATION_PER_MIN,
      wsMessagesPerSecond: e.PARLEY_WS_MESSAGES_PER_SEC,
    },
    http: {
      trustProxy: e.PARLEY_TRUST_PROXY,
      compressionMinBytes: e.PARLEY_COMPRESSION_MIN_BYTES,
      shutdownMs: e.PARLEY_SHUTDOWN_MS,
      getMaxAgeS: e.PARLEY_GET_MAX_AGE_S,
    },
    persisted: { apq: e.PARLEY_APQ, only: e.PARLEY_PERSISTED_ONLY, operationsFile: e.PARLEY_PERSISTED_OPERATIONS },
  });
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/** The configured secrets a log line must never show (the shapes of keys and tokens are masked anyway). */
export function configSecrets(config: Config): string[] {
  return [config.adminToken, config.answers.llm.apiKey, config.answers.embeddings?.apiKey, config.observability.metricsToken].filter(
    (s): s is string => Boolean(s),
  );
}
