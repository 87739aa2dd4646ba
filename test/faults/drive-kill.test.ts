/**
 * A worker alone on the queue drives the run's steps itself (a train-drive job: no flow per step),
 * and is SIGKILLed mid-run, twice, each time while its drive job is active; a new worker process
 * replaces each killed one. The drive job stalls, the stalled check hands it to the new worker, and
 * that worker goes on from the step Redis holds (the steps the dead one had computed but not
 * committed are computed again). The followed run ends with params.npy byte-identical to
 * `train --backend local`, the same loss at every iteration and the same epochs; the metrics list in
 * Redis holds each iteration once, in order; nothing is left but the run's summary and BullMQ's
 * bookkeeping.
 */
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { type WorkerProcess, runCli, spawnWorker, uniquePrefix } from '../helpers/redis.js';
import { FAST_LOCKS, ITERS, TRAIN_FLAGS, activeJobs, eventsOf, expectFollowedBitwise, faultFixture, probe, stepOf, stopOrKill, until } from './faults.js';

/** Steps after which the driving worker is killed. */
const KILL_AFTER = [20, 60];

const fx = faultFixture('drive');

describe('the worker driving a run is SIGKILLed mid-run, twice', () => {
  const prefix = uniquePrefix();
  const workers: WorkerProcess[] = [];
  let conn: Redis | undefined;

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopOrKill(w)));
    conn?.disconnect();
  });

  it('a new worker takes the stalled drive over from the step Redis holds; bitwise the local run, each iteration once, nothing leaked', async () => {
    const url = fx.server.url;
    conn = await probe(url);
    const c = conn;
    let worker = await spawnWorker(prefix, url, { threads: 2, extraArgs: FAST_LOCKS });
    workers.push(worker);
    const run = 'drive-crash';
    const sub = await runCli(['train', '--backend', 'queue', ...TRAIN_FLAGS, '--run-id', run, '--detach'], { prefix, url }, 60_000);
    expect(sub.code, sub.stderr).toBe(0);

    const kills: { step: number; drives: string[] }[] = [];
    for (const after of KILL_AFTER) {
      await until(`step ${after}`, async () => (await stepOf(c, prefix, run)) >= after, 120_000, 2);
      const drives = (await activeJobs(c, prefix, 'reduce')).filter((id) => id.startsWith(`run-${run}-drive-`));
      await worker.kill9();
      kills.push({ step: await stepOf(c, prefix, run), drives });
      expect(drives, `a drive job was active at step ≥ ${after}`).toHaveLength(1);
      expect(kills[kills.length - 1].step, 'killed mid-run').toBeLessThan(ITERS);
      worker = await spawnWorker(prefix, url, { threads: 2, extraArgs: FAST_LOCKS });
      workers.push(worker);
    }

    await expectFollowedBitwise(c, fx, prefix, run);

    // Each killed drive went back through the stalled check and was taken over.
    const stalled = new Set(await eventsOf(c, prefix, 'reduce', 'stalled'));
    for (const k of kills) for (const id of k.drives) expect(stalled.has(id), `${id} recorded as stalled`).toBe(true);

    console.log(`[fault] driving worker SIGKILL mid-run: ${JSON.stringify(kills)}; stalled reduce jobs ${stalled.size}`);
  }, 240_000);
});
