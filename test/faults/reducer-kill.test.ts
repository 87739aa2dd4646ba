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
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { type WorkerProcess, keysUnder, runCli, sleep, spawnWorker, uniquePrefix } from '../helpers/redis.js';
import { FAST_LOCKS, ITERS, TRAIN_FLAGS, activeJobs, eventsOf, faultFixture, metricsOf, probe, stepOf, stopOrKill, until } from './faults.js';

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

    const out = join(fx.dir, 'followed');
    const f = await runCli(['follow', run, '--out', out, '--json'], { prefix, url }, 180_000);
    expect(f.code, f.stderr).toBe(0);
    expect(JSON.parse(f.stdout.trimEnd().split('\n').pop() ?? '')).toMatchObject({ run, state: 'done', steps: ITERS });
    expect(readFileSync(join(out, 'params.npy')).equals(fx.reference.params), 'params.npy byte-identical to the local run').toBe(true);
    expect(metricsOf(join(out, 'metrics.jsonl'))).toEqual(fx.reference.metrics);
    const iters = (await c.lrange(`${prefix}:ng:run:${run}:metrics`, 0, -1)).map((l) => (JSON.parse(l) as { iter: number }).iter);
    expect(iters).toEqual(Array.from({ length: ITERS }, (_, i) => i));

    // A reduce job interrupted by the kill went back through the stalled check and was redone.
    const stalled = new Set(await eventsOf(c, prefix, 'reduce', 'stalled'));
    for (const k of kills) for (const id of k.interrupted) expect(stalled.has(id), `${id} recorded as stalled`).toBe(true);

    // Only the run's summary and BullMQ's bookkeeping remain (the last reducer job is removed just after the run is marked done).
    const allowed = new RegExp(`^${prefix}:(ng:run:${run}(:evals|:metrics|:params)?|ng:runs|(reduce|shards):(events|id|meta|stalled-check))$`);
    await until('only the summary left', async () => (await keysUnder(url, prefix)).every((k) => allowed.test(k)), 10_000, 100).catch(() => undefined);
    expect((await keysUnder(url, prefix)).filter((k) => !allowed.test(k))).toEqual([]);
    console.log(`[fault] reducer SIGKILL mid-run: ${JSON.stringify(kills)}; stalled reduce jobs ${stalled.size}`);
  }, 240_000);
});
