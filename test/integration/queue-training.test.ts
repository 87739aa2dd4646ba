/**
 * Training through the queue is the local training, bit for bit, and a run lives in Redis, not in
 * the process that submitted it. A seeded 200-iteration run (`train --backend queue`, the compiled
 * CLI) ends with params.npy byte-identical to `train --backend local` with the same flags, and the
 * same loss at every iteration and the same accuracies at every epoch, with one worker process and
 * with three; SIGKILL of the submitting `train` mid-run and `numgrad follow RUN` shows the run
 * finishing on its own with the same final params. After a run, only its summary and BullMQ's
 * bounded bookkeeping remain under the prefix, and the events streams are capped.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { QueueClient } from '../../src/producer/queue-client.js';
import { type CliProcess, type WorkerProcess, cleanup, closeRedis, keysUnder, redisUrl, runCli, sleep, spawnWorker, startCli, uniquePrefix } from '../helpers/redis.js';
import { metricsOf } from '../helpers/data.js';

/**
 * 200 iterations with epochs at 0, 100 and 199: 20–30 s a run on 2 idle cores (the file takes ~90 s);
 * the timeouts are generous for a machine busy with other suites.
 */
const FLAGS = ['--iters', '200', '--eval-every', '100', '--seed', '5'];
const ITERS = 200;
/** BullMQ trims its events streams approximately (XADD MAXLEN ~ 2000): whole stream nodes of ≤ 100 entries. */
const MAX_EVENTS = 2_100;

let url: string;
let dir: string;
/** The local backend's params.npy and metrics, the reference of every queue run. */
let localParams: Buffer;
let localMetrics: Record<string, unknown>[];

beforeAll(async () => {
  url = await redisUrl();
  dir = mkdtempSync(join(tmpdir(), 'numgrad-queue-training-'));
  const r = await runCli(['train', '--backend', 'local', '--threads', '2', ...FLAGS, '--out', join(dir, 'local')], { prefix: uniquePrefix(), url });
  expect(r.code, r.stderr).toBe(0);
  localParams = readFileSync(join(dir, 'local', 'params.npy'));
  localMetrics = metricsOf(join(dir, 'local', 'metrics.jsonl'));
  expect(localMetrics).toHaveLength(ITERS);
}, 180_000);

afterAll(async () => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  await closeRedis();
});

/** Asserts the files a queue run wrote equal the local run's: params bytes, every loss, every epoch. */
function expectSameAsLocal(out: string): void {
  expect(readFileSync(join(out, 'params.npy')).equals(localParams), 'params.npy byte-identical to the local run').toBe(true);
  expect(metricsOf(join(out, 'metrics.jsonl'))).toEqual(localMetrics);
}

/**
 * After a run is done its jobs are removed and its snapshots released: the only keys left are the
 * run's summary and BullMQ's bookkeeping. Polls briefly, since the last reducer job is removed just
 * after it marks the run done.
 */
async function expectOnlySummaryLeft(prefix: string, run: string): Promise<void> {
  const allowed = new RegExp(`^${prefix}:(ng:run:${run}(:evals|:metrics|:params)?|ng:runs|(reduce|shards):(events|id|meta|stalled-check))$`);
  let keys = await keysUnder(url, prefix);
  for (let k = 0; k < 100 && keys.some((key) => !allowed.test(key)); k++) {
    await sleep(100);
    keys = await keysUnder(url, prefix);
  }
  expect(keys.filter((key) => !allowed.test(key))).toEqual([]);
  for (const s of ['', ':evals', ':metrics', ':params']) expect(keys).toContain(`${prefix}:ng:run:${run}${s}`);
  expect(keys).toContain(`${prefix}:ng:runs`);
  const conn = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    for (const q of ['reduce', 'shards']) {
      expect(await conn.xlen(`${prefix}:${q}:events`), `${q} events stream capped`).toBeLessThanOrEqual(MAX_EVENTS);
    }
  } finally {
    conn.disconnect();
  }
}

async function eventsCaps(prefix: string): Promise<(string | null)[]> {
  const conn = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await Promise.all(['reduce', 'shards'].map((q) => conn.hget(`${prefix}:${q}:meta`, 'opts.maxLenEvents')));
  } finally {
    conn.disconnect();
  }
}

