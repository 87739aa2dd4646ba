/**
 * A `numgrad worker --threads 2` process through a seeded queue training: its resident memory
 * (sampled from /proc every 200 ms) stays ≤ 300 MB. The plans' shared buffers are handed back to
 * the pool when no shard uses them; left to the threads' GC they piled up (1.2 GB after 600
 * iterations), so a regression shows as growth over the run.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanup, redisUrl, runCli, spawnWorker, uniquePrefix } from '../helpers/redis.js';

const dir = mkdtempSync(join(tmpdir(), 'numgrad-worker-memory-'));
const prefix = uniquePrefix();
let url = '';
afterAll(async () => {
  if (url !== '') await cleanup(prefix, url);
  rmSync(dir, { recursive: true, force: true });
});

function rssMb(pid: number): number | undefined {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? undefined : Math.round(Number(m[1]) / 1024);
  } catch {
    return undefined;
  }
}

describe.skipIf(!existsSync('/proc/self/status'))('queue worker: memory', () => {
  it('a worker with 2 threads stays ≤ 300 MB resident through 400 queue iterations with evaluations', { timeout: 180_000 }, async () => {
    url = await redisUrl();
    const worker = await spawnWorker(prefix, url, { threads: 2 });
    const pid = worker.child.pid as number;
    const samples: number[] = [];
    const timer = setInterval(() => {
      const mb = rssMb(pid);
      if (mb !== undefined) samples.push(mb);
    }, 200);
    try {
      const r = await runCli(['train', '--backend', 'queue', '--iters', '400', '--eval-every', '200', '--seed', '3', '--out', join(dir, 'run')], { prefix, url }, 170_000);
      expect(r.code, r.stderr).toBe(0);
    } finally {
      clearInterval(timer);
      await worker.stop();
    }
    expect(samples.length).toBeGreaterThan(20);
    console.log(`[memory] worker peak RSS ${Math.max(...samples)} MB over ${samples.length} samples`);
    expect(Math.max(...samples), `worker RSS (MB) every 200 ms: ${samples.join(' ')}`).toBeLessThanOrEqual(300);
  });
});
