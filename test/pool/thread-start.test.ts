import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { fdGradient } from '../../src/core/fd-engine.js';
import { LocalPool } from '../../src/workers/threads/pool.js';
import { bytesOf, seededCase } from '../helpers/data.js';

describe('LocalPool threads start without MNIST', () => {
  it('a pool whose MNIST folder does not exist computes a gradient of a batch the caller holds (bitwise fdGradient), and names the folder only when an evaluation needs it', async () => {
    const missing = join(tmpdir(), 'numgrad-no-mnist-here');
    const pool = new LocalPool({ threads: 2, mnistDir: missing });
    try {
      const { params, batch } = seededCase(0, 50);
      const r = await pool.gradientOfBatch(params, batch);
      expect(bytesOf(r.gradient).equals(bytesOf(fdGradient(params, batch)))).toBe(true);
      await expect(pool.evaluate(params, 'test')).rejects.toThrow(new RegExp(`${missing}/t10k-images-idx3-ubyte: file not found`));
    } finally {
      await pool.close();
    }
  });

  it('evaluation shards bring their split to the threads: the loss over the test set is the same with 1 and 2 threads', async () => {
    const { params } = seededCase(2, 50);
    const one = new LocalPool({ threads: 1 });
    const two = new LocalPool({ threads: 2 });
    try {
      const a = await one.evaluate(params, 'test');
      const b = await two.evaluate(params, 'test');
      expect(a.count).toBe(10000);
      expect(Object.is(a.loss, b.loss)).toBe(true);
      expect(a.correct).toBe(b.correct);
    } finally {
      await one.close();
      await two.close();
    }
  });
});
