import { Cluster, type ClusterOptions, Redis, type RedisOptions } from 'ioredis';
import { redactUrl } from './config.js';
import { isClusterUrl, parseClusterUrl } from './redis-url.js';

export type Role = 'worker' | 'producer';

/** A connection to one Redis server, or to a Redis Cluster (`redis+cluster://` URLs); BullMQ takes either. */
export type Connection = Redis | Cluster;

/**
 * ioredis connections as BullMQ recommends: workers retry every command forever
 * (`maxRetriesPerRequest: null`, required for blocking commands) and reconnect with backoff;
 * producers fail fast when Redis is down (no offline queue, one retry) so a command says so
 * instead of hanging. The password and TLS come from the URL (`rediss://` turns TLS on).
 */
export function redisOptions(role: Role, onRetry?: (attempt: number, delayMs: number) => void): RedisOptions {
  const retryStrategy = (attempt: number): number => {
    const delay = Math.min(200 * 2 ** Math.min(attempt, 6), 5_000);
    onRetry?.(attempt, delay);
    return delay;
  };
  return role === 'worker'
    ? { maxRetriesPerRequest: null, enableReadyCheck: true, retryStrategy, connectionName: 'numgrad-worker' }
    : { maxRetriesPerRequest: 1, enableOfflineQueue: false, connectTimeout: 3_000, retryStrategy, connectionName: 'numgrad-producer' };
}

/**
 * The same roles on a Redis Cluster: ioredis takes the reconnect policy and the offline queue at the
 * cluster level (`clusterRetryStrategy`, `enableOfflineQueue`) and the per-command settings for
 * every node under `redisOptions` (where BullMQ looks for `maxRetriesPerRequest: null`).
 */
export function clusterOptions(url: string, role: Role, onRetry?: (attempt: number, delayMs: number) => void): { nodes: { host: string; port: number }[]; options: ClusterOptions } {
  const target = parseClusterUrl(url, redactUrl(url));
  const { retryStrategy, enableOfflineQueue, ...perNode } = redisOptions(role, onRetry);
  const auth = { username: target.username, password: target.password, ...(target.tls ? { tls: {} } : {}) };
  return {
    nodes: target.nodes,
    options: {
      clusterRetryStrategy: retryStrategy as (times: number) => number,
      enableOfflineQueue: enableOfflineQueue ?? true,
      enableReadyCheck: true,
      redisOptions: { ...perNode, ...auth },
    },
  };
}

export function connect(url: string, role: Role, onRetry?: (attempt: number, delayMs: number) => void): Connection {
  let conn: Connection;
  if (isClusterUrl(url)) {
    const { nodes, options } = clusterOptions(url, role, onRetry);
    conn = new Cluster(nodes, { ...options, lazyConnect: false });
  } else {
    conn = new Redis(url, { ...redisOptions(role, onRetry), lazyConnect: false });
  }
  // Errors surface through commands and retry callbacks; an unhandled 'error' event must not crash
  // the process, and its message is redacted (ioredis may include the URL).
  conn.on('error', () => undefined);
  return conn;
}

/**
 * Whether Redis answers PING within `timeoutMs` (for --backend auto and /healthz). Never throws.
 * A Redis Cluster answers once ioredis has its slots and `cluster_state:ok` (its ready check).
 */
export async function redisAnswers(url: string, timeoutMs = 1_000): Promise<{ ok: boolean; error?: string }> {
  let conn: Connection | undefined;
  try {
    if (isClusterUrl(url)) {
      const { nodes, options } = clusterOptions(url, 'producer');
      conn = new Cluster(nodes, { ...options, lazyConnect: true, clusterRetryStrategy: () => null, redisOptions: { ...options.redisOptions, maxRetriesPerRequest: 0, connectTimeout: timeoutMs } });
    } else {
      conn = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, enableOfflineQueue: false, connectTimeout: timeoutMs, retryStrategy: () => null });
    }
    conn.on('error', () => undefined);
    await withTimeout(conn.connect(), timeoutMs);
    const pong = await withTimeout(conn.ping(), timeoutMs);
    return { ok: pong === 'PONG' };
  } catch (err) {
    return { ok: false, error: sanitize(err, url) };
  } finally {
    conn?.disconnect();
  }
}

/** `p`, or a rejection after `ms` (the timer is cleared either way). */
export function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<T>((_, rej) => (t = setTimeout(() => rej(new Error(`no answer within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}

/** An error message with the URL's credentials removed. */
export function sanitize(err: unknown, url?: string): string {
  let msg = err instanceof Error ? err.message : String(err);
  if (url !== undefined) {
    msg = msg.split(url).join(redactUrl(url));
    const pw = /^rediss?(?:\+cluster)?:\/\/[^:@/]*:([^@/]+)@/.exec(url)?.[1];
    if (pw) msg = msg.split(decodeURIComponent(pw)).join('***').split(pw).join('***');
  }
  return msg;
}

/**
 * Whether Redis refused the connection's credentials (a wrong or missing password, an unknown user).
 * Unlike an outage this does not pass: reconnecting with the same URL gets the same answer.
 */
export function isAuthError(err: unknown): boolean {
  const msg = err instanceof Error ? err.message : String(err);
  return /^(WRONGPASS|NOAUTH)\b/.test(msg);
}

/**
 * Resolves when the connection is ready; rejects with the last connection error after `timeoutMs`,
 * or with the first one when `failFast` (a producer's check: Redis down is an answer, not a wait).
 */
export function waitReady(conn: Connection, timeoutMs: number, failFast = false): Promise<void> {
  if (conn.status === 'ready') return Promise.resolve();
  return new Promise((resolve, reject) => {
    let last: unknown = new Error(`not ready within ${timeoutMs} ms`);
    const onErr = (e: unknown): void => {
      last = e;
      if (failFast) {
        cleanup();
        reject(e);
      }
    };
    const onReady = (): void => {
      cleanup();
      resolve();
    };
    const timer = setTimeout(() => {
      cleanup();
      reject(last);
    }, timeoutMs);
    const cleanup = (): void => {
      clearTimeout(timer);
      conn.off('ready', onReady);
      conn.off('error', onErr);
    };
    conn.on('ready', onReady);
    conn.on('error', onErr);
  });
}
