/**
 * Bad input, fuzzed: seeded fast-check payloads pushed straight into both queues with plain BullMQ
 * (`Queue.addBulk`, as any client could), with valid jobs queued between them. Every bad job must
 * fail at once (unrecoverable: one attempt of the three allowed) with a failedReason that names the
 * field that was broken; every valid job beside them must complete with exactly its numbers; the
 * worker (in-process, then a `numgrad worker` process) must still be serving afterwards; nothing may
 * pollute Object.prototype. Snapshots with NaN/±Infinity, bytes that are not whole float64, or a
 * length that fits no H are refused naming data.params — also through the producer's own
 * QueueClient.gradient. test/integration/queue-payloads.test.ts has the hand-written cases; this
 * file adds the generated ones.
 *
 * Repeatable: NUMGRAD_FUZZ_SEED (default below) fixes every input; NUMGRAD_FUZZ_JOBS and
 * NUMGRAD_FUZZ_CHILD_JOBS set how many bad jobs go to each worker.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTRACT_VERSION } from '../../src/core/contract.js';
import { gatherBatch } from '../../src/core/dataset.js';
import { fdGradient } from '../../src/core/fd-engine.js';
import { initParams, sampleLosses } from '../../src/core/network.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { createLogger } from '../../src/io/logger.js';
import { loadMnist } from '../../src/io/mnist.js';
import { QueueClient } from '../../src/producer/queue-client.js';
import { base64ToF64, i32ToBase64 } from '../../src/queue/codec.js';
import { Keys } from '../../src/queue/keys.js';
import { QueueWorker } from '../../src/workers/queue-worker.js';
import { Store } from '../../src/queue/store.js';
import { bytesOf } from '../helpers/data.js';
import { ROOT, type WorkerProcess, cleanup, closeRedis, keysUnder, redisUrl, sleep, spawnWorker, uniquePrefix } from '../helpers/redis.js';
import { BATCH, type BadJob, COORDS, HIDDEN, REASON, type Snapshots, badJobs, namedRoot } from './payloads.js';

const envInt = (name: string, dflt: number): number => (process.env[name] ? Number(process.env[name]) : dflt);
const SEED = envInt('NUMGRAD_FUZZ_SEED', 20_260_707);
const IN_PROCESS_JOBS = envInt('NUMGRAD_FUZZ_JOBS', 400);
const CHILD_JOBS = envInt('NUMGRAD_FUZZ_CHILD_JOBS', 120);
/** One valid job after every VALID_EVERY bad ones. */
const VALID_EVERY = 8;

const params = initParams(HIDDEN, new Rng(3));
let reference: Float64Array;
let url: string;
const figures: Record<string, unknown> = { seed: SEED };

beforeAll(async () => {
  url = await redisUrl();
  reference = fdGradient(params, gatherBatch(loadMnist('train'), BATCH), 1e-4);
});
afterAll(async () => {
  mkdirSync(join(ROOT, 'test-artifacts/reliability'), { recursive: true });
  writeFileSync(join(ROOT, 'test-artifacts/reliability/fuzz-queue.json'), `${JSON.stringify(figures, null, 2)}\n`);
  await closeRedis();
});

/** The valid snapshot and five the worker must refuse, stored under `prefix` as a producer (or anyone) could. */
async function storeSnapshots(prefix: string): Promise<Snapshots & { nan: string; inf: string; negInf: string; oddBytes: string; wrongLength: string; empty: string }> {
  const conn = new Redis(url, { maxRetriesPerRequest: 1 });
  const keys = new Keys(prefix);
  const store = new Store(conn, keys);
  try {
    const withValue = (at: number, v: number): Float64Array => {
      const p = Float64Array.from(params);
      p[at] = v;
      return p;
    };
    const valid = await store.putParams(params, 'fuzz');
    const nan = await store.putParams(withValue(17, NaN), 'fuzz');
    const inf = await store.putParams(withValue(COORDS - 1, Infinity), 'fuzz');
    const negInf = await store.putParams(withValue(7_850, -Infinity), 'fuzz');
    const wrongLength = await store.putParams(new Float64Array(100).fill(0.5), 'fuzz');
    // Raw bytes under a version of our choosing: nothing checks that a version is the hash of its bytes.
    const oddBytes = 'b'.repeat(64);
    const empty = 'c'.repeat(64);
    await conn.set(keys.params(oddBytes), Buffer.alloc(13, 7));
    await conn.set(keys.params(empty), Buffer.alloc(0));
    return { valid, refused: [nan, inf, negInf, wrongLength, oddBytes, empty], nan, inf, negInf, oddBytes, wrongLength, empty };
  } finally {
    conn.disconnect();
  }
}

