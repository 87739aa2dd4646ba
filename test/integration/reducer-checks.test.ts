/**
 * The reducer trusts nothing it assembles. Flows are built here by hand with plain BullMQ
 * (`FlowProducer`), as a foreign client would, and served by an in-process QueueWorker: a
 * `gradient`, `evaluation` or `train-step` parent whose children were computed on other inputs than
 * its own (another params version, H, batch, h, split, or job kind) fails at once and for good
 * (one attempt of three) naming the child and the field; overlapping children are accepted only
 * when the overlap is bitwise equal (an evaluation's only when they repeat a range exactly); the
 * honest overlaps give the same bytes as a plain cover.
 */
import { type FlowJob, FlowProducer, type Job, Queue, QueueEvents, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatherBatch } from '../../src/core/dataset.js';
import { fdGradient } from '../../src/core/fd-engine.js';
import { initParams } from '../../src/core/network.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { trainConfig } from '../../src/core/training.js';
import { createLogger } from '../../src/io/logger.js';
import { loadMnist } from '../../src/io/mnist.js';
import { batchKey, f64ToBase64, i32ToBase64 } from '../../src/queue/codec.js';
import { Keys } from '../../src/queue/keys.js';
import { QueueWorker } from '../../src/workers/queue-worker.js';
import { Store } from '../../src/queue/store.js';
import { bytesOf } from '../helpers/data.js';
import { cleanup, closeRedis, keysUnder, redisUrl, uniquePrefix } from '../helpers/redis.js';

const H = 10;
const COORDS = 795 * H + 10;
const P = initParams(H, new Rng(3));
const Q = initParams(H, new Rng(4));
const indices = miniBatchIndices(3, 0, 20, 60_000);
const otherIndices = miniBatchIndices(4, 0, 20, 60_000);
const batch = { kind: 'indices', count: 20, indices: i32ToBase64(indices) } as const;
const otherBatch = { kind: 'indices', count: 20, indices: i32ToBase64(otherIndices) } as const;

const prefix = uniquePrefix();
let url: string;
let conn: Redis;
let store: Store;
let worker: QueueWorker;
let flows: FlowProducer;
let events: QueueEvents;
let forger: Worker;
let unstored: Worker;
let reduceQueue: Queue;
let pv: string;
let qv: string;
let reference: Float64Array;
let n = 0;

beforeAll(async () => {
  url = await redisUrl();
  reference = fdGradient(P, gatherBatch(loadMnist('train'), indices), 1e-4);
  conn = new Redis(url, { maxRetriesPerRequest: null });
  store = new Store(conn, new Keys(prefix));
  pv = await store.putParams(P, 'reducer-checks');
  qv = await store.putParams(Q, 'reducer-checks');
  worker = new QueueWorker({ redisUrl: url, prefix, threads: 1, logger: createLogger('silent', 'reducer-checks', false) });
  await worker.ready();
  flows = new FlowProducer({ connection: conn, prefix });
  reduceQueue = new Queue('reduce', { connection: conn, prefix });
  events = new QueueEvents('reduce', { connection: new Redis(url, { maxRetriesPerRequest: null }), prefix });
  await events.waitUntilReady();
  // A foreign shard worker that lies: the right echo of what it was asked, values off by one ulp at
  // the start of its range (as a faulty or hostile worker on the same Redis could).
  forger = new Worker(
    'forged',
    async (job: Job) => {
      const d = job.data as { start: number; end: number };
      const data = reference.slice(d.start, d.end);
      data[0] = data[0] * (1 + Number.EPSILON);
      return { start: d.start, end: d.end, data: f64ToBase64(data), of: { job: 'fd-shard', params: pv, hidden: H, batch: batchKey(batch), h: 1e-4 } };
    },
    { connection: new Redis(url, { maxRetriesPerRequest: null }), prefix },
  );
  // A foreign shard worker that says its derivatives are stored (`stored: true`) and stores none
  // (mode 'missing') or a value one float64 short (mode 'short').
  unstored = new Worker(
    'unstored',
    async (job: Job) => {
      const d = job.data as { start: number; end: number; mode: 'missing' | 'short' };
      if (d.mode === 'short') await conn.set(store.keys.shardResult(String(job.id)), Buffer.alloc(8 * (d.end - d.start - 1)));
      return { start: d.start, end: d.end, stored: true, of: { job: 'fd-shard', params: pv, hidden: H, batch: batchKey(batch), h: 1e-4 } };
    },
    { connection: new Redis(url, { maxRetriesPerRequest: null }), prefix },
  );
}, 60_000);

