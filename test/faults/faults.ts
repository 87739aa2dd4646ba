/**
 * What the fault tests share: worker flags that shorten BullMQ's lock and stalled check (so a job of
 * a killed process is taken over within ~3 s instead of ~60 s), the training run every file compares
 * against its local twin, and small probes of the queues that read Redis without touching it.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect } from 'vitest';
import { type RedisServer, type WorkerProcess, keysUnder, runCli, startRedisServer, uniquePrefix } from '../helpers/redis.js';
import { metricsOf } from '../helpers/data.js';

/**
 * A lock lives 2 s unless renewed, and every worker looks for expired locks each second: a job
 * whose worker died goes back to wait within ~3 s (maxStalledCount 2 lets it stall twice).
 */
export const FAST_LOCKS = ['--lock-duration', '2000', '--stalled-interval', '1000'];

/** 100 iterations with epochs at 0, 50 and 99 (the last iteration is always an epoch). */
export const ITERS = 100;
export const TRAIN_FLAGS = ['--iters', String(ITERS), '--eval-every', '50', '--seed', '11'];

export { metricsOf };

export interface Reference {
  readonly params: Buffer;
  readonly metrics: Record<string, unknown>[];
}

/** `train --backend local` with TRAIN_FLAGS into `dir/local`: what an undisturbed run writes. */
export async function localTraining(dir: string, url: string): Promise<Reference> {
  const out = join(dir, 'local');
  const r = await runCli(['train', '--backend', 'local', '--threads', '2', ...TRAIN_FLAGS, '--out', out], { prefix: uniquePrefix(), url }, 150_000);
  expect(r.code, r.stderr).toBe(0);
  const metrics = metricsOf(join(out, 'metrics.jsonl'));
  expect(metrics).toHaveLength(ITERS);
  return { params: readFileSync(join(out, 'params.npy')), metrics };
}

/**
 * The setup of a fault file that restarts or watches Redis: a temp dir, a redis-server of its own with
 * an append-only file, and the local reference run, made before the file's tests and removed after.
 * The fields are filled when the file's tests run.
 */
export function faultFixture(tag: string): { readonly dir: string; readonly server: RedisServer; readonly reference: Reference } {
  const f = {} as { dir: string; server: RedisServer; reference: Reference };
  beforeAll(async () => {
    f.dir = mkdtempSync(join(tmpdir(), `numgrad-fault-${tag}-`));
    f.server = await startRedisServer({ appendonly: true });
    f.reference = await localTraining(f.dir, f.server.url);
  }, 150_000);
  afterAll(async () => {
    await f.server?.stop();
    if (f.dir !== undefined) rmSync(f.dir, { recursive: true, force: true });
  });
  return f;
}

/**
 * A connection for probes, once ready: one try per command and no offline queue, so a probe during
 * an outage fails at once instead of waiting; it reconnects every 100 ms.
 */
export async function probe(url: string): Promise<Redis> {
  const conn = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, retryStrategy: () => 100 });
  conn.on('error', () => undefined);
  await until('the probe connection', () => conn.status === 'ready', 10_000, 20);
  return conn;
}

/** Completed steps of a run, straight from its hash (0 before it exists). */
export async function stepOf(conn: Redis, prefix: string, run: string): Promise<number> {
  return Number((await conn.hget(`${prefix}:ng:run:${run}`, 'step')) ?? 0);
}

/** The ids BullMQ holds in a queue's active list right now. */
export function activeJobs(conn: Redis, prefix: string, queue: 'shards' | 'reduce'): Promise<string[]> {
  return conn.lrange(`${prefix}:${queue}:active`, 0, -1);
}

/** Events of one kind in a queue's events stream ("stalled": a job whose lock expired went back to wait). */
export async function eventsOf(conn: Redis, prefix: string, queue: 'shards' | 'reduce', kind: string): Promise<string[]> {
  const entries = (await conn.xrange(`${prefix}:${queue}:events`, '-', '+')) as [string, string[]][];
  const ids: string[] = [];
  for (const [, fields] of entries) {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
    if (f.event === kind) ids.push(f.jobId);
  }
  return ids;
}

/** Polls `cond` every `everyMs` until it holds; fails the test with `what` after `timeoutMs`. */
export async function until(what: string, cond: () => Promise<boolean> | boolean, timeoutMs = 60_000, everyMs = 50): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Whether a worker process is still running. */
export function alive(w: WorkerProcess): boolean {
  return w.child.exitCode === null && w.child.signalCode === null;
}

/** SIGTERM (a graceful close), and SIGKILL if it has not exited within `ms` (Redis down: close cannot finish). */
export async function stopOrKill(w: WorkerProcess, ms = 10_000): Promise<void> {
  if (!alive(w)) return;
  const t = setTimeout(() => w.child.kill('SIGKILL'), ms);
  try {
    await w.stop();
  } finally {
    clearTimeout(t);
  }
}

/**
 * `numgrad follow RUN --out` (a folder `outName` in fx.dir) to the end, then what every fault must leave: the run `done`, params.npy
 * byte-identical to the local run, the same metrics, iterations 0…ITERS−1 once each in Redis, and
 * nothing under the prefix but the run's summary and BullMQ's bookkeeping (the last reducer job is
 * removed just after the run is marked done, so that is polled briefly).
 */
export async function expectFollowedBitwise(c: Redis, fx: { readonly dir: string; readonly server: RedisServer; readonly reference: Reference }, prefix: string, run: string, outName = 'followed'): Promise<void> {
  const url = fx.server.url;
  const out = join(fx.dir, outName);
  const f = await runCli(['follow', run, '--out', out, '--json'], { prefix, url }, 180_000);
  expect(f.code, f.stderr).toBe(0);
  expect(JSON.parse(f.stdout.trimEnd().split('\n').pop() ?? '')).toMatchObject({ run, state: 'done', steps: ITERS });
  expect(readFileSync(join(out, 'params.npy')).equals(fx.reference.params), 'params.npy byte-identical to the local run').toBe(true);
  expect(metricsOf(join(out, 'metrics.jsonl'))).toEqual(fx.reference.metrics);
  const iters = (await c.lrange(`${prefix}:ng:run:${run}:metrics`, 0, -1)).map((l) => (JSON.parse(l) as { iter: number }).iter);
  expect(iters).toEqual(Array.from({ length: ITERS }, (_, i) => i));
  const allowed = new RegExp(`^${prefix}:(ng:run:${run}(:evals|:metrics|:params)?|ng:runs|(reduce|shards):(events|id|meta|stalled-check))$`);
  await until('only the summary left', async () => (await keysUnder(url, prefix)).every((k) => allowed.test(k)), 10_000, 100).catch(() => undefined);
  expect((await keysUnder(url, prefix)).filter((k) => !allowed.test(k))).toEqual([]);
}