interface Queued {
  readonly queue: 'shards' | 'reduce';
  readonly name: string;
  readonly data: unknown;
  readonly bad?: BadJob;
  readonly valid?: { kind: 'fd'; start: number; end: number } | { kind: 'ce'; seed: number };
}

interface Outcome {
  readonly q: Queued;
  readonly state: string;
  readonly reason?: string;
  readonly attemptsMade: number;
  readonly value: unknown;
}

/** Bad jobs from the seeded generator, with a valid fd-shard or ce-shard after every VALID_EVERY of them. */
function plan(snapshots: Snapshots, count: number, seed: number): Queued[] {
  const bad = fc.sample(badJobs(snapshots), { seed, numRuns: count });
  const ranges = fc.sample(fc.tuple(fc.integer({ min: 0, max: COORDS - 1 }), fc.integer({ min: 1, max: 300 })), { seed: seed + 1, numRuns: Math.ceil(count / VALID_EVERY) });
  const out: Queued[] = [];
  bad.forEach((b, i) => {
    out.push({ queue: b.queue, name: b.name, data: b.data, bad: b });
    if (i % VALID_EVERY === VALID_EVERY - 1) {
      const k = Math.floor(i / VALID_EVERY);
      if (k % 2 === 0) {
        const [start, len] = ranges[k];
        const end = Math.min(COORDS, start + len);
        const data = { v: CONTRACT_VERSION, params: snapshots.valid, hidden: HIDDEN, batch: { kind: 'indices', count: BATCH.length, indices: i32ToBase64(BATCH) }, h: 1e-4, start, end };
        out.push({ queue: 'shards', name: 'fd-shard', data, valid: { kind: 'fd', start, end } });
      } else {
        const data = { v: CONTRACT_VERSION, params: snapshots.valid, hidden: HIDDEN, split: 'batch', batch: { kind: 'seeded', seed: k, step: 0, size: 20 }, start: 0, end: 20 };
        out.push({ queue: 'shards', name: 'ce-shard', data, valid: { kind: 'ce', seed: k } });
      }
    }
  });
  return out;
}

/** Adds every job (3 attempts allowed, nothing removed) and waits until each has completed or failed. */
async function drain(prefix: string, jobs: Queued[], timeoutMs = 60_000): Promise<Outcome[]> {
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  const queues = { shards: new Queue('shards', { connection: conn, prefix }), reduce: new Queue('reduce', { connection: conn, prefix }) };
  try {
    const finished = async (): Promise<number> => {
      const [a, b] = await Promise.all([queues.shards.getJobCounts('completed', 'failed'), queues.reduce.getJobCounts('completed', 'failed')]);
      return a.completed + a.failed + b.completed + b.failed;
    };
    const before = await finished();
    const ids: { q: Queued; id: string; queue: Queue }[] = [];
    for (let i = 0; i < jobs.length; i += 50) {
      const chunk = jobs.slice(i, i + 50);
      for (const queueName of ['shards', 'reduce'] as const) {
        const part = chunk.filter((q) => q.queue === queueName);
        if (part.length === 0) continue;
        const added = await queues[queueName].addBulk(part.map((q) => ({ name: q.name, data: q.data, opts: { attempts: 3, backoff: { type: 'fixed', delay: 100 } } })));
        added.forEach((j, k) => ids.push({ q: part[k], id: String(j.id), queue: queues[queueName] }));
      }
    }
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const done = (await finished()) - before;
      if (done >= jobs.length) break;
      if (Date.now() > deadline) throw new Error(`only ${done} of ${jobs.length} jobs finished within ${timeoutMs} ms`);
      await sleep(100);
    }
    const out: Outcome[] = [];
    for (let i = 0; i < ids.length; i += 100) {
      const part = await Promise.all(
        ids.slice(i, i + 100).map(async ({ q, id, queue }) => {
          const job = await queue.getJob(id);
          if (job === undefined) return { q, state: 'missing', attemptsMade: 0, value: undefined };
          return { q, state: await job.getState(), reason: job.failedReason, attemptsMade: job.attemptsMade, value: job.returnvalue as unknown };
        }),
      );
      out.push(...part);
    }
    return out;
  } finally {
    await queues.shards.close();
    await queues.reduce.close();
    conn.disconnect();
  }
}

const train = loadMnist('train');

