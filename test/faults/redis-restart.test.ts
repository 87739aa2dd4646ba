/**
 * Redis crashes mid-run and comes back from its append-only file (`appendfsync everysec`, same port,
 * same directory), twice in one run: the worker processes and the submitting `numgrad train` ride
 * out the outages and the run ends with params.npy byte-identical to `train --backend local` with the
 * same flags, the same loss at every iteration and the same epoch accuracies.
 *
 * A SIGKILL of redis-server alone loses nothing it acknowledged (its writes are in the OS's page
 * cache); what `everysec` may lose is the last second of writes when the machine itself goes down.
 * The second outage does that to the data: after the SIGKILL, the AOF is cut back to its size of one
 * second earlier, so Redis comes back in the past — steps advanced, shard completions and locks of
 * the last second are gone while the workers remember doing them. Those are redone from the state
 * Redis came back with, deterministically: the metrics list in Redis holds exactly one line per
 * iteration, 0 … iters−1, in order, and the final params are the local run's.
 *
 * Twice: with two worker processes (a train-step flow per step) and with one (which drives the
 * run's steps itself, committing a few at a time: a commit in flight at the kill is refused or lost
 * with the rest, and the drive goes on from the step Redis came back with).
 */
import { readFileSync, readdirSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { driveProgressOf } from '../../src/queue/flows.js';
import { type CliProcess, type WorkerProcess, sleep, spawnWorker, startCli, uniquePrefix } from '../helpers/redis.js';
import { FAST_LOCKS, ITERS, TRAIN_FLAGS, alive, faultFixture, metricsOf, probe, stepOf, stopOrKill, until } from './faults.js';

/** Steps at which Redis is SIGKILLed (each restart ~1.5 s later); the second loses its last second of writes. */
const OUTAGES = [
  { at: 25, loseLastSecond: false },
  { at: 60, loseLastSecond: true },
];
const DOWN_MS = 1_500;

/** The newest incremental AOF file (Redis 7 keeps the log in appendonlydir/ as base + incr files). */
function incrAof(dir: string): string {
  const d = join(dir, 'appendonlydir');
  const files = readdirSync(d).filter((f) => f.endsWith('.incr.aof'));
  files.sort((a, b) => Number(/\.(\d+)\.incr\.aof$/.exec(a)?.[1]) - Number(/\.(\d+)\.incr\.aof$/.exec(b)?.[1]));
  return join(d, files[files.length - 1]);
}

/** Samples the AOF's size every 50 ms, so an outage can cut it back to what it was a second ago. */
function watchAof(dir: string): { sizeAgo: (ms: number) => { file: string; size: number } | undefined; stop: () => void } {
  const samples: { t: number; file: string; size: number }[] = [];
  const timer = setInterval(() => {
    try {
      const file = incrAof(dir);
      samples.push({ t: Date.now(), file, size: statSync(file).size });
      if (samples.length > 200) samples.shift();
    } catch {
      // Mid-restart the directory may be in flux; the next sample will do.
    }
  }, 50);
  return {
    sizeAgo: (ms) => [...samples].reverse().find((x) => x.t <= Date.now() - ms),
    stop: () => clearInterval(timer),
  };
}

/** The most steps one commit made: 1 for train-step flows, a drive's largest `steps` from its progress events. */
async function largestCommit(c: Redis, prefix: string): Promise<number> {
  let most = 1;
  for (const [, f] of await c.xrange(`${prefix}:reduce:events`, '-', '+')) {
    const field = (name: string): string | undefined => (f.indexOf(name) >= 0 ? f[f.indexOf(name) + 1] : undefined);
    if (field('event') !== 'progress') continue;
    most = Math.max(most, driveProgressOf(field('jobId') ?? '', field('data'))?.steps ?? 1);
  }
  return most;
}

const fx = faultFixture('redis');

describe.each([
  { workers: 2, mode: 'flows' },
  { workers: 1, mode: 'a drive' },
])('Redis is SIGKILLed twice mid-run and restarted from its AOF ($workers worker processes: $mode)', ({ workers: n }) => {
  const prefix = uniquePrefix();
  const workers: WorkerProcess[] = [];
  let train: CliProcess | undefined;
  let conn: Redis | undefined;

  afterAll(async () => {
    if (train !== undefined && train.child.exitCode === null && train.child.signalCode === null) train.child.kill('SIGKILL');
    await Promise.all(workers.map((w) => stopOrKill(w)));
    conn?.disconnect();
  });

  it('workers and the submitter reconnect; the run ends bitwise equal to the local run, one metrics line per iteration', async () => {
    const url = fx.server.url;
    for (let k = 0; k < n; k++) workers.push(await spawnWorker(prefix, url, { threads: 2 / n, extraArgs: FAST_LOCKS }));
    const run = 'redis-crash';
    const out = join(fx.dir, `queue-${n}`);
    train = startCli(['train', '--backend', 'queue', ...TRAIN_FLAGS, '--run-id', run, '--out', out, '--json'], { prefix, url });
    conn = await probe(url);
    const c = conn;
    // No automatic rewrite: the cut must fall in the file that was being appended to a second ago.
    await c.config('SET', 'auto-aof-rewrite-percentage', '0');
    const aof = watchAof(fx.server.dir);
    const outages: { at: number; before: number; after: number; lostBytes: number; loaded: boolean }[] = [];
    for (const { at, loseLastSecond } of OUTAGES) {
      await until(`step ${at}`, async () => (await stepOf(c, prefix, run)) >= at, 120_000).catch(async (err: Error) => {
        // What the run and the workers were doing, for a run that stopped moving.
        throw new Error(`${err.message}: the run is at step ${await stepOf(c, prefix, run)}; the workers said:\n${workers.map((w) => w.output().slice(-4000)).join('\n')}`);
      });
      const before = await stepOf(c, prefix, run);
      const ago = aof.sizeAgo(1_000);
      await fx.server.kill9();
      let lostBytes = 0;
      if (loseLastSecond) {
        expect(ago, 'an AOF size sampled a second before the kill').toBeDefined();
        const file = ago?.file ?? '';
        expect(file).toBe(incrAof(fx.server.dir));
        lostBytes = statSync(file).size - (ago?.size ?? 0);
        truncateSync(file, ago?.size ?? 0);
      }
      await sleep(DOWN_MS);
      expect(workers.every(alive), 'the workers outlive the outage').toBe(true);
      expect(train.child.exitCode, `the submitter outlives the outage:\n${train.stderr()}`).toBeNull();
      await fx.server.restart();
      await until('the probe to reconnect', async () => c.status === 'ready', 10_000);
      await c.config('SET', 'auto-aof-rewrite-percentage', '0');
      const after = await stepOf(c, prefix, run);
      outages.push({ at, before, after, lostBytes, loaded: fx.server.output().includes('DB loaded from append only file') });
    }
    aof.stop();
    const { code } = await train.exited;
    const failures = workers.flatMap((w) => w.output().split('\n').filter((l) => l.includes('failed')));
    expect(code, `train exited with ${code}:\n${train.stderr()}\n${train.stdout()}\nthe workers' failures:\n${failures.join('\n')}`).toBe(0);
    const summary = JSON.parse(train.stdout().trimEnd().split('\n').pop() ?? '') as { state: string; steps: number };
    expect(summary).toMatchObject({ state: 'done', steps: ITERS });

    // Redis came back with the data: the plain kill lost no step; the cut one went back in time
    // (a second of writes at this pace is a step or more), but not to the start: not before where the
    // first outage left the run (a drive makes ~80 steps a second here: the cut can take it back there).
    for (const o of outages) expect(o.loaded, 'restarted from the append-only file').toBe(true);
    expect(outages[0].after).toBeGreaterThanOrEqual(outages[0].before);
    expect(outages[1].lostBytes).toBeGreaterThan(0);
    expect(outages[1].after).toBeGreaterThanOrEqual(outages[0].after);
    // `before` is read just ahead of the kill: a commit may still land in between (one step of a
    // flow; as many steps as the largest commit of a drive, read from its progress events).
    expect(outages[1].after).toBeLessThanOrEqual(outages[1].before + (await largestCommit(c, prefix)));
    expect(readFileSync(join(out, 'params.npy')).equals(fx.reference.params), 'params.npy byte-identical to the local run').toBe(true);
    expect(metricsOf(join(out, 'metrics.jsonl'))).toEqual(fx.reference.metrics);
    const lines = (await c.lrange(`${prefix}:ng:run:${run}:metrics`, 0, -1)).map((l) => (JSON.parse(l) as { iter: number }).iter);
    expect(lines).toEqual(Array.from({ length: ITERS }, (_, i) => i));
    // They did see the outage: each logged that it was retrying.
    for (const w of workers) expect(w.output()).toContain('Redis unreachable; retrying');
    console.log(`[fault] Redis SIGKILL + AOF restart: ${JSON.stringify(outages)}`);
  }, 240_000);
});
