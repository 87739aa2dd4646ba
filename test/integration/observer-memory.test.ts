/**
 * The dashboard's queue observer reads BullMQ's events streams for as long as the dashboard lives.
 * Its 'completed' events carry the jobs' return values (a gradient shard's is ~100 KB), so anything
 * that keeps a reply reachable grows the heap by the whole traffic: a standalone dashboard grew by
 * ~0.45 MB per training step and `numgrad start` died of it at iteration 8,094. Here ~100 MB of such
 * events pass through one observer; its heap after a full GC must stay where it was.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { QueueObserver } from '../../src/dashboard/observer.js';
import { createLogger } from '../../src/io/logger.js';
import { cleanup, closeRedis, redisUrl, sleep, uniquePrefix } from '../helpers/redis.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function liveHeap(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const prefix = uniquePrefix();
afterAll(async () => {
  await cleanup(prefix);
  await closeRedis();
});

describe('QueueObserver memory', () => {
  it('holds nothing of the events it has read: heap flat over ~100 MB of completed-shard events', async () => {
    const url = await redisUrl();
    const redis = new Redis(url);
    const seen = { shards: 0 };
    const observer = new QueueObserver({ redisUrl: url, prefix, logger: createLogger('silent') }, { shard: () => seen.shards++, flow: () => undefined });
    try {
      await observer.ready();
      const stream = `${prefix}:shards:events`;
      const returnvalue = JSON.stringify({ start: 0, end: 10_000, data: 'A'.repeat(100_000) });
      let sent = 0;
      const round = async (n: number): Promise<void> => {
        const pipe = redis.pipeline();
        for (let i = 0; i < n; i++) {
          const id = `j${sent + i}`;
          pipe.xadd(stream, 'MAXLEN', '~', 200, '*', 'event', 'active', 'jobId', id, 'prev', 'waiting');
          pipe.xadd(stream, 'MAXLEN', '~', 200, '*', 'event', 'completed', 'jobId', id, 'returnvalue', returnvalue, 'prev', 'active');
        }
        await pipe.exec();
        sent += n;
        const deadline = Date.now() + 30_000;
        while (observer.shardsCompleted < sent && Date.now() < deadline) await sleep(20);
        expect(observer.shardsCompleted).toBe(sent);
      };
      for (let r = 0; r < 3; r++) await round(100);
      const before = liveHeap();
      for (let r = 0; r < 10; r++) await round(100);
      const after = liveHeap();
      expect(seen.shards).toBe(1_300);
      // 1,000 events of ~100 KB went by between the two readings: kept, they would add ~100 MB.
      expect((after - before) / 1e6).toBeLessThan(10);
    } finally {
      await observer.close();
      redis.disconnect();
    }
  });
});
