/**
 * SIGTERM/SIGINT of `numgrad worker`: an idle worker exits within 2 s even when its Redis is gone; a
 * busy one takes no new job, lets its active jobs finish for up to `--grace`, hands what is left back
 * to the queue, and exits; what it did not finish is redone by another worker — also when Redis
 * goes down during the shutdown. The work is one gradient of a 784-300-10 net on 1000 samples (4
 * shards of seconds each on one thread), checked byte for byte against `--backend local`.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, type RedisServer, type WorkerProcess, runCli, sleep, spawnWorker, startCli, startRedisServer, uniquePrefix } from '../helpers/redis.js';
import { FAST_LOCKS, activeJobs, eventsOf, probe, stopOrKill, until } from './faults.js';

/** 238,510 coordinates on 1000 samples: ~2 s a shard on an idle core. */
const GRADIENT = ['--hidden', '300', '--batch', '1000', '--seed', '4', '--shards', '4'];

let dir: string;
let server: RedisServer;
let local: Buffer | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'numgrad-fault-shutdown-'));
  server = await startRedisServer({ appendonly: true });
}, 60_000);

/** What `--backend local` writes for GRADIENT (made when a test first needs it). */
async function localGradient(): Promise<Buffer> {
  if (local === undefined) {
    const r = await runCli(['gradient', '--backend', 'local', '--threads', '2', ...GRADIENT, '--out', join(dir, 'local.npy')], { prefix: uniquePrefix(), url: server.url }, 180_000);
    expect(r.code, r.stderr).toBe(0);
    local = readFileSync(join(dir, 'local.npy'));
  }
  return local;
}

