import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const DIST = join(process.cwd(), 'dist/src');

/**
 * Runs in a fresh process so the figure is the pool's alone: MNIST reaches the threads through
 * SharedArrayBuffer (never copied per thread), so 2 threads with the dataset loaded, after
 * gradients and evaluations of both splits, stay under 300 MB resident.
 */
const SCRIPT = `
import { LocalPool } from '${DIST}/workers/pool.js';
import { initParams } from '${DIST}/core/network.js';
import { Rng, miniBatchIndices } from '${DIST}/core/prng.js';
const pool = new LocalPool({ threads: 2 });
const p = initParams(50, new Rng(1));
const rss = [process.memoryUsage().rss];
for (let i = 0; i < 10; i++) await pool.gradient(p, miniBatchIndices(1, i, 100, 60000));
rss.push(process.memoryUsage().rss);
await pool.evaluate(p, 'test');
await pool.evaluate(p, 'train');
for (let i = 10; i < 20; i++) await pool.gradient(p, miniBatchIndices(1, i, 100, 60000));
rss.push(process.memoryUsage().rss);
await pool.close();
process.stdout.write(JSON.stringify(rss));
`;

describe('local pool: memory', () => {
  it('a process with 2 threads and the dataset loaded stays ≤ 300 MB resident through gradients and evaluations', () => {
    expect(existsSync(join(DIST, 'workers/pool.js')), 'run `npm run build` first').toBe(true);
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', SCRIPT], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    const rss = JSON.parse(r.stdout) as number[];
    for (const bytes of rss) expect(bytes).toBeLessThanOrEqual(300 * 1024 * 1024);
  });
});
