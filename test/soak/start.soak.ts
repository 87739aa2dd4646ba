/**
 * Soak: `numgrad start` (the main job: training, in-process worker with 2 threads and the dashboard
 * in one process) for 3,000 iterations against a Redis of its own, its page polled as a browser
 * polls it; resident memory sampled every second stays ≤ 400 MB throughout. Before the observer's
 * fix it reached 1.78 GB at 3,000 iterations and died of heap exhaustion at 8,094.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type RedisServer, sleep, startCli, startRedisServer, uniquePrefix } from '../helpers/redis.js';
import { dashboardUrl, keepCurve, pollLikeABrowser, rssMb } from './soak.js';

const ITERS = Number(process.env.SOAK_ITERS ?? 3_000);
const LIMIT_MB = 400;

const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

describe('soak: numgrad start', () => {
  it(`RSS ≤ ${LIMIT_MB} MB throughout ${ITERS} iterations with the page polled`, async () => {
    const redis: RedisServer = await startRedisServer();
    cleanups.push(() => redis.stop());
    const prefix = uniquePrefix();
    const out = mkdtempSync(join(tmpdir(), 'numgrad-soak-start-'));
    cleanups.push(() => rmSync(out, { recursive: true, force: true }));
    const t0 = Date.now();
    const start = startCli(['start', '--iters', String(ITERS), '--out', out], { prefix, url: redis.url });
    cleanups.push(() => void start.child.kill('SIGKILL'));
    const pid = start.child.pid as number;
    let ended = false;
    void start.exited.then(() => (ended = true));

    const samples: { s: number; rssMb: number }[] = [];
    let poller: ReturnType<typeof pollLikeABrowser> | undefined;
    // Once the run is done the process closes its dashboard and exits: a poll then may fail, as a browser's would.
    let doneAt = Infinity;
    start.child.stdout?.on('data', () => {
      if (doneAt === Infinity && / done, /.test(start.stdout())) doneAt = Date.now();
    });
    while (!ended) {
      const mb = rssMb(pid);
      if (Number.isFinite(mb)) samples.push({ s: (Date.now() - t0) / 1000, rssMb: mb });
      const base = dashboardUrl(start.stdout());
      // The page shows the running run, as index.html picks it.
      if (poller === undefined && base !== undefined) poller = pollLikeABrowser(base, undefined);
      await sleep(1_000);
    }
    await poller?.stop();
    const { code } = await start.exited;
    const peak = Math.max(...samples.map((s) => s.rssMb));
    const file = keepCurve('soak-start', { iters: ITERS, peakMb: peak, samples, polls: poller?.polls(), errors: poller?.errors() });
    const summary = `${file}: peak RSS ${peak.toFixed(0)} MB over ${samples.length} samples in ${((Date.now() - t0) / 1000).toFixed(0)} s`;
    console.log(summary); // ok-console: the soak's figures, for the CI log

    expect(code, start.stderr().slice(-2000)).toBe(0);
    expect(start.stdout()).toMatch(/queue/);
    expect(existsSync(join(out, 'params.npy'))).toBe(true);
    expect(existsSync(join(out, 'metrics.jsonl'))).toBe(true);
    expect(poller, 'the dashboard announced its address').toBeDefined();
    expect(poller?.errors(doneAt), summary).toEqual([]);
    expect(samples.length).toBeGreaterThan(10);
    expect(peak, summary).toBeLessThanOrEqual(LIMIT_MB);
  });
});