afterAll(async () => {
  await forger?.close();
  await unstored?.close();
  await events?.close();
  await flows?.close();
  await reduceQueue?.close();
  await worker?.close();
  conn?.disconnect();
  await cleanup(prefix, url);
  expect(await keysUnder(url, prefix)).toEqual([]);
  await closeRedis();
});

const fd = (over: Record<string, unknown> = {}, start = 0, end = COORDS, queueName = 'shards'): FlowJob => ({
  name: 'fd-shard',
  queueName,
  data: { v: 1, params: pv, hidden: H, batch, h: 1e-4, start, end, ...over },
  opts: { jobId: `c${++n}`, removeOnComplete: true },
});
const ce = (over: Record<string, unknown> = {}, start = 0, end = 5000): FlowJob => ({
  name: 'ce-shard',
  queueName: 'shards',
  data: { v: 1, params: pv, hidden: H, split: 'test', start, end, ...over },
  opts: { jobId: `c${++n}`, removeOnComplete: true },
});

/** Adds one flow; resolves with the parent's outcome once it has completed or failed for good. */
async function runFlow(name: string, data: Record<string, unknown>, children: FlowJob[]): Promise<{ state: string; value?: unknown; reason?: string; attempts: number; children: string[] }> {
  const id = `p${++n}`;
  const node = await flows.add({ name, queueName: 'reduce', data, opts: { jobId: id, attempts: 3, backoff: { type: 'fixed', delay: 100 } }, children });
  let value: unknown;
  let reason: string | undefined;
  try {
    value = await node.job.waitUntilFinished(events, 60_000);
  } catch (err) {
    reason = err instanceof Error ? err.message : String(err);
  }
  // Parents that complete are kept (no removeOnComplete here), so the state is always readable.
  const job = await reduceQueue.getJob(id);
  return { state: job ? await job.getState() : 'gone', value, reason, attempts: job?.attemptsMade ?? -1, children: (node.children ?? []).map((c) => `${prefix}:${c.job.queueName}:${c.job.id}`) };
}

const gradient = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ v: 1, params: pv, hidden: H, batch, h: 1e-4, holder: `h${n}`, resultTtl: 60, ...over });
const evaluation = (over: Record<string, unknown> = {}): Record<string, unknown> => ({ v: 1, params: pv, hidden: H, split: 'test', holder: `h${n}`, ...over });
const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** The parent failed once (of 3 attempts allowed) with `reason`, which names child `k`. */
function expectRefused(r: Awaited<ReturnType<typeof runFlow>>, k: number, reason: (child: string) => RegExp): void {
  expect(r.state).toBe('failed');
  expect(r.reason).toMatch(reason(esc(r.children[k])));
  expect(r.attempts).toBe(1);
}

