/**
 * A single worker runs a training step through the queue like the local loop: the reducer of step t
 * keeps θ_{t+1} (no shard or reducer of this worker reads a snapshot back from Redis after step 0)
 * and, having computed all of step t itself, starts step t+1's gradient at once, so every later
 * shard job takes its range from that gradient. The run stays the local run bit for bit.
 * Against a redis-server of the test's own, whose MONITOR stream shows every read of a snapshot.
 */
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialParams, trainConfig } from '../../src/core/training.js';
import { createLogger } from '../../src/io/logger.js';
import { QueueClient } from '../../src/producer/queue-client.js';
import { trainLocal } from '../../src/producer/train-local.js';
import { LocalPool } from '../../src/workers/pool.js';
import { paramsVersion } from '../../src/workers/codec.js';
import { QueueWorker } from '../../src/workers/queue-worker.js';
import { bytesOf } from '../helpers/data.js';
import { type RedisServer, sleep, startRedisServer } from '../helpers/redis.js';

const ITERS = 30;
const SHARDS = 4;
const cfg = trainConfig({ iters: ITERS, evalEvery: 15, seed: 7 });
const prefix = 'ngahead';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedisServer();
}, 30_000);
afterAll(async () => {
  await server?.stop();
});

describe('queue: one worker steps ahead', () => {
  it(`a ${ITERS}-iteration run on one in-process worker: θ read from Redis only at step 0 and at the end, every shard after step 0 served by the gradient started ahead, params and metrics bitwise the local run's`, { timeout: 600_000 }, async () => {
    const monitor = new Redis(server.url);
    const reads: string[] = [];
    const m = await monitor.monitor();
    m.on('monitor', (_time: string, args: string[]) => {
      if (/^get$/i.test(args[0] ?? '') && (args[1] ?? '').startsWith(`${prefix}:ng:params:`)) reads.push(args[1]);
    });
    const worker = new QueueWorker({ redisUrl: server.url, prefix, threads: 2, logger: createLogger('warn', 'test-worker') });
    const client = new QueueClient({ redisUrl: server.url, prefix });
    try {
      await worker.ready();
      const run = await client.startRun(cfg, SHARDS);
      const first = paramsVersion(initialParams(cfg));
      for (;;) {
        const r = await client.run(run);
        if (r.state !== 'running') break;
        await sleep(100);
      }
      const last = await client.runParams(run);
      const done = await client.run(run);
      expect(done.state).toBe('done');
      await sleep(300); // MONITOR lines trail the commands
      // θ_0 by the first shards; the final θ once more, when the run keeps it as its summary.
      const others = reads.filter((k) => k !== `${prefix}:ng:params:${first}`);
      expect(reads.filter((k) => k === `${prefix}:ng:params:${first}`)).toHaveLength(1);
      expect(others, 'snapshots read back from Redis after step 0').toHaveLength(1);
      expect(worker.compute.aheadStarted).toBe(ITERS - 1);
      expect(worker.compute.aheadUsed).toBe((ITERS - 1) * SHARDS);

      const pool = new LocalPool({ threads: 2 });
      try {
        const local = await trainLocal({ cfg, pool });
        expect(bytesOf(last as Float64Array).equals(bytesOf(local.params)), 'final params bitwise the local run').toBe(true);
        const metrics = await client.runMetrics(run);
        expect(metrics.map((x) => x.loss)).toEqual(local.metrics.map((x) => x.loss));
        expect(metrics.filter((x) => x.testAcc !== undefined).map((x) => [x.iter, x.trainAcc, x.testAcc])).toEqual(local.metrics.filter((x) => x.testAcc !== undefined).map((x) => [x.iter, x.trainAcc, x.testAcc]));
      } finally {
        await pool.close();
      }
    } finally {
      await client.close();
      await worker.close();
      m.disconnect();
      monitor.disconnect();
    }
  });
});
