/**
 * The real-Redis fixture of the integration ring. Every test file gets its own key prefix and
 * deletes what it wrote; the Redis itself is, in order of preference:
 *   1. REDIS_URL, when set;
 *   2. 127.0.0.1:6379, when it answers PING (a shared instance: never flushed, only our keys go);
 *   3. a `redis-server` this process starts on a free port (no persistence), killed after the suite;
 *   4. a Redis container from @testcontainers/redis, when the package imports and Docker answers.
 * Otherwise `redisUrl()` rejects with what is missing.
 *
 * Also here: a Redis server of a test's own (for fault tests that stop, kill and restart it) and a
 * `numgrad worker` child process that resolves once it is online.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { redisAnswers } from '../../src/io/redis.js';
import { NODE_FLAGS } from '../../src/producer/node-flags.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The compiled CLI (the suite runs after `npm run build`), started with the flags of its shebang (NODE_FLAGS) as the `numgrad` bin starts it. */
export const CLI = join(ROOT, 'dist/src/producer/cli.js');
const LOCAL_URL = 'redis://127.0.0.1:6379';

/** Things to stop when the suite ends (a server or a container this process started). */
const owned: { stop: () => Promise<void>; killNow: () => void }[] = [];
let chosen: Promise<string> | undefined;

// A server left running would outlive the test process; `exit` handlers may only do sync work,
// so this is the last resort after closeRedis() (which the files call in afterAll).
process.once('exit', () => owned.forEach((o) => o.killNow()));

/** The Redis URL of the integration tests (chosen once per process; see the file comment). */
export function redisUrl(): Promise<string> {
  chosen ??= chooseRedis();
  return chosen;
}

async function chooseRedis(): Promise<string> {
  const fromEnv = process.env.REDIS_URL;
  if (fromEnv) return fromEnv;
  if ((await redisAnswers(LOCAL_URL, 1_000)).ok) return LOCAL_URL;
  if (hasRedisServerBinary()) {
    const s = await startRedisServer();
    owned.push({ stop: () => s.stop(), killNow: () => s.killNow() });
    return s.url;
  }
  const why: string[] = ['REDIS_URL is not set', `nothing answers PING at ${LOCAL_URL}`, 'no redis-server binary on PATH'];
  let mod: { RedisContainer: new (image: string) => { start(): Promise<{ getConnectionUrl(): string; stop(): Promise<unknown> }> } } | undefined;
  try {
    // A dev dependency that may be absent where tests run against a given Redis: import it lazily.
    mod = (await import('@testcontainers/redis')) as unknown as typeof mod;
  } catch (err) {
    why.push(`@testcontainers/redis does not import (${err instanceof Error ? err.message : String(err)})`);
  }
  if (mod !== undefined) {
    const docker = spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], { encoding: 'utf8', timeout: 10_000 });
    if (docker.status !== 0) {
      why.push(`Docker does not answer (${(docker.stderr || docker.error?.message || 'docker info failed').trim().split('\n')[0]})`);
    } else {
      try {
        const c = await new mod.RedisContainer('redis:7-alpine').start();
        owned.push({ stop: async () => void (await c.stop()), killNow: () => undefined });
        return c.getConnectionUrl();
      } catch (err) {
        why.push(`the Redis container did not start (${err instanceof Error ? err.message : String(err)})`);
      }
    }
  }
  throw new Error(`no Redis for the integration tests: ${why.join('; ')}. Set REDIS_URL, run Redis on ${LOCAL_URL}, or install redis-server.`);
}

function hasRedisServerBinary(): boolean {
  return spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).status === 0;
}

/** Stops the server or container this process started for the suite, if any (call in afterAll). */
export async function closeRedis(): Promise<void> {
  const all = owned.splice(0);
  await Promise.all(all.map((o) => o.stop()));
  chosen = undefined;
}

/** A prefix of this test's own: `ngt-` and 8 random hex digits (every prefix the same length, so no prefix is the start of another). */
export function uniquePrefix(): string {
  return `ngt-${randomBytes(4).toString('hex')}`;
}

