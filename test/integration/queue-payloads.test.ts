/**
 * The worker's edge: any BullMQ client can push a job, so a malformed payload must fail at once
 * (unrecoverable: no retries, whatever `attempts` says) with a failedReason naming the field, and
 * the worker must go on to the next job. Jobs here are pushed with plain BullMQ
 * (`new Queue('shards').add(...)`), as a foreign client would, to an in-process QueueWorker and to
 * a `numgrad worker` process. A valid fd-shard built against a snapshot stored with Store.putParams
 * returns exactly its slice of the gradient. And `numgrad gradient --backend queue` with no worker
 * online says so on stderr instead of waiting silently.
 */
import { type Job, Queue, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTRACT_VERSION } from '../../src/core/contract.js';
import { gatherBatch } from '../../src/core/dataset.js';
import { fdGradient } from '../../src/core/fd-engine.js';
import { initParams } from '../../src/core/network.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { createLogger } from '../../src/io/logger.js';
import { loadMnist } from '../../src/io/mnist.js';
import { base64ToF64, i32ToBase64 } from '../../src/queue/codec.js';
import { Keys } from '../../src/queue/keys.js';
import { QueueWorker } from '../../src/workers/queue-worker.js';
import { Store } from '../../src/queue/store.js';
import { bytesOf } from '../helpers/data.js';
import { type WorkerProcess, cleanup, closeRedis, keysUnder, redisUrl, sleep, spawnWorker, startCli, uniquePrefix } from '../helpers/redis.js';

/** A small net (H = 10: 7960 coordinates) and batch (20 images), so a valid shard takes milliseconds. */
const HIDDEN = 10;
const COORDS = 795 * HIDDEN + 10;
const params = initParams(HIDDEN, new Rng(3));
const indices = miniBatchIndices(3, 0, 20, 60_000);
/** The whole gradient in this thread: every valid shard must return exactly its slice. */
let reference: Float64Array;

let url: string;
beforeAll(async () => {
  url = await redisUrl();
  reference = fdGradient(params, gatherBatch(loadMnist('train'), indices), 1e-4);
});
afterAll(() => closeRedis());

/** A client of the queues as any BullMQ program would be: Queue + QueueEvents, nothing of numgrad's. */
class ForeignClient {
  private readonly conns: Redis[] = [];
  readonly shards: Queue;
  readonly reduce: Queue;
  private readonly events: Record<'shards' | 'reduce', QueueEvents>;
  constructor(url: string, prefix: string) {
    const conn = (): Redis => {
      const c = new Redis(url, { maxRetriesPerRequest: null });
      this.conns.push(c);
      return c;
    };
    this.shards = new Queue('shards', { connection: conn(), prefix });
    this.reduce = new Queue('reduce', { connection: conn(), prefix });
    this.events = { shards: new QueueEvents('shards', { connection: conn(), prefix }), reduce: new QueueEvents('reduce', { connection: conn(), prefix }) };
  }
  async ready(): Promise<void> {
    await Promise.all(Object.values(this.events).map((e) => e.waitUntilReady()));
  }
  /** Adds a job with retries allowed (3 attempts) and waits until it completes or fails for good. */
  async run(queue: 'shards' | 'reduce', name: string, data: unknown): Promise<{ job: Job; state: string; value?: unknown; reason?: string }> {
    const q = queue === 'shards' ? this.shards : this.reduce;
    const added = await q.add(name, data, { attempts: 3, backoff: { type: 'fixed', delay: 200 } });
    let value: unknown;
    let reason: string | undefined;
    try {
      value = await added.waitUntilFinished(this.events[queue], 30_000);
    } catch (err) {
      reason = err instanceof Error ? err.message : String(err);
    }
    const job = (await q.getJob(String(added.id))) ?? added;
    return { job, state: await job.getState(), value, reason };
  }
  async close(): Promise<void> {
    await Promise.all(Object.values(this.events).map((e) => e.close()));
    await this.shards.close();
    await this.reduce.close();
    this.conns.forEach((c) => c.disconnect());
  }
}

/** Stores the net's params as a content-keyed snapshot, as the producer does; returns the version. */
async function storeParams(prefix: string): Promise<string> {
  const conn = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await new Store(conn, new Keys(prefix)).putParams(params, 'payload-tests');
  } finally {
    conn.disconnect();
  }
}

