/**
 * Load: 100 gradient requests at once (QueueClient.gradient ×100, each its own params snapshot) and
 * then 10,000 mini-batch cross-entropy jobs (ce-shard, split "batch", seeded batches of 10, added
 * with addBulk and numgrad's own shard options) drain through 2 `numgrad worker` processes of 1
 * thread each, on a redis-server this test starts (so INFO memory is numgrad's alone).
 *
 * Afterwards Redis holds what it held before the load plus BullMQ's capped bookkeeping only: no
 * snapshot, result or job hash is left (keys counted by pattern), the events streams are within their
 * cap, and used_memory is back within a stated tolerance of its baseline. The workers' RSS, sampled
 * from /proc/<pid>/status while the jobs drain, stays flat (median of the first quarter of the
 * samples vs the last quarter within 15%).
 *
 * NUMGRAD_LOAD_GRADIENTS and NUMGRAD_LOAD_CE_JOBS set the counts (defaults 100 and 10000, the
 * issue's figures). The figures land in test-artifacts/reliability/load.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONTRACT_VERSION } from '../../src/core/contract.js';
import { gatherBatch } from '../../src/core/dataset.js';
import { fdGradient } from '../../src/core/fd-engine.js';
import { initParams } from '../../src/core/network.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { loadMnist } from '../../src/io/mnist.js';
import { QueueClient } from '../../src/producer/queue-client.js';
import { EVENTS_STREAMS, SHARD_OPTS } from '../../src/queue/flows.js';
import { Keys } from '../../src/queue/keys.js';
import { Store } from '../../src/queue/store.js';
import { bytesOf } from '../helpers/data.js';
import { ROOT, type RedisServer, type WorkerProcess, keysUnder, sleep, spawnWorker, startRedisServer, uniquePrefix } from '../helpers/redis.js';

const envInt = (name: string, dflt: number): number => (process.env[name] ? Number(process.env[name]) : dflt);
const GRADIENTS = envInt('NUMGRAD_LOAD_GRADIENTS', 100);
const CE_JOBS = envInt('NUMGRAD_LOAD_CE_JOBS', 10_000);
const HIDDEN = 10;
const BATCH = 20;
const CE_BATCH = 10;
/** used_memory after the load may exceed the baseline by at most this (the events streams fill to their cap). */
const MEMORY_TOLERANCE_BYTES = 2 * 1024 * 1024;
/** Worker RSS: last-quarter median within this fraction of the first-quarter median. */
const RSS_TOLERANCE = 0.15;
/** How many gradients are checked bitwise against fdGradient in this process (the rest: length and finiteness). */
const CHECKED = 10;

let server: RedisServer;
let redis: Redis;
const prefix = uniquePrefix();
let workers: WorkerProcess[] = [];
const figures: Record<string, unknown> = { gradients: GRADIENTS, ceJobs: CE_JOBS, hidden: HIDDEN, workers: 2, threadsPerWorker: 1 };

async function usedMemory(): Promise<number> {
  // Settle first: BullMQ's stalled checks and client buffers come and go in the background.
  await sleep(300);
  const info = await redis.info('memory');
  return Number(/used_memory:(\d+)/.exec(info)?.[1]);
}

/** Keys under the prefix grouped by kind: numgrad's (`ng:params`, `ng:result`, …), BullMQ job hashes, BullMQ bookkeeping. */
async function keyCensus(): Promise<{ total: number; byPattern: Record<string, number>; jobHashes: string[]; numgrad: string[] }> {
  const keys = await keysUnder(server.url, prefix);
  const byPattern: Record<string, number> = {};
  const jobHashes: string[] = [];
  const numgrad: string[] = [];
  for (const k of keys) {
    const rest = k.slice(prefix.length + 1);
    let pattern: string;
    if (rest.startsWith('ng:')) {
      pattern = `ng:${rest.split(':')[1]}:*`;
      numgrad.push(rest);
    } else {
      const [queue, ...tail] = rest.split(':');
      // BullMQ's own keys are named (events, id, meta, …); a job's hash and its :logs/:dependencies are under its id.
      const named = ['events', 'id', 'meta', 'stalled-check', 'marker', 'wait', 'paused', 'active', 'prioritized', 'delayed', 'completed', 'failed', 'stalled', 'waiting-children', 'pc', 'limiter', 'metrics'];
      if (named.includes(tail[0])) pattern = `${queue}:${tail.join(':')}`;
      else {
        pattern = `${queue}:<job>${tail.length > 1 ? `:${tail.slice(1).join(':')}` : ''}`;
        jobHashes.push(rest);
      }
    }
    byPattern[pattern] = (byPattern[pattern] ?? 0) + 1;
  }
  return { total: keys.length, byPattern, jobHashes, numgrad };
}