/** Every key under `prefix` (SCAN, never KEYS), sorted. */
export async function keysUnder(url: string, prefix: string): Promise<string[]> {
  const conn = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    const keys: string[] = [];
    let cursor = '0';
    do {
      const [next, batch] = await conn.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      keys.push(...batch);
      cursor = next;
    } while (cursor !== '0');
    return [...new Set(keys)].sort();
  } finally {
    conn.disconnect();
  }
}

/**
 * Deletes every key under `prefix` and returns how many there were. On a shared Redis this is the
 * only clean-up allowed: other tests' keys (and anyone else's) are left alone — never FLUSHALL.
 */
export async function cleanup(prefix: string, url?: string): Promise<number> {
  const u = url ?? (await redisUrl());
  const keys = await keysUnder(u, prefix);
  if (keys.length === 0) return 0;
  const conn = new Redis(u, { maxRetriesPerRequest: 1 });
  try {
    for (let i = 0; i < keys.length; i += 500) await conn.del(...keys.slice(i, i + 500));
  } finally {
    conn.disconnect();
  }
  return keys.length;
}

/** A port nothing listens on right now (the OS picks it). */
export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as AddressInfo;
      srv.close(() => res(port));
    });
  });
}

export interface RedisServer {
  readonly url: string;
  readonly port: number;
  /** Its working directory (the append-only file lives here when `appendonly` is on). */
  readonly dir: string;
  /** SIGTERM and wait for exit (a clean shutdown; with appendonly the data survives a restart). */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit (a crash). */
  kill9(): Promise<void>;
  /** Starts it again on the same port and directory; resolves when it answers PING. */
  restart(): Promise<void>;
  /** SIGKILL without waiting (for `exit` handlers). */
  killNow(): void;
  /** What the server logged since it last started ("DB loaded from append only file" after a restart). */
  output(): string;
}

/**
 * A `redis-server` of the caller's own on 127.0.0.1, on a free port unless `port` is given. Without
 * `appendonly` nothing is persisted; with it every write goes to the append-only file, fsynced once a
 * second (`appendfsync everysec`, Redis' default and what a deployment would run), so a restart in
 * the same directory loads the data back — all but at most the last second's writes after a SIGKILL.
 * With `requirepass` the returned URL carries the password.
 */
