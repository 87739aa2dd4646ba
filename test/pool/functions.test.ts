/**
 * Registered functions on the function pool (real threads): results bitwise independent of the
 * thread count and the chunking; a 3-output module's Jacobian against its analytic one; every
 * failure mode of an evaluation fails with the function, the point and the coordinate, and the
 * pool's next job succeeds; async functions overlap up to the concurrency.
 */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { FunctionError } from '../../src/core/errors.js';
import { PURE_BUILTINS } from '../../src/core/functions.js';
import { approxDerivative, planDiff } from '../../src/core/numdiff.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { gatherBatch } from '../../src/core/dataset.js';
import { initParams, loss } from '../../src/core/network.js';
import { numericalGradient } from '../../src/core/numerical.js';
import { loadMnist } from '../../src/io/mnist.js';
import { diffBatch, mapBatch } from '../../src/workers/threads/function-batch.js';
import { FunctionPool } from '../../src/workers/threads/function-pool.js';

const DIR = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/functions');
const pools: FunctionPool[] = [];
const pool = (threads: number, concurrency?: number): FunctionPool => {
  const p = new FunctionPool({ threads, functionsDir: DIR, concurrency });
  pools.push(p);
  return p;
};
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});
const bytes = (a: Float64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('function pool: results', () => {
  const k = 3, n = 57;
  const rng = new Rng(77);
  const X = Float64Array.from({ length: k * n }, () => rng.normal());

  it.each(['central', '2-point', '3-point'] as const)('%s on rosenbrock: bitwise the same for 1, 2 and 3 threads and equal to the in-thread driver', async (method) => {
    const spec = { method, ...(method !== 'central' ? { lower: new Float64Array(n).fill(-1.5) } : {}) };
    const Xb = X.map((v) => Math.max(v, -1.5));
    const inline = new Float64Array(k * n);
    for (let p = 0; p < k; p++) inline.set(approxDerivative(PURE_BUILTINS.rosenbrock, Xb.slice(p * n, (p + 1) * n), spec).rows, p * n);
    for (const threads of [1, 2, 3]) {
      const r = await diffBatch(pool(threads), { fn: 'rosenbrock' }, Xb, k, n, spec);
      expect(r.scalar).toBe(true);
      expect(bytes(r.values).equals(bytes(inline))).toBe(true);
    }
  });

  it('diffRange of any split is bitwise the whole (3-point, f0 computed per range where needed)', async () => {
    const p = pool(2);
    // Coordinates at the upper bound go one-sided (they need f(x0)); the others stay central.
    const x0 = X.slice(0, n).map((v, i) => (i % 3 === 0 ? 0.1 : Math.min(v, 0.1)));
    const plan = planDiff(x0, { method: '3-point', upper: new Float64Array(n).fill(0.1) });
    const whole = await p.diffRange({ fn: 'rosenbrock' }, plan, 0, 0, n);
    const parts = await Promise.all([[0, 5], [5, 6], [6, 7], [7, 40], [40, n]].map(([s, e]) => p.diffRange({ fn: 'rosenbrock' }, plan, 0, s, e)));
    const joined = new Float64Array(n);
    let at = 0;
    for (const r of parts) {
      joined.set(r.values, at);
      at += r.values.length;
    }
    expect(bytes(joined).equals(bytes(whole.values))).toBe(true);
  });

  it("a 3-output module's Jacobian (k × 3 × 2) matches its analytic Jacobian", async () => {
    const P = Float64Array.of(0.7, -1.3, 2.0, 0.5);
    const r = await diffBatch(pool(2), { fn: 'spiral3' }, P, 2, 2, { method: '3-point' });
    expect([r.m, r.scalar, r.values.length]).toEqual([3, false, 12]);
    for (let p = 0; p < 2; p++) {
      const [a, b] = [P[2 * p], P[2 * p + 1]];
      const exact = [b, a, Math.cos(a), 0, 0, 3 * b * b];
      for (let c = 0; c < 6; c++) expect(Math.abs(r.values[p * 6 + c] - exact[c])).toBeLessThanOrEqual(1e-8);
    }
  });

  it('map: f at k points, the same for any thread count', async () => {
    const a = await mapBatch(pool(1), { fn: 'rosenbrock' }, X, k, n);
    const b = await mapBatch(pool(3), { fn: 'rosenbrock' }, X, k, n);
    expect(Array.from(a.values)).toEqual([0, 1, 2].map((p) => PURE_BUILTINS.rosenbrock(X.slice(p * n, (p + 1) * n))));
    expect(bytes(a.values).equals(bytes(b.values))).toBe(true);
  });

  it('mnist-loss: map gives the net\'s batch loss bitwise (core loss); central diff on an H = 1 net gives the textbook numericalGradient bitwise', async () => {
    const train = loadMnist('train');
    const args = { seed: 5, size: 20, step: 3 };
    const batch = gatherBatch(train, miniBatchIndices(args.seed, args.step, args.size, train.count));
    const nets = [initParams(2, new Rng(1)), initParams(2, new Rng(2))];
    const m = await mapBatch(pool(2), { fn: 'mnist-loss', args }, Float64Array.from([...nets[0], ...nets[1]]), 2, nets[0].length);
    expect(bytes(m.values).equals(bytes(Float64Array.from(nets.map((x) => loss(x, batch)))))).toBe(true);
    const x = initParams(1, new Rng(3));
    const d = await diffBatch(pool(2), { fn: 'mnist-loss', args: { indices: [7, 70, 700] } }, x, 1, x.length, { method: 'central' });
    const textbook = numericalGradient((v) => loss(v, gatherBatch(train, [7, 70, 700])), x);
    expect(bytes(d.values).equals(bytes(textbook))).toBe(true);
  });

  it('an unknown name fails at once, listing the names the pool has', async () => {
    await expect(pool(1).check('nope', 'diff')).rejects.toThrow(/data\.fn must be one of the functions this worker has: faulty, function_1, function_2, mnist-loss, rosenbrock, sleepy, spiral3, got "nope"/);
  });

  it('async evaluations overlap, concurrency / threads in flight per thread and never more', async () => {
    const p = pool(2, 16);
    expect(p.inflight).toBe(8);
    const r = await mapBatch(p, { fn: 'sleepy', args: { ms: 30 } }, new Float64Array(64 * 2), 64, 2);
    // Each value is the number in flight on its thread when that evaluation started.
    expect(Math.max(...r.values)).toBe(8);
  });
});

describe('function pool: every failure mode names the function, the point and the coordinate, and the pool carries on', () => {
  const p = pool(2);
  const x = new Float64Array(6);
  const cases: [string, number, RegExp][] = [
    ['throw', 2, /function "faulty" at point 0, coordinate 2 \(x\[2\] = 0\.0001\): threw Error: the simulator diverged/],
    ['nan', 4, /function "faulty" at point 0, coordinate 4 \(x\[4\] = 0\.0001\): returned NaN/],
    ['inf', 1, /function "faulty" at point 0, coordinate 1 \(x\[1\] = 0\.0001\): returned a vector of 2 where its other evaluations returned a number|returned Infinity at output 1/],
    ['shape', 3, /function "faulty" at point 0, coordinate 3( \(x\[3\] = 0\.0001\))?: returned a vector of 2 where its other evaluations returned a number/],
    ['slow', 5, /function "faulty" at point 0, coordinate 5 \(x\[5\] = 0\.0001\): did not return within 300 ms/],
    ['hang', 1, /function "faulty" at point 0, coordinate 1 \(x\[1\] = 0\.0001\): did not return within 300 ms \(its thread was stopped\)/],
    ['crash', 3, /function "faulty" at point 0, coordinate 3 \(x\[3\] = 0\.0001\): crashed its thread/],
  ];
  it.each(cases)('%s at coordinate %i', async (mode, at, msg) => {
    const err = await diffBatch(p, { fn: 'faulty', args: { mode, at }, timeoutMs: 300 }, x, 1, 6, { method: 'central' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FunctionError);
    expect((err as Error).message).toMatch(msg);
    // The next job on the same pool succeeds.
    const ok = await diffBatch(p, { fn: 'function_2' }, Float64Array.of(3, 4), 1, 2, { method: 'central' });
    expect(Array.from(ok.values)).toEqual([6.00000000000378, 7.999999999999119]);
  });

  it('map names the point', async () => {
    const P = new Float64Array(12);
    P[7] = 5e-4;
    await expect(mapBatch(p, { fn: 'faulty', args: { mode: 'throw', at: 1 } }, P, 6, 2)).rejects.toThrow(/function "faulty" at point 3: threw Error: the simulator diverged/);
  });
});