/** Every disagreement with the guarantees, as lines (empty when all hold), and counts per job kind. */
function judge(outcomes: Outcome[]): { problems: string[]; byName: Record<string, number>; byRoot: Record<string, number> } {
  const problems: string[] = [];
  const byName: Record<string, number> = Object.create(null) as Record<string, number>;
  const byRoot: Record<string, number> = Object.create(null) as Record<string, number>;
  for (const o of outcomes) {
    const { bad, valid } = o.q;
    if (bad !== undefined) {
      byName[`${bad.queue}/${bad.roots === 'any' ? 'junk' : bad.roots.includes('job name') ? 'bad name' : bad.name}`] = (byName[`${bad.queue}/${bad.roots === 'any' ? 'junk' : bad.roots.includes('job name') ? 'bad name' : bad.name}`] ?? 0) + 1;
      const reason = o.reason ?? '';
      const root = namedRoot(reason);
      if (root !== undefined) byRoot[root] = (byRoot[root] ?? 0) + 1;
      const shape = bad.roots === 'any' ? /^[\w-]+: (data|job name)\b[^\n]* must be / : REASON;
      const named = bad.roots === 'any' || (root !== undefined && bad.roots.includes(root));
      if (o.state !== 'failed' || o.attemptsMade !== 1 || !shape.test(reason) || !named) {
        problems.push(`${bad.queue}/${JSON.stringify(bad.name).slice(0, 40)} [${bad.what}] → ${o.state} after ${o.attemptsMade} attempt(s): ${JSON.stringify(reason.slice(0, 200))} (may name: ${bad.roots === 'any' ? 'any' : bad.roots.join(', ')})`);
      }
    } else if (valid !== undefined) {
      if (o.state !== 'completed') {
        problems.push(`valid ${o.q.name} ${JSON.stringify(valid)} → ${o.state}: ${o.reason}`);
        continue;
      }
      if (valid.kind === 'fd') {
        const v = o.value as { start: number; end: number; data: string };
        const same = bytesOf(base64ToF64(v.data, 'data', valid.end - valid.start)).equals(bytesOf(reference.subarray(valid.start, valid.end)));
        if (!same) problems.push(`valid fd-shard [${valid.start}, ${valid.end}) is not bitwise its slice of the gradient`);
      } else {
        const v = o.value as { losses: string; correct: number };
        const want = sampleLosses(params, gatherBatch(train, miniBatchIndices(valid.seed, 0, 20, train.count)));
        if (!bytesOf(base64ToF64(v.losses, 'losses', 20)).equals(bytesOf(want.losses)) || v.correct !== want.correct) problems.push(`valid ce-shard of seed ${valid.seed} differs from sampleLosses`);
      }
    }
  }
  return { problems, byName, byRoot };
}