afterAll(async () => {
  await server?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Sends `signal` and resolves with the exit code and the milliseconds until the process was gone (SIGKILL after `killAfterMs`). */
async function signalled(w: WorkerProcess, signal: NodeJS.Signals, killAfterMs = 10_000): Promise<{ code: number | null; ms: number }> {
  const t0 = Date.now();
  const exited = new Promise<number | null>((res) => w.child.once('exit', (code) => res(code)));
  w.child.kill(signal);
  const t = setTimeout(() => w.child.kill('SIGKILL'), killAfterMs);
  try {
    const code = await exited;
    return { code, ms: Date.now() - t0 };
  } finally {
    clearTimeout(t);
  }
}

/** Jobs that went from active back to wait without stalling: handed back by their worker. */
async function handedBack(conn: Redis, prefix: string): Promise<string[]> {
  const entries = (await conn.xrange(`${prefix}:shards:events`, '-', '+')) as [string, string[]][];
  const ids: string[] = [];
  for (const [, fields] of entries) {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
    if (f.event === 'waiting' && f.prev === 'active') ids.push(f.jobId);
  }
  return ids;
}

describe('worker shutdown', () => {
  const workers: WorkerProcess[] = [];
  let gradient: CliProcess | undefined;
  let conn: Redis | undefined;

  afterAll(async () => {
    if (gradient !== undefined && gradient.child.exitCode === null && gradient.child.signalCode === null) gradient.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => stopOrKill(w, 3_000)));
    conn?.disconnect();
  });

  it('an idle worker whose Redis is gone exits within 2 s of SIGTERM, and of SIGINT', async () => {
    const own = await startRedisServer();
    try {
      const prefix = uniquePrefix();
      const a = await spawnWorker(prefix, own.url, { extraArgs: FAST_LOCKS, timeoutMs: 120_000 });
      const b = await spawnWorker(prefix, own.url, { extraArgs: FAST_LOCKS, timeoutMs: 120_000 });
      workers.push(a, b);
      await own.kill9();
      // Both have noticed: they are retrying.
      await until('the workers retrying', () => a.output().includes('Redis unreachable; retrying') && b.output().includes('Redis unreachable; retrying'), 10_000, 50);
      const term = await signalled(a, 'SIGTERM');
      const int = await signalled(b, 'SIGINT');
      console.log(`[fault] idle worker, Redis down: exit ${term.ms} ms after SIGTERM, ${int.ms} ms after SIGINT`);
      expect(term.ms, 'ms from SIGTERM to exit').toBeLessThanOrEqual(2_000);
      expect(int.ms, 'ms from SIGINT to exit').toBeLessThanOrEqual(2_000);
      expect([term.code, int.code]).toEqual([0, 0]);
    } finally {
      await own.stop();
    }
  }, 300_000);

  it('busy workers finish or hand back their jobs, take no new one, and the gradient is redone elsewhere bit for bit (Redis down in the last shutdown)', async () => {
    const url = server.url;
    const prefix = uniquePrefix();
    const reference = await localGradient();
    conn = await probe(url);
    const c = conn;
    const out = join(dir, 'queue.npy');

    // 1. One shard at a time, the default grace (30 s): its shard completes, nothing new is taken, it exits.
    const a = await spawnWorker(prefix, url, { extraArgs: [...FAST_LOCKS, '--concurrency', '1'], timeoutMs: 120_000 });
    workers.push(a);
    gradient = startCli(['gradient', '--backend', 'queue', ...GRADIENT, '--out', out, '--json'], { prefix, url });
    await until('a shard under way', async () => (await activeJobs(c, prefix, 'shards')).length === 1, 60_000, 20);
    await sleep(300);
    const [first] = await activeJobs(c, prefix, 'shards');
    const a1 = await signalled(a, 'SIGTERM', 60_000);
    expect(a1.code, a.output()).toBe(0);
    expect(await eventsOf(c, prefix, 'shards', 'completed')).toEqual([first]);
    expect(await eventsOf(c, prefix, 'shards', 'active'), 'no job taken after the signal').toEqual([first]);
    expect(await activeJobs(c, prefix, 'shards')).toEqual([]);

    // 2. Two shards at a time, a 0.3 s grace: what did not finish in it is handed back at once (not
    //    left to stall). A shard takes a second or more, so at least one is handed back; on a fast
    //    machine the other may complete within the grace, which is as good.
    const b = await spawnWorker(prefix, url, { extraArgs: [...FAST_LOCKS, '--grace', '0.3'], timeoutMs: 120_000 });
    workers.push(b);
    await until('two shards under way', async () => (await activeJobs(c, prefix, 'shards')).length === 2, 60_000, 20);
    await sleep(300);
    const heldB = (await activeJobs(c, prefix, 'shards')).sort();
    const b1 = await signalled(b, 'SIGTERM');
    expect(b1.code, b.output()).toBe(0);
    expect(b1.ms, 'ms from SIGTERM to exit with a 0.3 s grace').toBeLessThanOrEqual(2_500);
    const backB = (await handedBack(c, prefix)).sort();
    const doneB = (await eventsOf(c, prefix, 'shards', 'completed')).filter((id) => id !== first);
    expect(backB.length, 'shards handed back').toBeGreaterThan(0);
    expect([...backB, ...doneB].sort(), 'each held shard handed back or completed, once').toEqual(heldB);
    expect((await eventsOf(c, prefix, 'shards', 'active')).sort(), 'no job taken after the signal').toEqual([first, ...heldB].sort());
    expect(await eventsOf(c, prefix, 'shards', 'stalled')).toEqual([]);

    // 3. The same, and Redis is SIGKILLed just after the signal: the worker still exits within its
    //    grace and a bit; Redis comes back from its AOF and the jobs come back by the stalled check.
    const d = await spawnWorker(prefix, url, { extraArgs: [...FAST_LOCKS, '--grace', '1'], timeoutMs: 120_000 });
    workers.push(d);
    await until('two shards under way', async () => (await activeJobs(c, prefix, 'shards')).length === 2, 60_000, 20);
    await sleep(300);
    const heldD = (await activeJobs(c, prefix, 'shards')).sort();
    const exitD = signalled(d, 'SIGTERM');
    await server.kill9();
    const d1 = await exitD;
    expect(d1.ms, 'ms from SIGTERM to exit, Redis down').toBeLessThanOrEqual(3_500);
    expect(gradient.child.exitCode, 'the gradient is still waiting').toBeNull();
    await server.restart();
    workers.push(await spawnWorker(prefix, url, { extraArgs: FAST_LOCKS, timeoutMs: 120_000 }));

    const { code } = await gradient.exited;
    expect(code, gradient.stderr()).toBe(0);
    expect(readFileSync(out).equals(reference), 'gradient .npy byte-identical to --backend local').toBe(true);
    const stalled = new Set(await eventsOf(c, prefix, 'shards', 'stalled'));
    for (const id of heldD) expect(stalled.has(id), `shard ${id} redone after the stalled check`).toBe(true);
    console.log(`[fault] shutdown: finished 1 shard and exited in ${a1.ms} ms; grace 0.3 s: ${backB.length} of ${heldB.length} shards handed back, exit in ${b1.ms} ms; grace 1 s with Redis SIGKILLed: exit in ${d1.ms} ms (code ${d1.code}), ${heldD.length} shards redone after the restart`);
  }, 480_000);
});
