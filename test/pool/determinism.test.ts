import { afterAll, describe, expect, it } from 'vitest';
import { fdGradient } from '../../src/core/fd-engine.js';
import { gatherBatch } from '../../src/core/dataset.js';
import { sampleLosses } from '../../src/core/network.js';
import { initParams } from '../../src/core/network.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { reduceEvaluation } from '../../src/core/reduce.js';
import { loadMnist } from '../../src/io/mnist.js';
import { OneOffGradients } from '../../src/workers/threads/one-off-gradient.js';
import { LocalPool } from '../../src/workers/threads/pool.js';
import { bytesOf } from '../helpers/data.js';

const pools: LocalPool[] = [];
const pool = (threads: number, extra: { gradientShardSize?: number; evalShardSize?: number } = {}): LocalPool => {
  const p = new LocalPool({ threads, ...extra });
  pools.push(p);
  return p;
};
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

describe('local pool: bitwise determinism', () => {
  const params = initParams(50, new Rng(11));
  const indices = miniBatchIndices(11, 0, 100, 60_000);

  it('gradient is bitwise identical for 1, 2 and 4 threads and any shard size, and to the inline engine', async () => {
    const inline = fdGradient(params, gatherBatch(loadMnist('train'), indices));
    const configs: [number, number | undefined][] = [[1, undefined], [2, undefined], [4, undefined], [2, 1], [2, 7], [4, 997], [2, 39_760], [1, 5000]];
    for (const [threads, size] of configs) {
      const g = (await pool(threads, { gradientShardSize: size }).gradient(params, indices)).gradient;
      expect(bytesOf(g).equals(bytesOf(inline)), `threads ${threads}, shard size ${size}`).toBe(true);
    }
  });

  it('a one-off command\'s threads (the main thread claiming units beside worker threads started at once): the inline bytes, for any thread count and shard size, gradient after gradient', async () => {
    const batch = gatherBatch(loadMnist('train'), indices);
    const inline = fdGradient(params, batch);
    for (const [threads, size] of [[1, undefined], [2, undefined], [2, 7], [4, 997]] as const) {
      const g = new OneOffGradients({ threads, gradientShardSize: size, startThreadsAfterMs: 0 });
      try {
        for (let k = 0; k < 2; k++) {
          const r = await g.gradient(params, batch);
          expect(bytesOf(r.gradient).equals(bytesOf(inline)), `threads ${threads}, shard size ${size}, gradient ${k}`).toBe(true);
          expect(r.threadsStartedAt === null).toBe(threads === 1);
        }
      } finally {
        await g.close();
      }
    }
  });

  it('consecutive gradients on one pool (reusing plan buffers) each give the inline bytes', async () => {
    const p = pool(2);
    const train = loadMnist('train');
    for (let step = 0; step < 4; step++) {
      const theta = initParams(50, new Rng(100 + step));
      const batch = miniBatchIndices(12, step, 100, 60_000);
      const g = (await p.gradient(theta, batch)).gradient;
      expect(bytesOf(g).equals(bytesOf(fdGradient(theta, gatherBatch(train, batch)))), `step ${step}`).toBe(true);
    }
  });

  it('a prepared gradient released twice is not handed to two later gradients at once', () => {
    const p = pool(1);
    const g = p.prepareGradient(params, indices);
    p.releaseGradient(g);
    p.releaseGradient(g); // a caller's mistake: must not put the buffer on the spare list twice
    const a = p.prepareGradient(params, indices);
    const b = p.prepareGradient(params, indices);
    expect(a.buffer).not.toBe(b.buffer);
  });

  it('evaluation (loss, accuracy) is bitwise identical for any thread and shard count', async () => {
    const test = loadMnist('test');
    const { losses, correct } = sampleLosses(params, test);
    const ref = reduceEvaluation(losses, correct);
    for (const [threads, size] of [[1, undefined], [2, undefined], [4, undefined], [2, 1000], [3, 333], [2, 10_000]] as const) {
      const r = await pool(threads, { evalShardSize: size }).evaluate(params, 'test');
      expect(Object.is(r.loss, ref.loss), `threads ${threads}, shard ${size}: loss ${r.loss} vs ${ref.loss}`).toBe(true);
      expect(r.accuracy).toBe(ref.accuracy);
      expect(r.count).toBe(10_000);
    }
  });

  it('mini-batch evaluation by indices matches the inline loss', async () => {
    const r = await pool(2).evaluate(params, { indices });
    const { losses, correct } = sampleLosses(params, gatherBatch(loadMnist('train'), indices));
    expect(Object.is(r.loss, reduceEvaluation(losses, correct).loss)).toBe(true);
  });

  it('rejects out-of-range indices with an error naming the index', async () => {
    await expect(pool(1).gradient(params, Int32Array.from([0, 60_000]))).rejects.toThrow(/indices\[1\] must be an integer in \[0, 60000\), got 60000/);
  });
});

describe('local pool: lifecycle', () => {
  it('close() stops every thread and is safe to call twice', async () => {
    const p = new LocalPool({ threads: 2 });
    await p.evaluate(initParams(10, new Rng(1)), { indices: Int32Array.from([1, 2, 3]) });
    expect(p.liveThreads).toBe(2);
    await p.close();
    await p.close();
    expect(p.liveThreads).toBe(0);
  });
});