describe('a gradient parent checks each child against its own payload', () => {
  it('a child on another params version', async () => {
    const r = await runFlow('gradient', gradient(), [fd({}, 0, 4000), fd({ params: qv }, 4000, COORDS)]);
    expectRefused(r, 1, (c) => new RegExp(`^gradient: data\\.params of child ${c} must be ${pv.slice(0, 12)}… \\(the parent's\\), got "${qv.slice(0, 12)}…"$`));
  });
  it("the parent's own params differ from all its children's", async () => {
    const r = await runFlow('gradient', gradient({ params: qv }), [fd({}, 0, 4000), fd({}, 4000, COORDS)]);
    expect(r.state).toBe('failed');
    expect(r.reason).toMatch(new RegExp(`^gradient: data\\.params of child ${prefix}:shards:c\\d+ must be ${qv.slice(0, 12)}… \\(the parent's\\), got "${pv.slice(0, 12)}…"$`));
    expect(r.attempts).toBe(1);
  });
  it('a child with another h', async () => {
    const r = await runFlow('gradient', gradient(), [fd({}, 0, 4000), fd({ h: 2e-4 }, 4000, COORDS)]);
    expectRefused(r, 1, (c) => new RegExp(`^gradient: data\\.h of child ${c} must be 0\\.0001 \\(the parent's\\), got 0\\.0002$`));
  });
  it('a child on another batch', async () => {
    const r = await runFlow('gradient', gradient(), [fd({ batch: otherBatch }, 0, 4000), fd({}, 4000, COORDS)]);
    expectRefused(r, 0, (c) => new RegExp(`^gradient: data\\.batch of child ${c} must be "${esc(batchKey(batch))}" \\(the parent's\\), got "${esc(batchKey(otherBatch))}"$`));
  });
  it('a parent whose H is not its children\'s', async () => {
    const r = await runFlow('gradient', gradient({ hidden: 11 }), [fd({}, 0, 4000), fd({}, 4000, COORDS)]);
    expect(r.state).toBe('failed');
    expect(r.reason).toMatch(new RegExp(`^gradient: data\\.hidden of child ${prefix}:shards:c\\d+ must be 11 \\(the parent's\\), got 10$`));
  });
  it('a child of another kind (a ce-shard under a gradient)', async () => {
    const r = await runFlow('gradient', gradient(), [fd({}, 0, COORDS), ce({}, 0, 100)]);
    expectRefused(r, 1, (c) => new RegExp(`^gradient: job name of child ${c} must be "fd-shard" \\(the kind gradient assembles\\), got "ce-shard"$`));
  });
  it('an overlap that is not bitwise equal (a forged child), naming both children and the index', async () => {
    const r = await runFlow('gradient', gradient(), [fd({}, 0, 4000), fd({}, 3000, COORDS, 'forged')]);
    expectRefused(r, 1, (c) => new RegExp(`^gradient: data of child ${c} must be bitwise equal to child ${esc(r.children[0])}'s where their ranges \\[3000, ${COORDS}\\) and \\[0, 4000\\) overlap \\(index 3000: `));
  });
  it('an honest overlap (bitwise equal) is accepted: the gradient is the reference, bitwise', async () => {
    const r = await runFlow('gradient', gradient(), [fd({}, 0, 5000), fd({}, 3000, COORDS), fd({}, 0, 5000)]);
    expect(r.reason).toBeUndefined();
    const { key } = r.value as { key: string };
    const g = await store.takeResult(key);
    expect(g).not.toBeNull();
    expect(bytesOf(g as Float64Array).equals(bytesOf(reference))).toBe(true);
    // The children stored their derivatives binary under their job ids; the reducer deleted them.
    for (const child of r.children) expect(await conn.exists(store.keys.shardResult(child.slice(child.lastIndexOf(':') + 1)))).toBe(0);
  });
  it('a child that says its derivatives are stored, where nothing is stored', async () => {
    const r = await runFlow('gradient', gradient(), [fd({}, 0, 4000), fd({ mode: 'missing' }, 4000, COORDS, 'unstored')]);
    expectRefused(r, 1, (c) => new RegExp(`^decode: gradient: result of child ${c}: data\\.stored must be derivatives stored under ${esc(prefix)}:ng:shard:c\\d+, got "nothing there \\(expired or deleted\\)"$`));
  });
  it('a child whose stored derivatives are one value short', async () => {
    const r = await runFlow('gradient', gradient(), [fd({}, 0, 4000), fd({ mode: 'short' }, 4000, COORDS, 'unstored')]);
    const m = COORDS - 4000;
    expectRefused(r, 1, (c) => new RegExp(`^decode: gradient: result of child ${c}: data\\.stored must be ${m} float64 values \\(${8 * m} bytes\\) under ${esc(prefix)}:ng:shard:c\\d+, got "${8 * (m - 1)} bytes"$`));
  });
});

