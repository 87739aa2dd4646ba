/**
 * numgrad against the independent numpy reference (../shared/bench/numpy_reference.py), on the
 * same inputs passed through .npy files written by numgrad:
 *  - fdGradient vs numpy's textbook central differences (two full forward passes per coordinate)
 *    on a seeded sample of 150 coordinates: same h, same loss, so they agree to ≤ 1e-8 relative;
 *  - analyticGradient vs numpy's backprop (with the 1e-7 guard): ≤ 1e-12 relative (two exact
 *    computations of one formula, differing only in summation order).
 * Skipped when python3, numpy or the reference script is missing.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fdGradient } from '../../src/core/fd-engine.js';
import { analyticGradient, sampleLosses } from '../../src/core/network.js';
import { reduceEvaluation } from '../../src/core/reduce.js';
import { loadMnist, mnistDir } from '../../src/io/mnist.js';
import { readNpyFile, writeNpyFile } from '../../src/io/npy-file.js';
import { maxRelErr, scaledCase, seededCase } from '../helpers/data.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const REFERENCE = resolve(ROOT, '../shared/bench/numpy_reference.py');
const HAS_NUMPY = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
const SKIP = !HAS_NUMPY || !existsSync(REFERENCE);
const SAMPLED = 150;
/**
 * One BLAS thread: these matrices are small, and OpenBLAS's spinning threads make numpy 10-20×
 * slower when the test runner keeps the other cores busy.
 */
const ENV = { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' };

function reference(...args: string[]): string {
  const r = spawnSync('python3', [REFERENCE, ...args], { encoding: 'utf8', env: ENV });
  if (r.error !== undefined) throw r.error;
  if (r.status !== 0) throw new Error(`numpy_reference.py ${args.join(' ')} exited with ${r.status}: ${r.stderr}`);
  return r.stdout;
}

describe.skipIf(SKIP)('numgrad vs numpy_reference.py (H = 50, batch of 100)', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'numgrad-numpy-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  describe.each([1, 2])('seed %i', (seed) => {
    const { params, batch, indices } = seededCase(seed, 50);
    const files = (): { p: string; i: string; data: string } => {
      const p = join(dir, `params-${seed}.npy`);
      const i = join(dir, `indices-${seed}.npy`);
      if (!existsSync(p)) writeNpyFile(p, params);
      if (!existsSync(i)) writeNpyFile(i, indices);
      return { p, i, data: mnistDir() };
    };

    it(`fdGradient matches the numpy textbook on ${SAMPLED} sampled coordinates to ≤ 1e-8 of max|g|`, () => {
      const { p, i, data } = files();
      const out = join(dir, `textbook-${seed}.npy`);
      reference('textbook', '--data', data, '--params', p, '--indices', i, '--coords', String(SAMPLED), '--seed', String(seed), '--out', out);
      const numpy = readNpyFile(out).data as Float64Array;
      expect(numpy.length).toBe(params.length);
      const ours = fdGradient(params, batch);
      const sampled: number[] = [];
      for (let c = 0; c < numpy.length; c++) if (!Number.isNaN(numpy[c])) sampled.push(c);
      expect(sampled.length).toBe(SAMPLED);
      const err = maxRelErr(Float64Array.from(sampled, (c) => ours[c]), Float64Array.from(sampled, (c) => numpy[c]));
      expect(err).toBeLessThanOrEqual(1e-8);
    });

    it('analyticGradient matches numpy backprop to ≤ 1e-12 relative', () => {
      const { p, i, data } = files();
      const out = join(dir, `analytic-${seed}.npy`);
      reference('analytic', '--data', data, '--params', p, '--indices', i, '--out', out);
      const numpy = readNpyFile(out).data as Float64Array;
      expect(numpy.length).toBe(params.length);
      expect(maxRelErr(analyticGradient(params, batch), numpy)).toBeLessThanOrEqual(1e-12);
    });
  });

  // numpy prints loss with 12 decimals (±5e-13, i.e. ~2e-13 relative for a loss near 2.3) and
  // accuracy with 4, so the loss is held to 1e-12 relative and the accuracy to numpy's exact string
  // (k/10000 on the test split is exact in 4 decimals).
  it.each(['test', 'train'] as const)('evaluation over the %s split agrees with numpy: loss ≤ 1e-12 relative, accuracy exactly', (split) => {
    const { params } = scaledCase(4, 50, 1, 0.3);
    const p = join(dir, `params-eval-${split}.npy`);
    writeNpyFile(p, params);
    const text = reference('loss', '--data', mnistDir(), '--params', p, '--split', split);
    const m = /loss=([\d.]+) accuracy=([\d.]+)/.exec(text);
    expect(m, text).not.toBeNull();
    const data = loadMnist(split);
    const { losses, correct } = sampleLosses(params, data);
    const ours = reduceEvaluation(losses, correct);
    const numpyLoss = Number(m?.[1]);
    expect(Math.abs(ours.loss - numpyLoss) / numpyLoss).toBeLessThanOrEqual(1e-12);
    expect(ours.accuracy.toFixed(4)).toBe(m?.[2]);
  });
});

