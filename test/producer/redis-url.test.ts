/**
 * Redis Cluster URLs (`redis+cluster://host:port,host:port`): parsed into seed nodes and
 * credentials, refused with a message naming the option (and never showing the password), and a
 * cluster needs a {hash-tagged} prefix. Pure: nothing connects.
 */
import { describe, expect, it } from 'vitest';
import { buildConfig, redactUrl } from '../../src/io/config.js';
import { clusterOptions, sanitize } from '../../src/io/redis.js';
import { checkClusterPrefix, isClusterUrl, parseClusterUrl } from '../../src/io/redis-url.js';

describe('redis+cluster:// URLs', () => {
  it('parse into seed nodes, credentials and TLS', () => {
    expect(isClusterUrl('redis+cluster://a:7000')).toBe(true);
    expect(isClusterUrl('REDISS+CLUSTER://a:7000')).toBe(true);
    expect(isClusterUrl('redis://a:7000')).toBe(false);
    expect(parseClusterUrl('redis+cluster://10.0.0.1:7000,node-b:7001,[::1]:7002,node-c/', 'x')).toEqual({
      nodes: [{ host: '10.0.0.1', port: 7000 }, { host: 'node-b', port: 7001 }, { host: '::1', port: 7002 }, { host: 'node-c', port: 6379 }],
      username: undefined, password: undefined, tls: false,
    });
    expect(parseClusterUrl('rediss+cluster://app:p%40ss@h:1', 'x')).toEqual({ nodes: [{ host: 'h', port: 1 }], username: 'app', password: 'p@ss', tls: true });
    expect(parseClusterUrl('redis+cluster://:secret@h:1', 'x')).toMatchObject({ username: undefined, password: 'secret' });
  });

  it('are refused naming --redis / REDIS_URL, with the password redacted', () => {
    for (const bad of ['redis+cluster://:secret@h:1/2', 'redis+cluster://:secret@h:99999', 'redis+cluster://:secret@h:1,,h:2', 'redis+cluster://:secret@h:1?tls=1']) {
      expect(() => buildConfig({ redis: bad, prefix: '{p}' }, {}), bad).toThrow(/^config: --redis \/ REDIS_URL must be redis\+cluster:\/\/host:port/);
      try {
        buildConfig({ redis: bad, prefix: '{p}' }, {});
      } catch (err) {
        expect((err as Error).message).not.toContain('secret');
        expect((err as Error).message).toContain('redis+cluster://***@h');
      }
    }
    expect(redactUrl('rediss+cluster://u:pw@a:1,b:2')).toBe('rediss+cluster://***@a:1,b:2');
    expect(sanitize(new Error('connect to redis+cluster://:pw@a:1 failed: pw'), 'redis+cluster://:pw@a:1')).toBe('connect to redis+cluster://***@a:1 failed: ***');
  });

  it('need a {hash-tagged} prefix; a single server does not', () => {
    expect(() => checkClusterPrefix('redis+cluster://a:1', 'numgrad')).toThrow(/--prefix \/ NUMGRAD_PREFIX must be a \{hash-tagged\} prefix/);
    expect(() => checkClusterPrefix('redis+cluster://a:1', '{numgrad}')).not.toThrow();
    expect(() => checkClusterPrefix('redis://a:1', 'numgrad')).not.toThrow();
    expect(() => buildConfig({}, { REDIS_URL: 'redis+cluster://a:1' })).toThrow(/hash-tagged.*got "numgrad"/);
    expect(buildConfig({}, { REDIS_URL: 'redis+cluster://a:1', NUMGRAD_PREFIX: '{numgrad}' })).toMatchObject({ redisUrl: 'redis+cluster://a:1', prefix: '{numgrad}' });
  });

  it('keep the roles: workers retry every command forever, producers fail fast', () => {
    const w = clusterOptions('redis+cluster://:pw@a:1,b:2', 'worker');
    expect(w.nodes).toEqual([{ host: 'a', port: 1 }, { host: 'b', port: 2 }]);
    expect(w.options.redisOptions).toMatchObject({ maxRetriesPerRequest: null, password: 'pw' });
    expect(w.options.enableOfflineQueue).toBe(true);
    expect(typeof w.options.clusterRetryStrategy).toBe('function');
    const p = clusterOptions('redis+cluster://a:1', 'producer');
    expect(p.options.redisOptions).toMatchObject({ maxRetriesPerRequest: 1, connectTimeout: 3_000 });
    expect(p.options.enableOfflineQueue).toBe(false);
  });
});