export async function startRedisServer(opts: { appendonly?: boolean; port?: number; requirepass?: string } = {}): Promise<RedisServer> {
  const port = opts.port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'numgrad-redis-'));
  const url = opts.requirepass === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(opts.requirepass)}@127.0.0.1:${port}`;
  const persistence = opts.appendonly ? ['--appendonly', 'yes', '--appendfsync', 'everysec'] : ['--appendonly', 'no'];
  const auth = opts.requirepass === undefined ? [] : ['--requirepass', opts.requirepass];
  let child: ChildProcess | undefined;
  let log = '';
  const start = async (): Promise<void> => {
    log = '';
    const c = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', ...persistence, ...auth, '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    c.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    c.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const deadline = Date.now() + 10_000;
    while (!(await redisAnswers(url, 500)).ok) {
      if (c.exitCode !== null || Date.now() > deadline) {
        c.kill('SIGKILL');
        throw new Error(`redis-server on port ${port} did not start (exit ${c.exitCode}):\n${log.slice(-2000)}`);
      }
      await sleep(50);
    }
  };
  const waitExit = (sig: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (c === undefined || c.exitCode !== null || c.signalCode !== null) return Promise.resolve();
    return new Promise((res) => {
      c.once('exit', () => res());
      c.kill(sig);
    });
  };
  await start();
  let removed = false;
  const server: RedisServer = {
    url,
    port,
    dir,
    stop: async () => {
      await waitExit('SIGTERM');
      if (!removed) {
        removed = true;
        rmSync(dir, { recursive: true, force: true });
      }
    },
    kill9: () => waitExit('SIGKILL'),
    restart: async () => {
      await waitExit('SIGTERM');
      await start();
    },
    killNow: () => {
      if (child !== undefined && child.exitCode === null) child.kill('SIGKILL');
    },
    output: () => log,
  };
  return server;
}

export interface WorkerProcess {
  readonly child: ChildProcess;
  /** Everything it wrote to stdout and stderr so far (pino JSON lines at LOG_LEVEL=warn). */
  output(): string;
  /** SIGTERM (it finishes its active jobs) and wait for exit; resolves to the exit code. */
  stop(): Promise<number | null>;
  /** SIGKILL and wait for exit (a crashed worker: its jobs stall). */
  kill9(): Promise<void>;
}

/**
 * BullMQ workers connected to the shards queue under `prefix` (one per `numgrad worker` process),
 * asked over `opts` (e.g. TLS options for rediss://).
 */
export async function workersOnline(prefix: string, url: string, opts: RedisOptions = {}): Promise<number> {
  const conn = new Redis(url, { maxRetriesPerRequest: 1, ...opts });
  // skipMetasUpdate: an observer must not rewrite the queue's meta (its events cap among them).
  const q = new Queue('shards', { connection: conn, prefix, skipMetasUpdate: true });
  try {
    return await q.getWorkersCount();
  } finally {
    await q.close();
    conn.disconnect();
  }
}

/**
 * Starts `numgrad worker` as a child process (1 thread unless told) and resolves once it is online:
 * when the number of workers on the shards queue reaches the count before it plus one (start
 * workers one after another, or pass `expect` when starting several at once).
 */
export async function spawnWorker(prefix: string, url: string, opts: { threads?: number; extraArgs?: string[]; expect?: number; timeoutMs?: number; logLevel?: string } = {}): Promise<WorkerProcess> {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before the tests (npm test does)`);
  const expected = opts.expect ?? (await workersOnline(prefix, url)) + 1;
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, 'worker', '--threads', String(opts.threads ?? 1), ...(opts.extraArgs ?? [])], {
    cwd: ROOT,
    env: { ...process.env, NUMGRAD_PREFIX: prefix, REDIS_URL: url, LOG_LEVEL: opts.logLevel ?? 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => child.once('exit', (code) => res(code)));
  const running = (): boolean => child.exitCode === null && child.signalCode === null;
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  while ((await workersOnline(prefix, url)) < expected) {
    if (!running()) throw new Error(`numgrad worker exited (${child.exitCode ?? child.signalCode}) before it was online:\n${out.slice(-2000)}`);
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`numgrad worker was not online within ${opts.timeoutMs ?? 30_000} ms:\n${out.slice(-2000)}`);
    }
    await sleep(100);
  }
  return {
    child,
    output: () => out,
    stop: async () => {
      if (running()) child.kill('SIGTERM');
      return exited;
    },
    kill9: async () => {
      if (running()) child.kill('SIGKILL');
      await exited;
    },
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export interface CliProcess {
  readonly child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves at exit with the code (null when killed) and the signal. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** How a test starts the CLI: the queue's prefix and URL, more environment (`extra`), another user (`uid`). */
export interface CliEnv {
  readonly prefix: string;
  readonly url: string;
  readonly logLevel?: string;
  readonly extra?: NodeJS.ProcessEnv;
  readonly uid?: number;
}

/** Starts the compiled `numgrad` CLI with the queue's prefix and URL in its environment. */
export function startCli(args: string[], env: CliEnv): CliProcess {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before the tests (npm test does)`);
  const child = spawn(process.execPath, [...NODE_FLAGS, CLI, ...args], {
    cwd: ROOT,
    env: { ...process.env, NUMGRAD_PREFIX: env.prefix, REDIS_URL: env.url, LOG_LEVEL: env.logLevel ?? 'warn', ...env.extra },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...(env.uid !== undefined ? { uid: env.uid, gid: env.uid } : {}),
  });
  let out = '';
  let err = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('close', (code, signal) => res({ code, signal })));
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Runs the CLI to the end (SIGKILL after `timeoutMs`); its exit code, stdout and stderr. */
export async function runCli(args: string[], env: CliEnv, timeoutMs = 120_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  const p = startCli(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  try {
    const { code, signal } = await p.exited;
    return { code, signal, stdout: p.stdout(), stderr: p.stderr() };
  } finally {
    clearTimeout(timer);
  }
}
