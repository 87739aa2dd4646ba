/**
 * Soak: a standalone `numgrad dashboard` beside a 3,000-iteration training through the queue (a
 * `numgrad worker --threads 2`, the book's recipe), its page polled as a browser polls it, then
 * 5 minutes idle. Its live heap (a heap snapshot: what survives a full GC) after 3,000 iterations
 * stays within 20 MB of the heap after 500, and stays flat while idle. Before the observer's fix it
 * grew by ~0.45 MB per iteration (~1.1 GB between the two readings). Run by `npm run test:soak`.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { Keys } from '../../src/queue/keys.js';
import { CLI, ROOT, type RedisServer, type WorkerProcess, freePort, sleep, spawnWorker, startCli, startRedisServer, uniquePrefix } from '../helpers/redis.js';
import { dashboardUrl, keepCurve, liveHeapMb, pollLikeABrowser, rssMb } from './soak.js';
import { NODE_FLAGS } from '../../src/producer/node-flags.js';

const ITERS = Number(process.env.SOAK_ITERS ?? 3_000);
const IDLE_MS = Number(process.env.SOAK_IDLE_MS ?? 300_000);
const FIRST_READING = Math.min(500, Math.floor(ITERS / 6));

const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('soak: standalone numgrad dashboard', () => {
  it(`heap after ${ITERS} iterations ≤ heap after ${FIRST_READING} + 20 MB, and flat for ${IDLE_MS / 60_000} min idle`, async () => {
    const redis: RedisServer = await startRedisServer();
    cleanups.push(() => redis.stop());
    const prefix = uniquePrefix();
    const worker: WorkerProcess = await spawnWorker(prefix, redis.url, { threads: 2 });
    cleanups.push(() => worker.kill9());
    const diag = mkdtempSync(join(tmpdir(), 'numgrad-soak-'));
    cleanups.push(() => rmSync(diag, { recursive: true, force: true }));
    const port = await freePort();
    const dash = spawn(process.execPath, [...NODE_FLAGS, '--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${diag}`, CLI, 'dashboard', '--port', String(port)], {
      cwd: ROOT,
      env: { ...process.env, NUMGRAD_PREFIX: prefix, REDIS_URL: redis.url, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let dashOut = '';
    dash.stdout.on('data', (d: Buffer) => (dashOut += d.toString()));
    dash.stderr.on('data', (d: Buffer) => (dashOut += d.toString()));
    cleanups.push(() => void dash.kill('SIGKILL'));
    for (let i = 0; i < 300 && dashboardUrl(dashOut) === undefined; i++) await sleep(100);
    const base = dashboardUrl(dashOut);
    expect(base, dashOut).toBeDefined();
    const pid = dash.pid as number;

    const runId = `soak-${prefix}`;
    const poller = pollLikeABrowser(base as string, runId);
    const out = mkdtempSync(join(tmpdir(), 'numgrad-soak-out-'));
    cleanups.push(() => rmSync(out, { recursive: true, force: true }));
    const t0 = Date.now();
    const train = startCli(['train', '--backend', 'queue', '--iters', String(ITERS), '--run-id', runId, '--out', out], { prefix, url: redis.url });
    cleanups.push(() => void train.child.kill('SIGKILL'));

    const redisConn = new Redis(redis.url);
    cleanups.push(() => redisConn.disconnect());
    const runKey = new Keys(prefix).run(runId);
    const samples: { s: number; step: number; rssMb: number; heapMb?: number }[] = [];
    let ended = false;
    void train.exited.then(() => (ended = true));
    let heapAt: { step: number; mb: number } | undefined;
    while (!ended) {
      const step = Number((await redisConn.hget(runKey, 'step')) ?? 0);
      const sample: (typeof samples)[number] = { s: (Date.now() - t0) / 1000, step, rssMb: rssMb(pid) };
      if (heapAt === undefined && step >= FIRST_READING) {
        heapAt = { step, mb: await liveHeapMb(pid, diag) };
        sample.heapMb = heapAt.mb;
      }
      samples.push(sample);
      await sleep(5_000);
    }
    const { code } = await train.exited;
    expect(code, train.stderr()).toBe(0);
    const end = { step: ITERS, mb: await liveHeapMb(pid, diag) };
    samples.push({ s: (Date.now() - t0) / 1000, step: ITERS, rssMb: rssMb(pid), heapMb: end.mb });

    const idle: { s: number; rssMb: number; heapMb: number }[] = [];
    const idleStart = Date.now();
    for (;;) {
      idle.push({ s: (Date.now() - idleStart) / 1000, rssMb: rssMb(pid), heapMb: await liveHeapMb(pid, diag) });
      if (Date.now() - idleStart >= IDLE_MS) break;
      await sleep(Math.min(60_000, IDLE_MS / 5));
    }
    await poller.stop();
    const file = keepCurve('soak-dashboard', { iters: ITERS, idleMs: IDLE_MS, heapAt, end, samples, idle, polls: poller.polls(), errors: poller.errors() });
    const summary = `${file}: heap ${heapAt?.mb.toFixed(1)} MB at step ${heapAt?.step}, ${end.mb.toFixed(1)} MB at ${ITERS}; idle ${idle.map((i) => i.heapMb.toFixed(1)).join(' → ')} MB`;
    console.log(summary); // ok-console: the soak's figures, for the CI log

    expect(poller.errors(), summary).toEqual([]);
    expect(poller.polls()).toBeGreaterThan(10);
    expect(heapAt, summary).toBeDefined();
    expect(end.mb, summary).toBeLessThanOrEqual((heapAt as { mb: number }).mb + 20);
    const idleHeaps = idle.map((i) => i.heapMb);
    expect(Math.max(...idleHeaps) - idleHeaps[0], summary).toBeLessThanOrEqual(5);
  });
});