function validShard(version: string, start: number, end: number): Record<string, unknown> {
  return { v: CONTRACT_VERSION, params: version, hidden: HIDDEN, batch: { kind: 'indices', count: indices.length, indices: i32ToBase64(indices) }, h: 1e-4, start, end };
}

/** A valid fd-shard: its derivatives are exactly the slice [start, end) of the whole gradient, bitwise. */
async function expectValidShard(client: ForeignClient, version: string, start: number, end: number): Promise<void> {
  const r = await client.run('shards', 'fd-shard', validShard(version, start, end));
  expect(r.reason).toBeUndefined();
  expect(r.state).toBe('completed');
  const v = r.value as { start: number; end: number; data: string; loss?: number };
  expect([v.start, v.end]).toEqual([start, end]);
  expect(bytesOf(base64ToF64(v.data, 'data', end - start)).equals(bytesOf(reference.subarray(start, end)))).toBe(true);
  if (start === 0) expect(Number.isFinite(v.loss)).toBe(true);
}

interface BadCase {
  readonly title: string;
  readonly queue?: 'shards' | 'reduce';
  readonly name?: string;
  readonly data: (version: string) => unknown;
  readonly reason: RegExp;
}

const without = (o: Record<string, unknown>, key: string): Record<string, unknown> => {
  const { [key]: _drop, ...rest } = o;
  return rest;
};

