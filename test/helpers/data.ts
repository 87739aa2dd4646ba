import { readFileSync } from 'node:fs';
import { type Batch, gatherBatch } from '../../src/core/dataset.js';
import { initParams } from '../../src/core/network.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { loadMnist } from '../../src/io/mnist.js';

/** A seeded net and a seeded mini-batch of real MNIST training images. */
export function seededCase(seed: number, hidden: number, batchSize = 100): { params: Float64Array; batch: Batch; indices: Int32Array } {
  const train = loadMnist('train');
  const params = initParams(hidden, new Rng(seed));
  const indices = miniBatchIndices(seed, 0, batchSize, train.count);
  return { params, batch: gatherBatch(train, indices), indices };
}

/** Bigger weights than the 0.01 init, so that saturation and larger logits are exercised too. */
export function scaledCase(seed: number, hidden: number, batchSize: number, scale: number): { params: Float64Array; batch: Batch } {
  const train = loadMnist('train');
  const params = initParams(hidden, new Rng(seed), scale);
  const rng = new Rng(seed + 1000);
  for (let c = 784 * hidden; c < 785 * hidden; c++) params[c] = scale * rng.normal();
  for (let c = params.length - 10; c < params.length; c++) params[c] = scale * rng.normal();
  return { params, batch: gatherBatch(train, miniBatchIndices(seed, 7, batchSize, train.count)) };
}

/** max|a − b| / max|b|: the figure the issues and numpy_reference.py use. */
export function maxRelErr(a: Float64Array, b: Float64Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-300);
}

export function bytesOf(a: Float64Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** A metrics.jsonl file's lines without `seconds`, the one field (wall clock) that differs between runs. */
export function metricsOf(file: string): Record<string, unknown>[] {
  return readFileSync(file, 'utf8')
    .trim()
    .split('\n')
    .map((l) => {
      const { seconds: _s, ...m } = JSON.parse(l) as Record<string, unknown>;
      return m;
    });
}
