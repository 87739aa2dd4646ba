import { ValidationError } from '../core/errors.js';

/**
 * Where Redis is: one server (`redis://`, `rediss://`) or a Redis Cluster given by seed nodes
 * (`redis+cluster://[user:password@]host:port[,host:port…]`, `rediss+cluster://` for TLS). The
 * cluster form keeps cluster mode inside the one string every part of numgrad already passes on
 * (--redis, REDIS_URL, the environment of `numgrad up`'s children), so nothing else needs a switch.
 */
export interface ClusterTarget {
  readonly nodes: { host: string; port: number }[];
  readonly username?: string;
  readonly password?: string;
  readonly tls: boolean;
}

const CLUSTER_SCHEME = /^(rediss?)\+cluster:\/\//i;
const FIELD = '--redis / REDIS_URL';
const EXAMPLE = 'redis+cluster://host:port[,host:port…] (e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000)';

export function isClusterUrl(url: string): boolean {
  return CLUSTER_SCHEME.test(url);
}

/** The seed nodes and credentials of a `redis+cluster://` URL; throws a ValidationError naming the part that is wrong. */
export function parseClusterUrl(url: string, redacted: string): ClusterTarget {
  const m = CLUSTER_SCHEME.exec(url);
  if (m === null) throw new ValidationError('config', FIELD, EXAMPLE, redacted);
  let rest = url.slice(m[0].length);
  // A trailing "/" is allowed; a database number is not (a cluster has only database 0).
  if (rest.endsWith('/')) rest = rest.slice(0, -1);
  if (rest.includes('/') || rest.includes('?')) throw new ValidationError('config', FIELD, `${EXAMPLE}, without a /db or ?options (a Redis Cluster has database 0 only)`, redacted);
  const at = rest.lastIndexOf('@');
  let username: string | undefined;
  let password: string | undefined;
  if (at >= 0) {
    const userinfo = rest.slice(0, at);
    rest = rest.slice(at + 1);
    const colon = userinfo.indexOf(':');
    const user = decodeURIComponent(colon >= 0 ? userinfo.slice(0, colon) : userinfo);
    username = user === '' ? undefined : user;
    password = colon >= 0 ? decodeURIComponent(userinfo.slice(colon + 1)) : undefined;
  }
  const nodes = rest.split(',').map((hp) => {
    // host:port, or [ipv6]:port
    const n = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(\d{1,5}))?$/.exec(hp);
    const port = n?.[2] === undefined ? 6379 : Number(n[2]);
    if (n === null || port < 1 || port > 65535) throw new ValidationError('config', FIELD, `${EXAMPLE}; each node host:port`, redacted);
    return { host: n[1].replace(/^\[|\]$/g, ''), port };
  });
  return { nodes, username, password, tls: m[1].toLowerCase() === 'rediss' };
}

/**
 * On a Redis Cluster every key of a queue (and numgrad's own keys beside them) must hash to one
 * slot: BullMQ's scripts and numgrad's MULTI/EVAL touch several at once. A `{hash-tagged}` prefix
 * does that — Redis hashes only the part in braces.
 */
export function checkClusterPrefix(url: string, prefix: string): void {
  if (isClusterUrl(url) && !/^\{[^{}]+\}$/.test(prefix)) {
    throw new ValidationError('config', '--prefix / NUMGRAD_PREFIX', 'a {hash-tagged} prefix such as {numgrad} on a Redis Cluster (every key of a queue must be on one slot)', prefix);
  }
}
