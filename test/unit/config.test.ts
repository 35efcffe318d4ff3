import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/config.js';

const TOKEN = 'adm_0123456789abcdef0123456789';

// A self-signed CA certificate (its key thrown away): only parsed here, never used to connect.
const CA_PEM = `-----BEGIN CERTIFICATE-----
MIIBlzCCAT2gAwIBAgIUeLQdoMfYi6zWy5CznkgInMG2M5kwCgYIKoZIzj0EAwIw
IDEeMBwGA1UEAwwVUGFybGV5IGNvbmZpZyB0ZXN0IENBMCAXDTI2MTIwNzA2MDUz
N1oYDzIxMjYxMTEzMDYwNTM3WjAgMR4wHAYDVQQDDBVQYXJsZXkgY29uZmlnIHRl
c3QgQ0EwWTATBgcqhkjOPQIBBggqhkjOPQMBBwNCAAQy1yE9k5G2RQfOyeHk3v6J
XtZZY1gp30E6A/kiWYB8GJsMKNWBCagtabTf41Yqz+Vbk3TaW7fonlqGvNlTkgAU
o1MwUTAdBgNVHQ4EFgQUVa27sr/RaVP68yvyQmNGhBIuWWkwHwYDVR0jBBgwFoAU
Va27sr/RaVP68yvyQmNGhBIuWWkwDwYDVR0TAQH/BAUwAwEB/zAKBggqhkjOPQQD
AgNIADBFAiEAqaSmaUGS9fWQUfW50+RO/K1+e+J3bZGsDseB9J6T01cCIEVKgy05
Z1pZmeE+bzxGYj9oD371iKFowiZJ1qAOdLj5
-----END CERTIFICATE-----
`;
const files = mkdtempSync(join(tmpdir(), 'parley-config-'));
afterAll(() => rmSync(files, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const path = join(files, name);
  writeFileSync(path, text);
  return path;
}

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(env)}`);
}

describe('loadConfig', () => {
  it('uses the documented defaults for an empty environment', () => {
    expect(loadConfig({})).toEqual({
      env: 'development',
      host: '127.0.0.1',
      port: 4000,
      dataDir: './.parley',
      database: {
        url: undefined,
        poolSize: 10,
        poolMin: 2,
        poolTimeoutMs: 5_000,
        preparedStatements: true,
        idleTimeoutMs: 30_000,
        statementTimeoutMs: 30_000,
        replicaUrls: [],
        replicaMaxLagMs: 1_000,
      },
      redis: { url: undefined, prefix: 'parley:', ca: undefined },
      plannedReads: true,
      cache: {
        l1MaxEntries: 10_000,
        l1MaxBytes: 64 * 1024 * 1024,
        redisTimeoutMs: 50,
        generationTrustMs: 0,
        warmProducts: 20,
        responses: { enabled: true, ttlMs: 60_000, l1MaxBytes: 64 * 1024 * 1024, admitAfter: 2 },
      },
      live: { typingTtlMs: 5_000, wsKeepAliveMs: 12_000 },
      answers: {
        engine: 'local',
        ttlMs: 86_400_000,
        typingDelayMs: 250,
        searchBatchMs: 0,
        contextTokens: 600,
        matching: 'lexical',
        llm: {
          baseUrl: 'https://api.openai.com/v1',
          apiKey: undefined,
          fastModel: 'gpt-4o-mini',
          largeModel: 'gpt-4o',
          fastMaxChars: 200,
          timeoutMs: 15_000,
          maxRetries: 2,
          retryBaseMs: 250,
          retryMaxMs: 5_000,
          breakerFailures: 5,
          breakerCooldownMs: 30_000,
        },
        embeddings: undefined,
      },
      adminToken: undefined,
      conversationTokenTtlMs: 30 * 86_400_000,
      demo: true,
      logLevel: 'info',
      observability: { metrics: true, slowOperationMs: 1_000, tracing: false },
      limits: {
        maxDepth: 10,
        maxCost: 100_000,
        maxAliases: 15,
        maxTokens: 1_000,
        maxDirectives: 50,
        maxBodyBytes: 1024 * 1024,
        maxConcurrentOperations: 40,
        introspection: true,
      },
      rateLimits: {
        productPerMinute: 60_000,
        anonymousPerMinute: 300,
        badCredentialsPerIp: 20,
        visitorIpPerMinute: 600,
        visitorConversationPerMinute: 120,
        wsMessagesPerSecond: 2_000,
      },
      http: { trustProxy: 0, compressionMinBytes: 1_024, shutdownMs: 10_000, getMaxAgeS: 0 },
      persisted: { apq: true, only: false, operationsFile: undefined },
    });
  });

  it('reads every variable', () => {
    expect(
      loadConfig({
        NODE_ENV: 'test',
        HOST: '0.0.0.0',
        PORT: '8080',
        PARLEY_DATA_DIR: '/var/lib/parley',
        DATABASE_URL: 'postgresql://parley:secret@db.internal:5432/parley?sslmode=require',
        DATABASE_POOL_SIZE: '25',
        DATABASE_POOL_MIN: '5',
        DATABASE_POOL_TIMEOUT_MS: '2000',
        DATABASE_PREPARED_STATEMENTS: 'false',
        DATABASE_IDLE_TIMEOUT_MS: '60000',
        DATABASE_STATEMENT_TIMEOUT_MS: '0',
        DATABASE_REPLICA_URLS: 'postgresql://parley:secret@replica-1:5432/parley, postgres://replica-2/parley',
        PARLEY_REPLICA_MAX_LAG_MS: '500',
        PARLEY_ADMIN_TOKEN: TOKEN,
        PARLEY_DEMO: 'no',
        REDIS_URL: 'rediss://:secret@cache.internal:6380/2',
        PARLEY_REDIS_PREFIX: 'parley-eu:',
        PARLEY_REDIS_CA_FILE: file('every-variable-ca.pem', CA_PEM),
        PARLEY_CACHE_L1_MAX_ENTRIES: '500',
        PARLEY_CACHE_L1_MAX_MB: '8',
        PARLEY_REDIS_TIMEOUT_MS: '25',
        PARLEY_CACHE_GENERATION_TRUST_MS: '100',
        PARLEY_WARM_PRODUCTS: '5',
        PARLEY_RESPONSE_CACHE: 'false',
        PARLEY_RESPONSE_CACHE_TTL_S: '5',
        PARLEY_RESPONSE_CACHE_MAX_MB: '2',
        PARLEY_RESPONSE_CACHE_ADMIT_AFTER: '1',
        PARLEY_PLANNED_READS: 'false',
        PARLEY_TYPING_TTL_MS: '2500',
        PARLEY_WS_KEEPALIVE_MS: '30000',
        PARLEY_LOG_LEVEL: 'warn',
        PARLEY_ANSWER_ENGINE: 'openai',
        PARLEY_ANSWER_TTL_S: '3600',
        PARLEY_ASSISTANT_TYPING_DELAY_MS: '0',
        PARLEY_SEARCH_BATCH_MS: '0',
        PARLEY_ANSWER_CONTEXT_TOKENS: '200',
        PARLEY_ANSWER_MATCHING: 'exact',
        PARLEY_EMBEDDINGS_MODEL: 'nomic-embed-text',
        PARLEY_EMBEDDINGS_BASE_URL: 'http://127.0.0.1:8081/v1/',
        PARLEY_EMBEDDINGS_BATCH_MS: '5',
        PARLEY_SEMANTIC_THRESHOLD: '0.9',
        PARLEY_LLM_BASE_URL: 'http://127.0.0.1:8080/v1/',
        PARLEY_LLM_API_KEY: 'sk-secret',
        PARLEY_LLM_FAST_MODEL: 'llama-3.1-8b-instant',
        PARLEY_LLM_LARGE_MODEL: 'llama-3.3-70b-versatile',
        PARLEY_LLM_FAST_MAX_CHARS: '0',
        PARLEY_LLM_TIMEOUT_MS: '8000',
        PARLEY_LLM_MAX_RETRIES: '0',
        PARLEY_LLM_RETRY_BASE_MS: '100',
        PARLEY_LLM_RETRY_MAX_MS: '2000',
        PARLEY_LLM_BREAKER_FAILURES: '3',
        PARLEY_LLM_BREAKER_COOLDOWN_MS: '10000',
        PARLEY_METRICS: 'false',
        PARLEY_SLOW_MS: '250',
        OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel-collector:4318',
        OTEL_SERVICE_NAME: 'parley-eu',
        PARLEY_MAX_DEPTH: '12',
        PARLEY_MAX_COST: '5000',
        PARLEY_MAX_ALIASES: '0',
        PARLEY_MAX_TOKENS: '500',
        PARLEY_MAX_DIRECTIVES: '5',
        PARLEY_MAX_BODY_KB: '64',
        PARLEY_MAX_CONCURRENT_OPERATIONS: '7',
        PARLEY_INTROSPECTION: 'false',
        PARLEY_RATE_LIMIT_PRODUCT_PER_MIN: '0',
        PARLEY_RATE_LIMIT_ANONYMOUS_PER_MIN: '30',
        PARLEY_RATE_LIMIT_BAD_CREDENTIALS: '5',
        PARLEY_RATE_LIMIT_VISITOR_IP_PER_MIN: '40',
        PARLEY_RATE_LIMIT_VISITOR_CONVERSATION_PER_MIN: '0',
        PARLEY_WS_MESSAGES_PER_SEC: '100',
        PARLEY_TRUST_PROXY: '1',
        PARLEY_COMPRESSION_MIN_BYTES: '0',
        PARLEY_SHUTDOWN_MS: '2500',
        PARLEY_APQ: 'false',
        PARLEY_PERSISTED_ONLY: 'true',
        PARLEY_PERSISTED_OPERATIONS: '/etc/parley/operations.json',
        PARLEY_GET_MAX_AGE_S: '30',
      }),
    ).toEqual({
      env: 'test',
      host: '0.0.0.0',
      port: 8080,
      dataDir: '/var/lib/parley',
      database: {
        url: 'postgresql://parley:secret@db.internal:5432/parley?sslmode=require',
        poolSize: 25,
        poolMin: 5,
        poolTimeoutMs: 2_000,
        preparedStatements: false,
        idleTimeoutMs: 60_000,
        statementTimeoutMs: 0,
        replicaUrls: ['postgresql://parley:secret@replica-1:5432/parley', 'postgres://replica-2/parley'],
        replicaMaxLagMs: 500,
      },
      redis: { url: 'rediss://:secret@cache.internal:6380/2', prefix: 'parley-eu:', ca: CA_PEM },
      plannedReads: false,
      cache: {
        l1MaxEntries: 500,
        l1MaxBytes: 8 * 1024 * 1024,
        redisTimeoutMs: 25,
        generationTrustMs: 100,
        warmProducts: 5,
        responses: { enabled: false, ttlMs: 5_000, l1MaxBytes: 2 * 1024 * 1024, admitAfter: 1 },
      },
      live: { typingTtlMs: 2_500, wsKeepAliveMs: 30_000 },
      answers: {
        engine: 'openai',
        ttlMs: 3_600_000,
        typingDelayMs: 0,
        searchBatchMs: 0,
        contextTokens: 200,
        matching: 'exact',
        llm: {
          baseUrl: 'http://127.0.0.1:8080/v1',
          apiKey: 'sk-secret',
          fastModel: 'llama-3.1-8b-instant',
          largeModel: 'llama-3.3-70b-versatile',
          fastMaxChars: 0,
          timeoutMs: 8_000,
          maxRetries: 0,
          retryBaseMs: 100,
          retryMaxMs: 2_000,
          breakerFailures: 3,
          breakerCooldownMs: 10_000,
        },
        embeddings: { model: 'nomic-embed-text', baseUrl: 'http://127.0.0.1:8081/v1', apiKey: 'sk-secret', batchMs: 5, threshold: 0.9 },
      },
      adminToken: TOKEN,
      conversationTokenTtlMs: 30 * 86_400_000,
      demo: false,
      logLevel: 'warn',
      observability: { metrics: false, slowOperationMs: 250, tracing: true },
      limits: {
        maxDepth: 12,
        maxCost: 5_000,
        maxAliases: 0,
        maxTokens: 500,
        maxDirectives: 5,
        maxBodyBytes: 64 * 1024,
        maxConcurrentOperations: 7,
        introspection: false,
      },
      rateLimits: {
        productPerMinute: 0,
        anonymousPerMinute: 30,
        badCredentialsPerIp: 5,
        visitorIpPerMinute: 40,
        visitorConversationPerMinute: 0,
        wsMessagesPerSecond: 100,
      },
      http: { trustProxy: 1, compressionMinBytes: 0, shutdownMs: 2_500, getMaxAgeS: 30 },
      persisted: { apq: false, only: true, operationsFile: '/etc/parley/operations.json' },
    });
    expect(loadConfig({ DATABASE_URL: 'postgres://localhost/parley' }).database.url).toBe('postgres://localhost/parley');
    expect(loadConfig({ PORT: '0' }).port).toBe(0);
    expect(loadConfig({ PARLEY_WS_KEEPALIVE_MS: '0' }).live.wsKeepAliveMs).toBe(0);
  });

  it('reads PARLEY_REDIS_CA_FILE once, at load: a later change of the file is not seen', () => {
    const path = file('ca-read-once.pem', CA_PEM);
    const config = loadConfig({ REDIS_URL: 'rediss+cluster://10.0.0.1:6379,10.0.0.2:6379', PARLEY_REDIS_CA_FILE: path });
    writeFileSync(path, 'replaced');
    expect(config.redis.ca).toBe(CA_PEM);
    const bundle = `${CA_PEM}${CA_PEM}`;
    expect(loadConfig({ REDIS_URL: 'rediss+sentinel://s1:26379/mymaster', PARLEY_REDIS_CA_FILE: file('bundle.pem', bundle) }).redis.ca).toBe(bundle);
  });

  it.each([
    ['a missing file', () => join(files, 'nowhere.pem'), 'rediss://cache:6380', /cannot read .*nowhere\.pem: ENOENT/],
    ['a directory', () => files, 'rediss://cache:6380', /cannot read .*: EISDIR/],
    [
      'a file with no certificate',
      () => file('key-only.pem', '-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n'),
      'rediss://cache:6380',
      /holds no PEM certificate/,
    ],
    [
      'a certificate that does not parse',
      () => file('broken.pem', CA_PEM.replace('MIIB', 'MIIC')),
      'rediss://cache:6380',
      /holds a certificate that does not parse/,
    ],
    ['a plain-text REDIS_URL', () => file('plain.pem', CA_PEM), 'redis://cache:6379', /needs a TLS REDIS_URL/],
    ['a plain-text cluster', () => file('plain-cluster.pem', CA_PEM), 'redis+cluster://n1:7000', /needs a TLS REDIS_URL/],
    ['no REDIS_URL', () => file('no-url.pem', CA_PEM), '', /needs a TLS REDIS_URL/],
  ])('refuses PARLEY_REDIS_CA_FILE naming %s, saying why', (_, path, url, why) => {
    const message = configError({ REDIS_URL: url, PARLEY_REDIS_CA_FILE: path() }).message;
    expect(message).toMatch(new RegExp(`^\\s+PARLEY_REDIS_CA_FILE: .*${why.source}`, 'm'));
  });

  it('turns introspection off in production unless asked for', () => {
    expect(loadConfig({ NODE_ENV: 'production' }).limits.introspection).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', PARLEY_INTROSPECTION: 'true' }).limits.introspection).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test' }).limits.introspection).toBe(true);
  });

  it('bounds concurrent operations by the pool size unless told (more with the openai engine, whose replies wait on the provider)', () => {
    expect(loadConfig({ DATABASE_POOL_SIZE: '25' }).limits.maxConcurrentOperations).toBe(100);
    expect(loadConfig({ DATABASE_POOL_SIZE: '4', PARLEY_ANSWER_ENGINE: 'openai' }).limits.maxConcurrentOperations).toBe(100);
    expect(loadConfig({ PARLEY_MAX_CONCURRENT_OPERATIONS: '0' }).limits.maxConcurrentOperations).toBe(0);
  });

  it('turns the demo off in production unless asked for', () => {
    expect(loadConfig({ NODE_ENV: 'production' }).demo).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', PARLEY_DEMO: 'true' }).demo).toBe(true);
    expect(loadConfig({ NODE_ENV: 'test' }).demo).toBe(true);
    expect(loadConfig({ NODE_ENV: 'development', PARLEY_DEMO: '0' }).demo).toBe(false);
  });

  it('treats empty (and blank) strings as unset', () => {
    const blank = {
      NODE_ENV: '',
      HOST: '',
      PORT: '',
      PARLEY_DATA_DIR: '',
      DATABASE_URL: '',
      DATABASE_POOL_SIZE: '',
      PARLEY_ADMIN_TOKEN: '',
      PARLEY_DEMO: '',
      PARLEY_LOG_LEVEL: '',
    };
    expect(loadConfig(blank)).toEqual(loadConfig({}));
    expect(loadConfig({ PORT: ' ', HOST: '  ', DATABASE_URL: ' ' })).toEqual(loadConfig({}));
  });

  it('ignores variables it does not know', () => {
    expect(loadConfig({ PATH: '/usr/bin', PORT_FORWARD: 'x' })).toEqual(loadConfig({}));
  });

  it.each([
    ['PORT', 'abc'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['PORT', '80.5'],
    ['PORT', '0x50'],
    ['PORT', '1e3'],
    ['DATABASE_URL', 'mysql://x'],
    ['DATABASE_URL', 'not a url'],
    ['DATABASE_POOL_SIZE', '0'],
    ['DATABASE_POOL_SIZE', 'ten'],
    ['DATABASE_POOL_SIZE', '501'],
    ['DATABASE_POOL_MIN', '11'],
    ['DATABASE_POOL_TIMEOUT_MS', '50'],
    ['DATABASE_REPLICA_URLS', 'postgres://replica/parley'],
    ['DATABASE_REPLICA_URLS', 'mysql://replica/parley'],
    ['PARLEY_REPLICA_MAX_LAG_MS', '99'],
    ['PARLEY_PERSISTED_ONLY', 'true'],
    ['PARLEY_GET_MAX_AGE_S', '-5'],
    ['PARLEY_ADMIN_TOKEN', 'too-short'],
    ['PARLEY_ADMIN_TOKEN', 'no-prefix-0123456789abcdef0123'],
    ['PARLEY_DEMO', 'maybe'],
    ['REDIS_URL', 'http://localhost:6379'],
    ['REDIS_URL', 'redis+sentinel://sentinel-a:26379,sentinel-b:26379'],
    ['REDIS_URL', 'redis+sentinel://sentinel-a:port/mymaster'],
    ['PARLEY_REDIS_PREFIX', 'has space'],
    ['PARLEY_CACHE_L1_MAX_MB', '0'],
    ['PARLEY_REDIS_TIMEOUT_MS', 'fast'],
    ['PARLEY_TYPING_TTL_MS', '99'],
    ['PARLEY_TYPING_TTL_MS', '5s'],
    ['PARLEY_WS_KEEPALIVE_MS', '-1'],
    ['PARLEY_WS_KEEPALIVE_MS', '600001'],
    ['PARLEY_LOG_LEVEL', 'verbose'],
    ['PARLEY_ANSWER_ENGINE', 'gpt'],
    ['PARLEY_ANSWER_TTL_S', '0'],
    ['PARLEY_ASSISTANT_TYPING_DELAY_MS', '60001'],
    ['PARLEY_SEARCH_BATCH_MS', '1001'],
    ['PARLEY_LLM_BASE_URL', 'ftp://models.internal'],
    ['PARLEY_LLM_BASE_URL', 'not a url'],
    ['PARLEY_LLM_TIMEOUT_MS', '50'],
    ['PARLEY_LLM_MAX_RETRIES', '11'],
    ['PARLEY_LLM_BREAKER_FAILURES', '0'],
    ['PARLEY_METRICS', 'on'],
    ['PARLEY_SLOW_MS', '1s'],
    ['OTEL_EXPORTER_OTLP_ENDPOINT', 'collector:4318'],
    ['OTEL_SDK_DISABLED', 'sometimes'],
    ['PARLEY_MAX_DEPTH', '0'],
    ['PARLEY_MAX_COST', 'lots'],
    ['PARLEY_MAX_TOKENS', '5'],
    ['PARLEY_MAX_BODY_KB', '0'],
    ['PARLEY_MAX_CONCURRENT_OPERATIONS', 'many'],
    ['PARLEY_INTROSPECTION', 'sometimes'],
    ['PARLEY_RATE_LIMIT_PRODUCT_PER_MIN', '-1'],
    ['PARLEY_WS_MESSAGES_PER_SEC', '1.5'],
    ['PARLEY_TRUST_PROXY', '11'],
    ['PARLEY_COMPRESSION_MIN_BYTES', '1k'],
    ['PARLEY_SHUTDOWN_MS', '600001'],
    ['NODE_ENV', 'staging'],
  ])('rejects %s=%s with a ConfigError naming the variable', (name, value) => {
    const error = configError({ [name]: value });
    expect(error.name).toBe('ConfigError');
    expect(error.message).toMatch(new RegExp(`^\\s+${name}: `, 'm'));
  });

  it('names every bad variable at once', () => {
    const error = configError({ PORT: 'abc', DATABASE_POOL_SIZE: '0', PARLEY_ADMIN_TOKEN: 'short' });
    for (const name of ['PORT', 'DATABASE_POOL_SIZE', 'PARLEY_ADMIN_TOKEN']) expect(error.message).toContain(`${name}: `);
    expect(error.message).not.toContain('DATABASE_URL');
  });

  it('does not echo the rejected admin token', () => {
    const error = configError({ PARLEY_ADMIN_TOKEN: 'hunter2-secret' });
    expect(error.message).not.toContain('hunter2-secret');
  });

  it('returns a deeply frozen object', () => {
    const config = loadConfig({ DATABASE_URL: 'postgres://localhost/parley', PARLEY_ADMIN_TOKEN: TOKEN });
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.database)).toBe(true);
    expect(() => {
      (config as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(() => {
      (config.database as { poolSize: number }).poolSize = 1;
    }).toThrow(TypeError);
    expect(config.port).toBe(4000);
    expect(config.database.poolSize).toBe(10);
  });

  it('does not freeze or change the environment it was given', () => {
    const env = { PORT: '8080', HOST: '' };
    loadConfig(env);
    expect(Object.isFrozen(env)).toBe(false);
    expect(env).toEqual({ PORT: '8080', HOST: '' });
  });
});
