/**
 * A run that cannot go on is marked failed by the workers themselves, at once, with the reason, and
 * `numgrad resume` takes it up again once the cause is fixed. No follower runs here: the run is
 * submitted with `train --detach`, and what the user sees comes from `numgrad runs`, the dashboard's
 * /api/runs and its /metrics. Then the snapshot is restored, the run resumed and followed: its
 * params.npy is byte-identical to the undisturbed local run.
 */
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, describe, expect, it } from 'vitest';
import { trainConfig } from '../../src/core/training.js';
import { type Dashboard, startDashboard } from '../../src/dashboard/server.js';
import { buildConfig } from '../../src/io/config.js';
import { Keys } from '../../src/queue/keys.js';
import { Store } from '../../src/queue/store.js';
import { type WorkerProcess, runCli, sleep, spawnWorker, uniquePrefix } from '../helpers/redis.js';
import { FAST_LOCKS, ITERS, TRAIN_FLAGS, expectFollowedBitwise, faultFixture, probe, stopOrKill, until } from './faults.js';

const fx = faultFixture('runfail');

/** NaN as the first float64 of a snapshot (quiet NaN, little-endian). */
const NAN = Buffer.from([0, 0, 0, 0, 0, 0, 0xf8, 0x7f]);

/**
 * Writes NaN over the first value of the run's current snapshot, only if the run is still running
 * at that version and the snapshot exists (SETRANGE on a missing key would create one); returns
 * the 8 bytes it replaced, or nil.
 */
const CORRUPT = `
if redis.call('HGET', KEYS[1], 'state') ~= 'running' or redis.call('HGET', KEYS[1], 'params') ~= ARGV[1] then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then return false end
local old = redis.call('GETRANGE', KEYS[2], 0, 7)
redis.call('SETRANGE', KEYS[2], 0, ARGV[2])
return old`;

interface ApiRun {
  id: string;
  state: string;
  step: number;
  error?: string;
}