const BAD: BadCase[] = [
  { title: 'hidden as a string', data: (v) => ({ ...validShard(v, 0, 100), hidden: '10' }), reason: /^fd-shard: data\.hidden must be a number, got "10"$/ },
  { title: 'h missing', data: (v) => without(validShard(v, 0, 100), 'h'), reason: /^fd-shard: data\.h must be a number \(it is missing\)$/ },
  { title: 'h null (NaN through JSON)', data: (v) => ({ ...validShard(v, 0, 100), h: null }), reason: /^fd-shard: data\.h must be a number, got null$/ },
  { title: 'h above 1', data: (v) => ({ ...validShard(v, 0, 100), h: 2 }), reason: /^fd-shard: data\.h must be ≤ 1, got 2$/ },
  { title: 'end past the coordinates of H', data: (v) => validShard(v, 0, 50_000), reason: new RegExp(`^fd-shard: data\\.end must be ≤ the number of coordinates \\(795·hidden \\+ 10\\) \\(${COORDS}\\), got 50000$`) },
  { title: 'a huge range', data: (v) => validShard(v, 0, 1e12), reason: /^fd-shard: data\.end must be ≤ 3256330, got 1000000000000$/ },
  { title: 'an empty range', data: (v) => validShard(v, 100, 100), reason: /^fd-shard: data\.end must be > start \(100\), got 100$/ },
  { title: 'a negative start', data: (v) => validShard(v, -1, 100), reason: /^fd-shard: data\.start must be ≥ 0, got -1$/ },
  { title: 'a fractional end', data: (v) => validShard(v, 0, 10.5), reason: /^fd-shard: data\.end must be an int/ },
  { title: 'hidden 1e9', data: (v) => ({ ...validShard(v, 0, 100), hidden: 1e9 }), reason: /^fd-shard: data\.hidden must be ≤ 4096, got 1000000000$/ },
  { title: 'a batch too big for H (size × hidden)', data: (v) => ({ ...validShard(v, 0, 100), hidden: 4096, batch: { kind: 'seeded', seed: 0, step: 0, size: 1000 } }), reason: /^fd-shard: data\.batch must be a batch with size × hidden ≤ 1000000 \(here 1000 × 4096\)/ },
  { title: 'an unknown params version', data: (v) => ({ ...validShard(v, 0, 100), params: 'f'.repeat(64) }), reason: /^shard: data\.params must be a params version stored in Redis, got "unknown version ffffffffffff…"$/ },
  { title: 'a params version that is not hex', data: (v) => ({ ...validShard(v, 0, 100), params: 'abc' }), reason: /^fd-shard: data\.params must be a params version: 64 lowercase hex digits/ },
  { title: 'hidden that does not fit the snapshot', data: (v) => ({ ...validShard(v, 0, 100), hidden: 11 }), reason: /^shard: data\.hidden must be 10 for params of length 7960, got 11$/ },
  { title: 'contract version 2', data: (v) => ({ ...validShard(v, 0, 100), v: 2 }), reason: /^fd-shard: data\.v must be one of 1, got 2$/ },
  { title: 'a field the job does not have', data: (v) => ({ ...validShard(v, 0, 100), priority: 1 }), reason: /^fd-shard: data\.priority must be absent \(not a field of this job\), got 1$/ },
  {
    title: 'a prototype-polluting __proto__ key (JSON.parse keeps it as an own key)',
    data: (v) => JSON.parse(`{"__proto__": {"polluted": true}, ${JSON.stringify(validShard(v, 0, 100)).slice(1)}`) as unknown,
    reason: /^fd-shard: data\.__proto__ must be absent \(reserved key\)/,
  },
  { title: 'a batch of an unknown kind', data: (v) => ({ ...validShard(v, 0, 100), batch: { kind: 'all' } }), reason: /^fd-shard: data\.batch(\.kind)? must be / },
  { title: 'indices fewer than their count', data: (v) => ({ ...validShard(v, 0, 100), batch: { kind: 'indices', count: 21, indices: i32ToBase64(indices) } }), reason: /^decode: data\.batch\.indices must be base64 of 21 int32 values, got "?80 bytes"?$/ },
  { title: 'an index outside the training set', data: (v) => ({ ...validShard(v, 0, 100), batch: { kind: 'indices', count: 2, indices: i32ToBase64(Int32Array.of(5, 60_000)) } }), reason: /^batch: data\.batch\.indices\[1\] must be an integer in \[0, 60000\), got 60000$/ },
  { title: 'indices that are not base64', data: (v) => ({ ...validShard(v, 0, 100), batch: { kind: 'indices', count: 1, indices: '!!!!' } }), reason: /^fd-shard: data\.batch\.indices must be base64/ },
  { title: 'data that is not an object', data: () => 'hello', reason: /^fd-shard: data must be an object, got "hello"$/ },
  { title: 'an unknown job name', name: 'fd-shards', data: (v) => validShard(v, 0, 100), reason: /^shard: job name must be "fd-shard" or "ce-shard", got "fd-shards"$/ },
  { title: 'ce-shard: split "batch" without a batch', name: 'ce-shard', data: (v) => ({ v: 1, params: v, hidden: HIDDEN, split: 'batch', start: 0, end: 10 }), reason: /^ce-shard: data\.batch must be present when split is "batch" \(it is missing\)$/ },
  { title: 'ce-shard: a range past the test split', name: 'ce-shard', data: (v) => ({ v: 1, params: v, hidden: HIDDEN, split: 'test', start: 0, end: 20_000 }), reason: /^ce-shard: data\.end must be ≤ the number of samples in the split \(10000\), got 20000$/ },
  {
    title: 'reduce: a gradient parent without a holder',
    queue: 'reduce',
    name: 'gradient',
    data: (v) => without(without(validShard(v, 0, 1), 'start'), 'end'),
    reason: /^gradient: data\.holder must be a string \(it is missing\)$/,
  },
  { title: 'reduce: an unknown job name', queue: 'reduce', name: 'gradients', data: () => ({}), reason: /^reduce: job name must be "gradient", "evaluation", "train-step" or "train-drive", got "gradients"$/ },
  { title: 'reduce: a train-step of a run that does not exist', queue: 'reduce', name: 'train-step', data: (v) => ({ v: 1, run: 'nope', step: 0, params: v }), reason: /^train-step: data\.run must be an existing run, got "nope"$/ },
  { title: 'reduce: a train-drive of a run that does not exist', queue: 'reduce', name: 'train-drive', data: () => ({ v: 1, run: 'nope', step: 0 }), reason: /^train-drive: data\.run must be an existing run, got "nope"$/ },
  { title: 'train-drive: a step that is not an integer', queue: 'reduce', name: 'train-drive', data: () => ({ v: 1, run: 'r', step: 1.5 }), reason: /^train-drive: data\.step must be/ },
];

