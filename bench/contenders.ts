/**
 * More rows for `npm run bench`: the local pool with 1 thread and with all threads, and the queue
 * with 1 and 2 worker processes on a Redis of the bench's own (so its INFO counters measure numgrad's
 * traffic alone: Redis commands and bytes per gradient).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { QueueClient } from '../src/producer/queue-client.js';
import { LocalPool } from '../src/workers/threads/pool.js';
import type { BenchContext, Contender, RunResult } from './run.js';
import { NODE_FLAGS } from '../src/producer/node-flags.js';

export const REPO = join(import.meta.dirname ?? '.', '../..');
const CLI = join(REPO, 'dist/src/producer/cli.js');

export function localPoolContender(threads: number): Contender {
  let pool: LocalPool | undefined;
  return {
    name: `numgrad local pool, ${threads} thread${threads > 1 ? 's' : ''} (piscina, shared memo)`,
    async run(ctx: BenchContext): Promise<RunResult> {
      pool ??= new LocalPool({ threads });
      const t0 = performance.now();
      const r = await pool.gradient(ctx.params, ctx.indices, ctx.h);
      return { seconds: (performance.now() - t0) / 1000, info: { shards: r.shards } };
    },
    async close() {
      await pool?.close();
    },
  };
}

/**
 * The pool as a training loop uses it: gradients back to back. Each run computes one gradient
 * untimed, then `count` more on the same inputs (no result is cached between them: each plans,
 * fills its memo and computes every coordinate), and reports their median. The untimed one takes
 * the garbage collection of what the bench's other rows allocated in this process: measured in a
 * quiet process with a warm 2-thread pool, a gradient after 0.3 s or 1 s of idle costs what one in
 * a sequence costs, and so does one after a sweep over 64 MB, but one after the process allocated
 * and dirtied a fresh 64 MB costs ~2.5× (the isolated pool rows pay this: their spread).
 */
export function backToBackContender(threads: number, count = 10): Contender {
  let pool: LocalPool | undefined;
  return {
    name: `numgrad local pool, ${threads} thread${threads > 1 ? 's' : ''}, back to back (median of ${count} consecutive gradients after one untimed: a training loop's rhythm)`,
    async run(ctx: BenchContext): Promise<RunResult> {
      pool ??= new LocalPool({ threads });
      await pool.gradient(ctx.params, ctx.indices, ctx.h);
      const times: number[] = [];
      for (let k = 0; k < count; k++) {
        const t0 = performance.now();
        await pool.gradient(ctx.params, ctx.indices, ctx.h);
        times.push((performance.now() - t0) / 1000);
      }
      times.sort((a, b) => a - b);
      return { seconds: times[count >> 1], info: { fastest: times[0], slowest: times[count - 1] } };
    },
    async close() {
      await pool?.close();
    },
  };
}

/** A redis-server of the bench's own on a free loopback port, or undefined when the binary is missing. */
export async function startRedis(): Promise<{ url: string; stop: () => void } | undefined> {
  if (spawnSync('redis-server', ['--version']).status !== 0) return undefined;
  const port = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  const url = `redis://127.0.0.1:${port}`;
  const probe = new Redis(url, { lazyConnect: true, retryStrategy: () => 100, maxRetriesPerRequest: 1 });
  probe.on('error', () => undefined);
  for (let i = 0; i < 50; i++) {
    try {
      if (probe.status !== 'ready') await probe.connect().catch(() => undefined);
      if ((await probe.ping()) === 'PONG') break;
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  probe.disconnect();
  return { url, stop: () => child.kill('SIGKILL') };
}

async function redisStats(r: Redis): Promise<{ commands: number; inBytes: number; outBytes: number }> {
  const info = await r.info('stats');
  const get = (k: string): number => Number(new RegExp(`${k}:(\\d+)`).exec(info)?.[1] ?? NaN);
  return { commands: get('total_commands_processed'), inBytes: get('total_net_input_bytes'), outBytes: get('total_net_output_bytes') };
}

/** The queue with `workers` worker processes of `threads` threads each. */
export function queueContender(redisUrl: () => string | undefined, workers: number, threads: number, shards: number): Contender {
  let client: QueueClient | undefined;
  let stats: Redis | undefined;
  const children: ChildProcess[] = [];
  const prefix = `ngbench${workers}x${threads}`;
  return {
    name: `numgrad queue, ${workers} worker process${workers > 1 ? 'es' : ''} × ${threads} thread${threads > 1 ? 's' : ''}, ${shards} shards (BullMQ flow + reducer)`,
    async run(ctx: BenchContext): Promise<RunResult> {
      const url = redisUrl();
      if (url === undefined) throw new Error('no Redis for the queue rows');
      if (client === undefined) {
        for (let w = 0; w < workers; w++) {
          children.push(spawn(process.execPath, [...NODE_FLAGS, CLI, 'worker', '--threads', String(threads)], { env: { ...process.env, REDIS_URL: url, NUMGRAD_PREFIX: prefix, LOG_LEVEL: 'warn' }, stdio: 'ignore' }));
        }
        client = new QueueClient({ redisUrl: url, prefix });
        await client.ping();
        const conn = new Redis(url, { maxRetriesPerRequest: null });
        const q = new Queue('shards', { connection: conn, prefix });
        for (let i = 0; i < 300 && (await q.getWorkersCount()) < workers; i++) await new Promise((r) => setTimeout(r, 100));
        await q.close();
        conn.disconnect();
        stats = new Redis(url);
        stats.on('error', () => undefined);
      }
      const before = await redisStats(stats as Redis);
      const t0 = performance.now();
      await client.gradient(ctx.params, ctx.indices, ctx.h, shards);
      const seconds = (performance.now() - t0) / 1000;
      const after = await redisStats(stats as Redis);
      // The INFO call itself is one command on each side.
      return { seconds, info: { redisCommands: after.commands - before.commands - 1, redisBytesIn: after.inBytes - before.inBytes, redisBytesOut: after.outBytes - before.outBytes } };
    },
    async close() {
      await client?.close();
      stats?.disconnect();
      for (const c of children) c.kill('SIGTERM');
      await Promise.all(children.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    },
  };
}

export function allThreads(): number {
  return Math.max(1, availableParallelism());
}
