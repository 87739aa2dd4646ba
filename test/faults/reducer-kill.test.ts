/**
 * The worker process that runs the reduce queue is SIGKILLed mid-run, twice — each time while a
 * reduce job (a training step's θ − lr·g and its bookkeeping, or an epoch evaluation) is active in
 * it, when the test can catch one. Shards run on a separate `numgrad worker --no-reducer`; a new
 * reducer process replaces each killed one. The run, submitted with `train --detach` and followed
 * with `numgrad follow`, ends with params.npy byte-identical to `train --backend local` with the
 * same flags, the same loss at every iteration and the same epochs; the metrics list in Redis holds
 * each iteration once, in order; and nothing is left behind but the run's summary and BullMQ's
 * bookkeeping (no params snapshot whose holder died with the reducer).
 *
 * (SIGKILL of the process that *submitted* a run is covered by test/integration/queue-training.test.ts.)
 */
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { type WorkerProcess, runCli, sleep, spawnWorker, uniquePrefix } from '../helpers/redis.js';
import { FAST_LOCKS, TRAIN_FLAGS, activeJobs, eventsOf, expectFollowedBitwise, faultFixture, probe, stepOf, stopOrKill, until } from './faults.js';

/** Steps after which a reducer process is killed (at its next active reduce job). */
const KILL_AFTER = [20, 50];

const fx = faultFixture('reducer');

describe('the reducer process is SIGKILLed mid-run, twice', () => {
  const prefix = uniquePrefix();
  const workers: WorkerProcess[] = [];
  let conn: Redis | undefined;

  afterAll(async () => {
    await Promise.all(workers.map((w) => stopOrKill(w)));
    conn?.disconnect();
  });

  it('a new reducer takes over; the followed run ends bitwise equal to the local run, nothing leaked', async () => {
    const url = fx.server.url;
    conn = await probe(url);
    const c = conn;
    workers.push(await spawnWorker(prefix, url, { extraArgs: [...FAST_LOCKS, '--no-reducer'] }));
    let reducer = await spawnWorker(prefix, url, { extraArgs: FAST_LOCKS });
    workers.push(reducer);
    const run = 'reducer-crash';
    const sub = await runCli(['train', '--backend', 'queue', ...TRAIN_FLAGS, '--run-id', run, '--detach'], { prefix, url }, 60_000);
    expect(sub.code, sub.stderr).toBe(0);

    const kills: { step: number; reduceJobs: string[]; interrupted: string[] }[] = [];
    for (const after of KILL_AFTER) {
      await until(`step ${after}`, async () => (await stepOf(c, prefix, run)) >= after, 120_000);
      // Catch a reduce job in flight: they last milliseconds, so poll every 2 ms (kill anyway after 20 s).
      let held: string[] = [];
      const deadline = Date.now() + 20_000;
      while (held.length === 0 && Date.now() < deadline) {
        held = await activeJobs(c, prefix, 'reduce');
        if (held.length === 0) await sleep(2);
      }
      await reducer.kill9();
      const step = await stepOf(c, prefix, run);
      // Still active after the kill: the reducer died before it could complete the job.
      const stillActive = new Set(await activeJobs(c, prefix, 'reduce'));
      kills.push({ step, reduceJobs: held, interrupted: held.filter((id) => stillActive.has(id)) });
      reducer = await spawnWorker(prefix, url, { extraArgs: FAST_LOCKS });
      workers.push(reducer);
    }

    await expectFollowedBitwise(c, fx, prefix, run);

    // A reduce job interrupted by the kill went back through the stalled check and was redone.
    const stalled = new Set(await eventsOf(c, prefix, 'reduce', 'stalled'));
    for (const k of kills) for (const id of k.interrupted) expect(stalled.has(id), `${id} recorded as stalled`).toBe(true);

    console.log(`[fault] reducer SIGKILL mid-run: ${JSON.stringify(kills)}; stalled reduce jobs ${stalled.size}`);
  }, 240_000);
});