describe('an evaluation parent checks each child against its own payload', () => {
  let plain: { loss: number; accuracy: number; correct: number; count: number };
  it('a plain cover of the test split completes', async () => {
    const r = await runFlow('evaluation', evaluation(), [ce({}, 0, 5000), ce({}, 5000, 10_000)]);
    expect(r.reason).toBeUndefined();
    plain = r.value as typeof plain;
    expect(plain.count).toBe(10_000);
  });
  it('a child on another split', async () => {
    const r = await runFlow('evaluation', evaluation(), [ce({}, 0, 5000), ce({ split: 'train' }, 5000, 10_000)]);
    expectRefused(r, 1, (c) => new RegExp(`^evaluation: data\\.split of child ${c} must be "test" \\(the parent's\\), got "train"$`));
  });
  it('a child on another params version', async () => {
    const r = await runFlow('evaluation', evaluation(), [ce({ params: qv }, 0, 5000), ce({}, 5000, 10_000)]);
    expectRefused(r, 0, (c) => new RegExp(`^evaluation: data\\.params of child ${c} must be ${pv.slice(0, 12)}… \\(the parent's\\), got "${qv.slice(0, 12)}…"$`));
  });
  it('a child of another kind (an fd-shard under an evaluation)', async () => {
    const r = await runFlow('evaluation', evaluation(), [ce({}, 0, 10_000), fd({}, 0, 100)]);
    expectRefused(r, 1, (c) => new RegExp(`^evaluation: job name of child ${c} must be "ce-shard" \\(the kind evaluation assembles\\), got "fd-shard"$`));
  });
  it('a partial overlap is refused (correct counts cannot be split)', async () => {
    const r = await runFlow('evaluation', evaluation(), [ce({}, 0, 6000), ce({}, 5000, 10_000)]);
    expect(r.state).toBe('failed');
    expect(r.reason).toMatch(new RegExp(`^evaluation: range of child ${prefix}:shards:c\\d+ must be disjoint from its siblings' ranges or equal to one of them .*got "\\[(0, 6000|5000, 10000)\\)"$`));
    expect(r.attempts).toBe(1);
  });
  it('an exact repeat of a range counts once: the result equals the plain cover\'s', async () => {
    const r = await runFlow('evaluation', evaluation(), [ce({}, 0, 5000), ce({}, 5000, 10_000), ce({}, 0, 5000)]);
    expect(r.reason).toBeUndefined();
    expect(r.value).toEqual(plain);
    expect(Object.is((r.value as typeof plain).loss, plain.loss)).toBe(true);
  });
});

describe('a train-step parent checks each child against its run and its own payload', () => {
  it('a child with another h than the run\'s fails the step at once, naming the child', async () => {
    const run = `chk${n}`;
    const cfg = trainConfig({ hidden: H, batch: 20, iters: 3, seed: 3, evalEvery: 100 });
    expect(await store.createRun(run, { ...cfg, shards: 2 }, pv)).toBe(true);
    const seeded = { kind: 'seeded', seed: 3, step: 0, size: 20 };
    const r = await runFlow('train-step', { v: 1, run, step: 0, params: pv }, [fd({ batch: seeded }, 0, 4000), fd({ batch: seeded, h: 2e-4 }, 4000, COORDS)]);
    expectRefused(r, 1, (c) => new RegExp(`^train-step: data\\.h of child ${c} must be 0\\.0001 \\(the parent's\\), got 0\\.0002$`));
    expect((await store.getRun(run))?.step).toBe(0);
  });
  it('children on the batch of another step', async () => {
    const run = `chk${n}`;
    const cfg = trainConfig({ hidden: H, batch: 20, iters: 3, seed: 3, evalEvery: 100 });
    expect(await store.createRun(run, { ...cfg, shards: 2 }, pv)).toBe(true);
    const step1 = { kind: 'seeded', seed: 3, step: 1, size: 20 };
    const r = await runFlow('train-step', { v: 1, run, step: 0, params: pv }, [fd({ batch: step1 }, 0, 4000), fd({ batch: step1 }, 4000, COORDS)]);
    expect(r.state).toBe('failed');
    expect(r.reason).toMatch(new RegExp(`^train-step: data\\.batch of child ${prefix}:shards:c\\d+ must be "s:3:0:20" \\(the parent's\\), got "s:3:1:20"$`));
    expect((await store.getRun(run))?.step).toBe(0);
  });
});