/** RSS of each worker process, sampled every `everyMs` until stopped. */
function sampleRss(pids: number[], everyMs = 200): { stop: () => number[][] } {
  const series: number[][] = pids.map(() => []);
  const timer = setInterval(() => {
    pids.forEach((pid, i) => {
      try {
        const kb = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
        if (Number.isFinite(kb)) series[i].push(kb * 1024);
      } catch {
        // The process is gone: the assertions on its exit say so.
      }
    });
  }, everyMs);
  return {
    stop: () => {
      clearInterval(timer);
      return series;
    },
  };
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length === 0 ? NaN : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const mb = (b: number): number => Number((b / 1024 / 1024).toFixed(2));

/** First- and last-quarter medians of one RSS series and their relative change. */
function flatness(series: number[]): { samples: number; firstQuarterMB: number; lastQuarterMB: number; change: number; maxMB: number } {
  const q = Math.max(1, Math.floor(series.length / 4));
  const first = median(series.slice(0, q));
  const last = median(series.slice(-q));
  return { samples: series.length, firstQuarterMB: mb(first), lastQuarterMB: mb(last), change: Number(((last - first) / first).toFixed(3)), maxMB: mb(Math.max(...series)) };
}

beforeAll(async () => {
  server = await startRedisServer();
  redis = new Redis(server.url, { maxRetriesPerRequest: 1 });
  workers.push(await spawnWorker(prefix, server.url, { threads: 1, expect: 1 }));
  workers.push(await spawnWorker(prefix, server.url, { threads: 1, expect: 2 }));
}, 90_000);

afterAll(async () => {
  mkdirSync(join(ROOT, 'test-artifacts/reliability'), { recursive: true });
  writeFileSync(join(ROOT, 'test-artifacts/reliability/load.json'), `${JSON.stringify(figures, null, 2)}\n`);
  console.info(`load figures: ${JSON.stringify(figures)}`);
  const codes = await Promise.all(workers.map((w) => w.stop()));
  workers = [];
  redis?.disconnect();
  await server?.stop();
  expect(codes).toEqual([0, 0]);
});

describe(`load: ${GRADIENTS} gradients at once, then ${CE_JOBS} ce-shard jobs, on 2 worker processes`, () => {
  it('drains everything; Redis returns to its baseline (keys by pattern, used_memory) and worker RSS stays flat', async () => {
    const train = loadMnist('train');
    const client = new QueueClient({ redisUrl: server.url, prefix, timeoutMs: 170_000 });
    const shards = new Queue('shards', { connection: new Redis(server.url, { maxRetriesPerRequest: null }), prefix, streams: EVENTS_STREAMS });
    const store = new Store(redis, new Keys(prefix));
    try {
      // Warm-up (Lua scripts loaded, queues' meta written, streams started), then the baseline.
      const warm = await client.gradient(initParams(HIDDEN, new Rng(999)), miniBatchIndices(999, 0, BATCH, train.count), 1e-4);
      expect(warm.gradient.length).toBe(795 * HIDDEN + 10);
      const baseline = await usedMemory();
      const baselineKeys = await keyCensus();
      figures.baseline = { usedMemoryMB: mb(baseline), keys: baselineKeys.total, byPattern: baselineKeys.byPattern };

      const rss = sampleRss(workers.map((w) => w.child.pid as number));
      // 1. GRADIENTS gradient requests at once, each with its own params (so its own snapshot and holder).
      const t0 = performance.now();
      const requests = Array.from({ length: GRADIENTS }, (_, k) => ({ params: initParams(HIDDEN, new Rng(k)), indices: miniBatchIndices(k, 0, BATCH, train.count) }));
      let peakMemory = 0;
      const peakTimer = setInterval(() => void redis.info('memory').then((i) => (peakMemory = Math.max(peakMemory, Number(/used_memory:(\d+)/.exec(i)?.[1])))).catch(() => undefined), 250);
      const results = await Promise.all(requests.map((r) => client.gradient(r.params, r.indices, 1e-4, 4)));
      const gradientSeconds = (performance.now() - t0) / 1000;
      const rssGradients = rss.stop();
      for (let k = 0; k < GRADIENTS; k++) {
        expect(results[k].gradient.length).toBe(795 * HIDDEN + 10);
        expect(results[k].gradient.every(Number.isFinite)).toBe(true);
      }
      for (let k = 0; k < Math.min(CHECKED, GRADIENTS); k++) {
        const want = fdGradient(requests[k].params, gatherBatch(train, requests[k].indices), 1e-4);
        expect(bytesOf(results[k].gradient).equals(bytesOf(want))).toBe(true);
      }

      // 2. CE_JOBS mini-batch cross-entropy jobs, added in bulk with numgrad's shard options.
      const version = await store.putParams(initParams(HIDDEN, new Rng(4242)), 'load-test');
      const ceRss = sampleRss(workers.map((w) => w.child.pid as number));
      const t1 = performance.now();
      for (let i = 0; i < CE_JOBS; i += 1000) {
        const n = Math.min(1000, CE_JOBS - i);
        await shards.addBulk(
          Array.from({ length: n }, (_, k) => ({
            name: 'ce-shard',
            data: { v: CONTRACT_VERSION, params: version, hidden: HIDDEN, split: 'batch', batch: { kind: 'seeded', seed: i + k, step: 0, size: CE_BATCH }, start: 0, end: CE_BATCH },
            opts: SHARD_OPTS,
          })),
        );
      }
      const addSeconds = (performance.now() - t1) / 1000;
      // Drained: nothing waiting, active or delayed, nothing failed, and every id issued (completed jobs are removed at once).
      const deadline = Date.now() + 170_000;
      for (;;) {
        const c = await shards.getJobCounts('waiting', 'active', 'delayed', 'prioritized', 'failed');
        expect(c.failed).toBe(0);
        if (c.waiting + c.active + c.delayed + c.prioritized === 0) break;
        if (Date.now() > deadline) throw new Error(`ce-shard jobs not drained: ${JSON.stringify(c)}`);
        await sleep(200);
      }
      const ceSeconds = (performance.now() - t1) / 1000;
      clearInterval(peakTimer);
      const ceSeries = ceRss.stop();
      await store.release(version, 'load-test');
      expect(Number(await redis.get(`${prefix}:shards:id`))).toBeGreaterThanOrEqual(CE_JOBS + 4 * (GRADIENTS + 1));

      figures.gradientPhase = { seconds: Number(gradientSeconds.toFixed(1)), perSecond: Number((GRADIENTS / gradientSeconds).toFixed(1)), checkedBitwise: Math.min(CHECKED, GRADIENTS) };
      figures.cePhase = { seconds: Number(ceSeconds.toFixed(1)), addBulkSeconds: Number(addSeconds.toFixed(1)), jobsPerSecond: Math.round(CE_JOBS / ceSeconds) };
      figures.peakUsedMemoryMB = mb(peakMemory);

      // Redis after: no snapshot, result or job hash; only BullMQ's capped bookkeeping beyond the baseline.
      const after = await usedMemory();
      const census = await keyCensus();
      const streams = { shards: await redis.xlen(`${prefix}:shards:events`), reduce: await redis.xlen(`${prefix}:reduce:events`) };
      const streamBytes = {
        shards: Number(await redis.call('MEMORY', 'USAGE', `${prefix}:shards:events`)),
        reduce: Number(await redis.call('MEMORY', 'USAGE', `${prefix}:reduce:events`)),
      };
      figures.after = { usedMemoryMB: mb(after), deltaMB: mb(after - baseline), keys: census.total, byPattern: census.byPattern, eventsStreamLengths: streams, eventsStreamMB: { shards: mb(streamBytes.shards), reduce: mb(streamBytes.reduce) } };
      expect(census.numgrad).toEqual([]);
      expect(census.jobHashes).toEqual([]);
      expect(Object.keys(census.byPattern).sort()).toEqual(Object.keys(baselineKeys.byPattern).sort());
      // XADD MAXLEN ~ trims whole stream nodes (100 entries each), so a stream may stand a node over its cap.
      expect(streams.shards).toBeLessThanOrEqual(EVENTS_STREAMS.events.maxLen + 100);
      expect(streams.reduce).toBeLessThanOrEqual(EVENTS_STREAMS.events.maxLen + 100);
      expect(after - baseline).toBeLessThan(MEMORY_TOLERANCE_BYTES);

      // Worker RSS while the ce-shard jobs drained (after the gradients warmed them up): flat.
      const flat = ceSeries.map(flatness);
      figures.workerRss = { gradientPhase: rssGradients.map(flatness), cePhase: flat, tolerance: RSS_TOLERANCE };
      for (const f of flat) {
        expect(f.samples).toBeGreaterThanOrEqual(8);
        expect(Math.abs(f.change)).toBeLessThan(RSS_TOLERANCE);
      }
      // Both workers took part and nothing failed in either.
      for (const w of workers) {
        expect(w.child.exitCode).toBeNull();
        expect(w.output()).not.toMatch(/job failed|worker error/);
      }
    } finally {
      await shards.close();
      await client.close();
    }
  }, 240_000);
});