describe('a run that fails is failed at once, visibly, and resumes bit for bit', () => {
  const prefix = uniquePrefix();
  const workers: WorkerProcess[] = [];
  let conn: Redis | undefined;
  let dashboard: Dashboard | undefined;

  afterAll(async () => {
    await dashboard?.close();
    await Promise.all(workers.map((w) => stopOrKill(w)));
    conn?.disconnect();
  });

  it('NaN bytes in the run snapshot: failed within 2 s with the reason everywhere; restored, resumed, byte-identical', async () => {
    const url = fx.server.url;
    conn = await probe(url);
    const c = conn;
    // Flows per step (--no-drive): a drive keeps θ in memory and reads a snapshot only when it starts.
    workers.push(await spawnWorker(prefix, url, { extraArgs: [...FAST_LOCKS, '--no-drive'] }));
    dashboard = await startDashboard({ config: buildConfig({ redis: url, prefix }, {}), port: 0, host: '127.0.0.1', allowActions: false, logger: pino({ level: 'silent' }) });
    const run = 'nan-snapshot';
    const runKey = `${prefix}:ng:run:${run}`;
    const sub = await runCli(['train', '--backend', 'queue', ...TRAIN_FLAGS, '--run-id', run, '--detach'], { prefix, url }, 60_000);
    expect(sub.code, sub.stderr).toBe(0);
    await until('step 30', async () => Number(await c.hget(runKey, 'step')) >= 30, 120_000);

    // The shards of a step may have loaded its snapshot before the NaN lands (then the step goes
    // through, its snapshot is released, and the next one is corrupted): try again until one fails.
    let corrupted: { version: string; step: number; at: number; old: Buffer } | undefined;
    for (let attempt = 0; attempt < 20 && (await c.hget(runKey, 'state')) === 'running'; attempt++) {
      const [version, step] = await c.hmget(runKey, 'params', 'step');
      // evalBuffer: the 8 bytes replaced, as bytes (ioredis' typings omit it; it exists for every command).
      const evalBuffer = (c as unknown as { evalBuffer(...args: (string | number | Buffer)[]): Promise<Buffer | null> }).evalBuffer.bind(c);
      const old = await evalBuffer(CORRUPT, 2, runKey, `${prefix}:ng:params:${version}`, version ?? '', NAN);
      if (old === null) continue;
      corrupted = { version: version ?? '', step: Number(step), at: Date.now(), old };
      await until('the run failed or moved on', async () => (await c.hget(runKey, 'state')) !== 'running' || Number(await c.hget(runKey, 'step')) > corrupted!.step, 10_000, 5);
    }
    expect(corrupted, 'a snapshot was corrupted').toBeDefined();
    const bad = corrupted as { version: string; step: number; at: number; old: Buffer };
    const h = await c.hgetall(runKey);
    expect(h.state).toBe('failed');
    // The shard's field-naming message, or the reducer's own (when the shards had loaded the snapshot before).
    expect(h.error).toMatch(/^(shard|train-step): data\.params\[0\] must be a finite number in the stored snapshot, got NaN/);
    expect(Number(h.step)).toBe(bad.step);
    const failedAfter = Number(h.updatedAt) - bad.at;
    expect(failedAfter, 'ms from the corruption to the run marked failed').toBeLessThanOrEqual(2_000);

    // numgrad runs, /api/runs and /metrics agree within 2 s of the failure being recorded.
    const d = dashboard;
    const deadline = Number(h.updatedAt) + 2_000;
    let agreeAt = 0;
    await until('the API and the metrics show the failure', async () => {
      const api = (await (await fetch(`${d.url}/api/runs`)).json()) as { runs: ApiRun[] };
      const metrics = await (await fetch(`${d.url}/metrics`)).text();
      const r = api.runs.find((x) => x.id === run);
      agreeAt = Date.now();
      return r?.state === 'failed' && r.error === h.error && /^numgrad_runs\{state="failed"\} 1$/m.test(metrics) && /^numgrad_runs\{state="running"\} 0$/m.test(metrics);
    }, 2_000, 50);
    expect(agreeAt).toBeLessThanOrEqual(deadline + 250);
    const listed = await runCli(['runs', '--json'], { prefix, url }, 30_000);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as ApiRun[]).find((x) => x.id === run)).toMatchObject({ state: 'failed', step: bad.step, error: h.error });
    const table = await runCli(['runs'], { prefix, url }, 30_000);
    expect(table.stdout.split('\n').find((l) => l.startsWith(`${run}\t`))?.split('\t')).toEqual([run, 'failed', `${bad.step}/${ITERS}`, expect.any(String), expect.any(String), expect.any(String), expect.any(String), h.error]);
    // It stays failed: nothing advances it (no follower, no retry).
    await sleep(1_500);
    expect(await c.hmget(runKey, 'state', 'step')).toEqual(['failed', String(bad.step)]);

    // Resuming before the cause is fixed is refused, naming the snapshot; nothing is enqueued.
    const early = await runCli(['resume', run], { prefix, url }, 30_000);
    expect(early.code).toBe(2);
    expect(early.stderr).toContain(`numgrad resume: run ${run}: the parameters of step ${bad.step} (${prefix}:ng:params:${bad.version}) must be the bytes of their version`);
    expect(await c.hget(runKey, 'state')).toBe('failed');

    // Restore the bytes, resume, follow: the run ends like the undisturbed one, bit for bit.
    await c.setrange(`${prefix}:ng:params:${bad.version}`, 0, bad.old);
    const resumed = await runCli(['resume', run], { prefix, url }, 60_000);
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toContain(`run ${run}: running again from step ${bad.step}/${ITERS}`);
    expect(await c.hget(runKey, 'error')).toBeNull();
    await expectFollowedBitwise(c, fx, prefix, run, 'resumed');
    console.log(`[fault] NaN snapshot at step ${bad.step}: failed ${failedAfter} ms after the corruption (${h.error}); resumed to done, params bitwise the local run's`);
  }, 300_000);

  it("a reducer's own error fails its run at once, whatever attempts says", async () => {
    const url = fx.server.url;
    const c = conn ?? (await probe(url));
    const store = new Store(c, new Keys(prefix));
    const run = 'reducer-error';
    expect(await store.createRun(run, { ...trainConfig({ iters: 10 }), shards: 4 }, '0'.repeat(64))).toBe(true);
    // A train-step with no shards: the reducer has nothing to assemble (a ValidationError, so UnrecoverableError).
    const qconn = new Redis(url, { maxRetriesPerRequest: null });
    const q = new Queue('reduce', { connection: qconn, prefix });
    try {
      const t0 = Date.now();
      await q.add('train-step', { v: 1, run, step: 0, params: '0'.repeat(64) }, { attempts: 3, backoff: { type: 'fixed', delay: 5_000 } });
      await until('the run failed', async () => (await c.hget(`${prefix}:ng:run:${run}`, 'state')) === 'failed', 2_000, 20);
      const h = await c.hgetall(`${prefix}:ng:run:${run}`);
      expect(Number(h.updatedAt) - t0).toBeLessThanOrEqual(2_000);
      expect(h.error).toMatch(/^train-step: children .*39760/);
    } finally {
      await q.close();
      qconn.disconnect();
    }
  }, 60_000);
});
