import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const DIST = join(process.cwd(), 'dist/src');

/**
 * Runs in a fresh process so the figure is the pool's alone: MNIST reaches the threads through
 * SharedArrayBuffer (never copied per thread), so 2 threads with the dataset loaded stay under
 * 300 MB resident — through a training's worth of gradients (600: one epoch of the book's recipe,
 * with an SGD step after each) and evaluations of both splits, sampled every 20 gradients. A buffer
 * made per gradient and shared with the threads is freed only when every thread's GC has let go of
 * it, so a leak of that kind shows here as growth, not in a short run.
 */
const SCRIPT = `
import { LocalPool } from '${DIST}/workers/threads/pool.js';
import { initParams } from '${DIST}/core/network.js';
import { Rng, miniBatchIndices } from '${DIST}/core/prng.js';
import { sgdStep } from '${DIST}/core/training.js';
const pool = new LocalPool({ threads: 2 });
let p = initParams(50, new Rng(1));
const rss = [process.memoryUsage().rss];
for (let i = 0; i < 600; i++) {
  const { gradient } = await pool.gradient(p, miniBatchIndices(1, i, 100, 60000));
  p = sgdStep(p, gradient, 0.1);
  if (i % 200 === 199) {
    await pool.evaluate(p, 'test');
    await pool.evaluate(p, 'train');
  }
  if (i % 20 === 19) rss.push(process.memoryUsage().rss);
}
await pool.close();
process.stdout.write(JSON.stringify(rss));
`;

describe('local pool: memory', () => {
  it('a process with 2 threads and the dataset loaded stays ≤ 300 MB resident through 600 gradients and evaluations', { timeout: 120_000 }, () => {
    expect(existsSync(join(DIST, 'workers/threads/pool.js')), 'run `npm run build` first').toBe(true);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const rss = JSON.parse(r.stdout) as number[];
    const mb = rss.map((b) => Math.round(b / 2 ** 20));
    expect(Math.max(...mb), `RSS (MB) every 20 gradients: ${mb.join(' ')}`).toBeLessThanOrEqual(300);
  });
});