describe('fuzzed payloads on an in-process QueueWorker', () => {
  const prefix = uniquePrefix();
  let worker: QueueWorker;
  let snaps: Awaited<ReturnType<typeof storeSnapshots>>;
  const protoBefore = Object.getOwnPropertyNames(Object.prototype).sort();

  beforeAll(async () => {
    worker = new QueueWorker({ redisUrl: url, prefix, threads: 1, logger: createLogger('silent', 'fuzz', false) });
    await worker.ready();
    snaps = await storeSnapshots(prefix);
  });
  afterAll(async () => {
    await worker?.close();
    await cleanup(prefix, url);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it(`${IN_PROCESS_JOBS} seeded bad payloads each fail once naming the field; the valid jobs between them complete with exactly their numbers`, async () => {
    const t0 = performance.now();
    const jobs = plan(snaps, IN_PROCESS_JOBS, SEED);
    const outcomes = await drain(prefix, jobs);
    const { problems, byName, byRoot } = judge(outcomes);
    const valid = outcomes.filter((o) => o.q.valid !== undefined).length;
    figures.inProcess = { bad: IN_PROCESS_JOBS, valid, seconds: Number(((performance.now() - t0) / 1000).toFixed(1)), byName, byRoot };
    console.info(`fuzz (in-process worker): ${IN_PROCESS_JOBS} bad + ${valid} valid jobs, seed ${SEED}; fields named: ${JSON.stringify(byRoot)}`);
    expect(problems).toEqual([]);
    expect(valid).toBeGreaterThan(IN_PROCESS_JOBS / VALID_EVERY - 1);
  }, 90_000);

  it('NaN/±Infinity parameters, bytes that are not whole float64 and a length that fits no H are refused naming data.params', async () => {
    const shard = (version: string) => ({ v: 1, params: version, hidden: HIDDEN, batch: { kind: 'indices', count: 20, indices: i32ToBase64(BATCH) }, h: 1e-4, start: 0, end: 10 });
    const ce = (version: string) => ({ v: 1, params: version, hidden: HIDDEN, split: 'test', start: 0, end: 10 });
    const cases: [string, RegExp][] = [
      [snaps.nan, /^shard: data\.params\[17\] must be a finite number in the stored snapshot, got NaN$/],
      [snaps.inf, new RegExp(`^shard: data\\.params\\[${COORDS - 1}\\] must be a finite number in the stored snapshot, got Infinity$`)],
      [snaps.negInf, /^shard: data\.params\[7850\] must be a finite number in the stored snapshot, got -Infinity$/],
      [snaps.oddBytes, /^shard: data\.params must be a snapshot of whole float64 values \(a multiple of 8 bytes\), got "13 bytes"$/],
      [snaps.wrongLength, /^shard: data\.params must be a snapshot of 795·H \+ 10 float64 values, got "100 values"$/],
      [snaps.empty, /^shard: data\.params must be a snapshot of 795·H \+ 10 float64 values, got "0 values"$/],
    ];
    const jobs: Queued[] = cases.flatMap(([v]) => [
      { queue: 'shards' as const, name: 'fd-shard', data: shard(v) },
      { queue: 'shards' as const, name: 'ce-shard', data: ce(v) },
    ]);
    jobs.push({ queue: 'shards', name: 'fd-shard', data: shard(snaps.valid), valid: { kind: 'fd', start: 0, end: 10 } });
    const outcomes = await drain(prefix, jobs);
    cases.forEach(([, reason], k) => {
      for (const o of outcomes.slice(2 * k, 2 * k + 2)) {
        expect(o.state).toBe('failed');
        expect(o.attemptsMade).toBe(1);
        expect(o.reason).toMatch(reason);
      }
    });
    expect(outcomes.at(-1)?.state).toBe('completed');
  });

  it("the producer's QueueClient.gradient with NaN parameters rejects with the shard's reason and leaves no snapshot", async () => {
    const client = new QueueClient({ redisUrl: url, prefix, timeoutMs: 30_000 });
    try {
      const bad = Float64Array.from(params);
      bad[5] = NaN;
      await expect(client.gradient(bad, BATCH, 1e-4, 2)).rejects.toThrow(/data\.params\[5\] must be a finite number/);
      // The worker's answer to the next gradient is still exact.
      const ok = await client.gradient(params, BATCH, 1e-4, 2);
      expect(bytesOf(ok.gradient).equals(bytesOf(reference))).toBe(true);
    } finally {
      await client.close();
    }
    const left = (await keysUnder(url, prefix)).filter((k) => k.includes(':ng:params:'));
    // Only the snapshots this file stored itself remain (and their holder sets).
    const own = new Set([snaps.valid, ...snaps.refused]);
    expect(left.filter((k) => !own.has(k.split(':ng:params:')[1].split(':')[0]))).toEqual([]);
  });

  it('the worker is still serving, and nothing polluted Object.prototype', async () => {
    const outcomes = await drain(prefix, [{ queue: 'shards', name: 'fd-shard', data: { v: 1, params: snaps.valid, hidden: HIDDEN, batch: { kind: 'indices', count: 20, indices: i32ToBase64(BATCH) }, h: 1e-4, start: 0, end: COORDS }, valid: { kind: 'fd', start: 0, end: COORDS } }]);
    expect(judge(outcomes).problems).toEqual([]);
    expect(worker.shardsDone).toBeGreaterThan(IN_PROCESS_JOBS / 2);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(protoBefore);
  });
});

describe('fuzzed payloads on a `numgrad worker` process', () => {
  const prefix = uniquePrefix();
  let proc: WorkerProcess;
  let snaps: Snapshots;

  beforeAll(async () => {
    proc = await spawnWorker(prefix, url, { threads: 1 });
    snaps = await storeSnapshots(prefix);
  }, 60_000);
  afterAll(async () => {
    expect(await proc?.stop()).toBe(0);
    await cleanup(prefix, url);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it(`${CHILD_JOBS} other seeded bad payloads: each fails naming the field, the valid ones complete, the process stays online and logs only 'job failed'`, async () => {
    const t0 = performance.now();
    const outcomes = await drain(prefix, plan(snaps, CHILD_JOBS, SEED + 100));
    const { problems, byRoot } = judge(outcomes);
    const valid = outcomes.filter((o) => o.q.valid !== undefined).length;
    figures.child = { bad: CHILD_JOBS, valid, seconds: Number(((performance.now() - t0) / 1000).toFixed(1)), byRoot };
    console.info(`fuzz (numgrad worker process): ${CHILD_JOBS} bad + ${valid} valid jobs, seed ${SEED + 100}`);
    expect(problems).toEqual([]);
    expect(proc.child.exitCode).toBeNull();
    expect(proc.child.signalCode).toBeNull();
    const lines = proc
      .output()
      .trim()
      .split('\n')
      .filter((l) => l !== '');
    const msgs = lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    expect(new Set(msgs)).toEqual(new Set(['job failed']));
    expect(msgs.length).toBe(CHILD_JOBS);
  }, 90_000);
});