describe.each([
  { workers: 1, threads: 2 },
  { workers: 3, threads: 1 },
])('train --backend queue with $workers worker process(es) of $threads thread(s)', ({ workers: n, threads }) => {
  const prefix = uniquePrefix();
  const procs: WorkerProcess[] = [];

  beforeAll(async () => {
    for (let k = 0; k < n; k++) procs.push(await spawnWorker(prefix, url, { threads }));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await cleanup(prefix, url);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it('a seeded 200-iteration run ends with params.npy bitwise the local run, and the same metrics', async () => {
    const out = join(dir, `queue-${n}`);
    const r = await runCli(['train', '--backend', 'queue', ...FLAGS, '--run-id', 'r1', '--out', out, '--json'], { prefix, url }, 240_000);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${n} worker process(es) online`);
    const j = JSON.parse(r.stdout.trimEnd().split('\n').pop() ?? '') as { backend: string; run: string; state: string; steps: number };
    expect(j).toMatchObject({ backend: 'queue', run: 'r1', state: 'done', steps: ITERS });
    expectSameAsLocal(out);
    // One worker computes the steps itself (a train-drive job from step 1), three share flows.
    const events = await reduceEvents(prefix);
    expect(events.some((e) => e.jobId === 'run-r1-drive-1' && e.event === 'progress'), 'a drive ran').toBe(n === 1);
    expect(events.filter((e) => /^run-r1-step-\d+$/.test(e.jobId) && e.event === 'completed').length).toBe(n === 1 ? 1 : ITERS);
    await expectOnlySummaryLeft(prefix, 'r1');
    for (const p of procs) expect(p.output(), 'no worker logged a warning').toBe('');
  }, 250_000);
});

/** The reduce queue's events (jobId, event, returnvalue) in order. */
async function reduceEvents(prefix: string): Promise<{ jobId: string; event: string; returnvalue?: string }[]> {
  const conn = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return (await conn.xrange(`${prefix}:reduce:events`, '-', '+')).map(([, f]) => {
      const m = new Map<string, string>();
      for (let i = 0; i + 1 < f.length; i += 2) m.set(f[i], f[i + 1]);
      return { jobId: m.get('jobId') ?? '', event: m.get('event') ?? '', returnvalue: m.get('returnvalue') };
    });
  } finally {
    conn.disconnect();
  }
}

describe('one worker drives a run; a second worker that joins mid-run gets shards', () => {
  const prefix = uniquePrefix();
  const procs: WorkerProcess[] = [];

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await cleanup(prefix, url);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it('the drive hands the run back to train-step flows within a second of the join; the run ends bitwise the local run', async () => {
    procs.push(await spawnWorker(prefix, url, { threads: 1 }));
    const run = 'j1';
    const sub = await runCli(['train', '--backend', 'queue', ...FLAGS, '--run-id', run, '--detach'], { prefix, url }, 60_000);
    expect(sub.code, sub.stderr).toBe(0);
    const client = new QueueClient({ redisUrl: url, prefix });
    let joinedAt = 0;
    try {
      await client.ping();
      let step = 0;
      for (let k = 0; k < 1200 && step < 30; k++) {
        await sleep(50);
        step = (await client.run(run)).step;
      }
      expect(step).toBeGreaterThanOrEqual(30);
      expect(step, 'the join comes mid-run').toBeLessThan(ITERS - 40);
      procs.push(await spawnWorker(prefix, url, { threads: 1 }));
      joinedAt = (await client.run(run)).step;
    } finally {
      await client.close();
    }
    const out = join(dir, 'joined');
    const f = await runCli(['follow', run, '--out', out, '--json'], { prefix, url }, 240_000);
    expect(f.code, f.stderr).toBe(0);
    expectSameAsLocal(out);
    const events = await reduceEvents(prefix);
    const ended = events.find((e) => e.jobId === `${'run-' + run}-drive-1` && e.event === 'completed');
    const r = JSON.parse(ended?.returnvalue ?? '{}') as { from: number; to: number; end: string };
    expect(r).toMatchObject({ from: 1, end: 'handed-back' });
    // Handed back within the solo check's 500 ms (plus a step) of the second worker's join.
    expect(r.to).toBeGreaterThanOrEqual(joinedAt);
    expect(r.to).toBeLessThan(ITERS);
    const flows = events.filter((e) => e.event === 'completed' && /^run-j1-step-\d+$/.test(e.jobId)).map((e) => Number(e.jobId.split('-').pop()));
    expect(flows).toContain(r.to);
    expect(flows.length, 'two workers: a flow per step from the hand-back to the end').toBe(1 + ITERS - r.to);
    for (const p of procs) expect(p.output(), 'no worker logged a warning').toBe('');
  }, 300_000);
});

describe('the submitter is SIGKILLed mid-run; `numgrad follow` sees the run finish on its own', () => {
  const prefix = uniquePrefix();
  let worker: WorkerProcess | undefined;
  let train: CliProcess | undefined;

  afterAll(async () => {
    // A failed assertion before the kill must not leave the submitter running.
    if (train !== undefined && train.child.exitCode === null && train.child.signalCode === null) train.child.kill('SIGKILL');
    await worker?.stop();
    await cleanup(prefix, url);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it('submitted before any worker is online, killed at step ≥ 50, followed to the same final params', async () => {
    const run = 'k1';
    train = startCli(['train', '--backend', 'queue', ...FLAGS, '--run-id', run, '--out', join(dir, 'killed')], { prefix, url });
    // The producer comes first and says it waits; the worker that starts after it must not lift the
    // producer's cap on the events streams (each BullMQ Queue writes its own into the queue's meta).
    const submitter = train;
    for (let k = 0; k < 300 && !submitter.stderr().includes('no worker is online'); k++) await sleep(100);
    expect(submitter.stderr()).toContain('no worker is online');
    worker = await spawnWorker(prefix, url, { threads: 2 });
    expect(await eventsCaps(prefix)).toEqual(['2000', '2000']);

    const client = new QueueClient({ redisUrl: url, prefix });
    try {
      await client.ping();
      let step = 0;
      for (let k = 0; k < 1200 && step < 50; k++) {
        await sleep(100);
        step = (await client.run(run)).step;
      }
      expect(step).toBeGreaterThanOrEqual(50);
      submitter.child.kill('SIGKILL');
      expect((await submitter.exited).signal).toBe('SIGKILL');
      const mid = await client.run(run);
      expect(mid.state).toBe('running');
      expect(mid.step).toBeLessThan(ITERS);
    } finally {
      await client.close();
    }

    const out = join(dir, 'followed');
    const f = await runCli(['follow', run, '--out', out, '--json'], { prefix, url }, 240_000);
    expect(f.code, f.stderr).toBe(0);
    expect(JSON.parse(f.stdout.trimEnd().split('\n').pop() ?? '')).toMatchObject({ run, state: 'done', steps: ITERS });
    expectSameAsLocal(out);
    await expectOnlySummaryLeft(prefix, run);
    expect(worker.output(), 'the worker logged no warning').toBe('');
  }, 300_000);
});
