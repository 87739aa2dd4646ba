/**
 * A worker process is SIGKILLed while it computes shards of a gradient, and then the worker that
 * replaced it is SIGKILLed the same way: their jobs' locks expire, the next worker's stalled check
 * puts the jobs back, and `numgrad gradient --backend queue` (waiting all along) writes a .npy
 * byte-identical to `--backend local`. The gradient is of a 784-300-10 net on a batch of 1000, so a
 * shard takes seconds on one thread and the kill lands mid-computation; the test checks the killed
 * process held active shard jobs at that moment and that BullMQ recorded them as stalled.
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
/** Workers killed one after the other, each while it computes shards. */
const KILLS = 2;

let dir: string;
let server: RedisServer;
let local: Buffer;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'numgrad-fault-shard-'));
  server = await startRedisServer({ appendonly: true });
  const r = await runCli(['gradient', '--backend', 'local', '--threads', '2', ...GRADIENT, '--out', join(dir, 'local.npy')], { prefix: uniquePrefix(), url: server.url }, 120_000);
  expect(r.code, r.stderr).toBe(0);
  local = readFileSync(join(dir, 'local.npy'));
}, 120_000);

afterAll(async () => {
  await server?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('a worker process is SIGKILLed mid-shard, twice', () => {
  const prefix = uniquePrefix();
  const workers: WorkerProcess[] = [];
  let gradient: CliProcess | undefined;
  let conn: Redis | undefined;

  afterAll(async () => {
    if (gradient !== undefined && gradient.child.exitCode === null && gradient.child.signalCode === null) gradient.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => stopOrKill(w)));
    conn?.disconnect();
  });

  it('the next worker takes the stalled shards over and the gradient is byte-identical to the local one', async () => {
    const url = server.url;
    conn = await probe(url);
    const c = conn;
    workers.push(await spawnWorker(prefix, url, { extraArgs: FAST_LOCKS }));
    const out = join(dir, 'queue.npy');
    gradient = startCli(['gradient', '--backend', 'queue', ...GRADIENT, '--out', out, '--json'], { prefix, url });
    const killedWith: string[][] = [];
    for (let k = 0; k < KILLS; k++) {
      const victim = workers[workers.length - 1];
      // Active shards, and a moment for the computation to be under way (not merely fetched).
      await until('an active shard job', async () => (await activeJobs(c, prefix, 'shards')).length > 0, 60_000, 20);
      await sleep(300);
      const held = await activeJobs(c, prefix, 'shards');
      expect(held.length, 'shards active at the kill').toBeGreaterThan(0);
      await victim.kill9();
      killedWith.push(held);
      expect(gradient.child.exitCode, 'the gradient is still waiting').toBeNull();
      workers.push(await spawnWorker(prefix, url, { extraArgs: FAST_LOCKS }));
    }
    const { code } = await gradient.exited;
    expect(code, gradient.stderr()).toBe(0);
    expect(readFileSync(out).equals(local), 'gradient .npy byte-identical to --backend local').toBe(true);
    // Every shard a killed worker held went back through BullMQ's stalled check.
    const stalled = new Set(await eventsOf(c, prefix, 'shards', 'stalled'));
    for (const held of killedWith) for (const id of held) expect(stalled.has(id), `shard ${id} recorded as stalled`).toBe(true);
    expect(workers[workers.length - 1].output(), 'the surviving worker logged no warning').toBe('');
    console.log(`[fault] worker SIGKILL mid-shard: ${KILLS} kills, shards held at each kill ${JSON.stringify(killedWith.map((h) => h.length))}, stalled events ${stalled.size}`);
  }, 180_000);
});
