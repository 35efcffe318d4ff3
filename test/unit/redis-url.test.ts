import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { describeRedisUrl, parseClusterUrl, parseSentinelUrl } from '../../src/infra/redis.js';

describe('REDIS_URL forms', () => {
  it('reads a Sentinel URL: sentinels, master name, credentials, database, TLS', () => {
    expect(parseSentinelUrl('redis+sentinel://:s%40cret@10.0.0.1:26379,10.0.0.2:26380,[::1]:26381/mymaster/2?sentinelPassword=watch')).toEqual({
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: '10.0.0.2', port: 26380 },
        { host: '::1', port: 26381 },
      ],
      name: 'mymaster',
      tls: false,
      password: 's@cret',
      sentinelPassword: 'watch',
      db: 2,
    });
    expect(parseSentinelUrl('rediss+sentinel://app:pw@sentinel/cache')).toEqual({
      sentinels: [{ host: 'sentinel', port: 26379 }],
      name: 'cache',
      tls: true,
      username: 'app',
      password: 'pw',
      db: 0,
    });
  });

  it('reads a Cluster URL: its nodes, credentials, TLS', () => {
    expect(parseClusterUrl('redis+cluster://:s%40cret@10.0.0.1:7000,10.0.0.2:7001,[::1]:7002')).toEqual({
      nodes: [
        { host: '10.0.0.1', port: 7000 },
        { host: '10.0.0.2', port: 7001 },
        { host: '::1', port: 7002 },
      ],
      tls: false,
      password: 's@cret',
    });
    expect(parseClusterUrl('rediss+cluster://app:pw@node-a,node-b:6380/')).toEqual({
      nodes: [
        { host: 'node-a', port: 6379 },
        { host: 'node-b', port: 6380 },
      ],
      tls: true,
      username: 'app',
      password: 'pw',
    });
    expect(parseClusterUrl('redis+sentinel://s1:26379/m')).toBeUndefined();
    expect(parseSentinelUrl('redis+cluster://a:7000')).toBeUndefined();
  });

  it('refuses a Cluster URL with a database, a parameter or a bad port, saying why', () => {
    expect(() => parseClusterUrl('redis+cluster://a:7000/2')).toThrow(/no database number/);
    expect(() => parseClusterUrl('redis+cluster://a:7000?db=1')).toThrow(/takes no parameters \(got db\)/);
    expect(() => parseClusterUrl('redis+cluster://a:7000,b:0')).toThrow(/cluster node address b:0 is not host:port/);
    expect(() => parseClusterUrl('redis+cluster://')).toThrow(/redis\+cluster:\/\/\[\[user\]:password@\]host:port/);
  });

  it('leaves a plain URL to ioredis', () => {
    expect(parseSentinelUrl('redis://:pw@cache:6380/1')).toBeUndefined();
    expect(parseSentinelUrl('rediss://cache')).toBeUndefined();
  });

  it('refuses a Sentinel URL without a master name or with a bad port, naming the form', () => {
    expect(() => parseSentinelUrl('redis+sentinel://a:26379')).toThrow(/master-name/);
    expect(() => parseSentinelUrl('redis+sentinel://a:99999/m')).toThrow(/not host:port/);
  });

  it('describes where Redis is without the credentials (the start-up line prints it)', () => {
    expect(describeRedisUrl('redis://:secret@cache.internal:6380/2')).toBe('cache.internal:6380');
    const sentinel = describeRedisUrl('redis+sentinel://:secret@s1:26379,s2:26379/mymaster?sentinelPassword=other');
    expect(sentinel).toBe('sentinel s1:26379,s2:26379 master mymaster');
    expect(sentinel).not.toContain('secret');
    const cluster = describeRedisUrl('redis+cluster://:secret@n1:7000,n2:7001');
    expect(cluster).toBe('cluster n1:7000,n2:7001');
    expect(cluster).not.toContain('secret');
  });

  it('is accepted by the configuration', () => {
    const config = loadConfig({
      NODE_ENV: 'production',
      PARLEY_ADMIN_TOKEN: 'adm_0123456789abcdef0123',
      REDIS_URL: 'redis+sentinel://s1:26379/mymaster',
    });
    expect(config.redis.url).toBe('redis+sentinel://s1:26379/mymaster');
    const production = { NODE_ENV: 'production', PARLEY_ADMIN_TOKEN: 'adm_0123456789abcdef0123' };
    expect(loadConfig({ ...production, REDIS_URL: 'redis+cluster://n1:7000,n2:7001' }).redis.url).toBe('redis+cluster://n1:7000,n2:7001');
    expect(() => loadConfig({ ...production, REDIS_URL: 'redis+cluster://n1:7000/3' })).toThrow(/REDIS_URL.*no database number/s);
    expect(() => loadConfig({ ...production, REDIS_URL: 'memcached://n1' })).toThrow(/redis\+cluster:\/\/ URL/);
  });
});