describe('malformed payloads on an in-process QueueWorker', () => {
  const prefix = uniquePrefix();
  let worker: QueueWorker;
  let client: ForeignClient;
  let version: string;

  beforeAll(async () => {
    worker = new QueueWorker({ redisUrl: url, prefix, threads: 1, logger: createLogger('silent', 'payload-tests', false) });
    await worker.ready();
    client = new ForeignClient(url, prefix);
    await client.ready();
    version = await storeParams(prefix);
  });

  afterAll(async () => {
    await client?.close();
    await worker?.close();
    await worker?.close(); // close() is safe twice
    await cleanup(prefix, url);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it('a valid fd-shard against a snapshot stored with Store.putParams returns its slice of the gradient, bitwise', async () => {
    await expectValidShard(client, version, 0, 1000);
    await expectValidShard(client, version, 1000, COORDS);
  });

  it.each(BAD)('$title: fails unrecoverably, naming the field; the next valid job succeeds', async (c) => {
    const r = await client.run(c.queue ?? 'shards', c.name ?? (c.queue === 'reduce' ? 'gradient' : 'fd-shard'), c.data(version));
    expect(r.state).toBe('failed');
    expect(r.reason).toMatch(c.reason);
    expect(r.job.failedReason).toBe(r.reason);
    // Three attempts were allowed; an UnrecoverableError ends the job after the first.
    expect(r.job.opts.attempts).toBe(3);
    expect(r.job.attemptsMade).toBe(1);
    await expectValidShard(client, version, 0, 100);
  });

  it('the __proto__ payload polluted nothing in the worker process', () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('malformed payloads on a `numgrad worker` process', () => {
  const prefix = uniquePrefix();
  let proc: WorkerProcess;
  let client: ForeignClient;
  let version: string;

  beforeAll(async () => {
    proc = await spawnWorker(prefix, url, { threads: 1 });
    client = new ForeignClient(url, prefix);
    await client.ready();
    version = await storeParams(prefix);
  }, 60_000);

  afterAll(async () => {
    await client?.close();
    expect(await proc?.stop()).toBe(0);
    await cleanup(prefix, url);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it('fails a bad job at once with the field in failedReason and its log, keeps running, and serves the next job', async () => {
    for (const c of [BAD[4], BAD[9], BAD[16]]) {
      const r = await client.run('shards', 'fd-shard', c.data(version));
      expect(r.state).toBe('failed');
      expect(r.reason).toMatch(c.reason);
      expect(r.job.attemptsMade).toBe(1);
    }
    await expectValidShard(client, version, 0, COORDS);
    // LOG_LEVEL=warn: one JSON line per failed job, naming it and the field.
    const failures = proc
      .output()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; job: string; err: string; attempts: number });
    expect(failures.map((f) => f.msg)).toEqual(['job failed', 'job failed', 'job failed']);
    expect(failures.map((f) => f.err)).toEqual([expect.stringMatching(/data\.end must be ≤/), expect.stringMatching(/data\.hidden must be ≤ 4096/), expect.stringMatching(/data\.__proto__ must be absent/)]);
    expect(proc.child.exitCode).toBeNull();
  });
});

describe('numgrad gradient --backend queue with no worker online', () => {
  const prefix = uniquePrefix();
  afterAll(async () => {
    // The submitted flow stays queued for a worker that never comes: remove it.
    await cleanup(prefix, url);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it('says on stderr that no worker is online and how to start one, then waits (killed here)', async () => {
    const p = startCli(['gradient', '--backend', 'queue', '--hidden', '10', '--batch', '20'], { prefix, url });
    try {
      for (let k = 0; k < 200 && !p.stderr().includes('no worker is online'); k++) await sleep(100);
      expect(p.stderr()).toMatch(/backend: queue at redis:\/\/\S+ \(prefix ngt-[0-9a-f]{8}\); no worker is online — start one with `numgrad worker`; waiting for it…/);
      // Still waiting, not failed: the job is in the queue for a worker to take.
      await sleep(300);
      expect(p.child.exitCode).toBeNull();
      const waiting = (await keysUnder(url, prefix)).filter((k) => k.startsWith(`${prefix}:shards:`) && /:shards:grad-/.test(k));
      expect(waiting.length).toBeGreaterThan(0);
    } finally {
      p.child.kill('SIGKILL');
      await p.exited;
    }
  });
});
