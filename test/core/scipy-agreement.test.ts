/**
 * numdiff against SciPy 1.17's scipy.optimize._numdiff.approx_derivative and the notebook's
 * numerical_gradient (test/helpers/scipy_numdiff.py), bit for bit, on held-out seeded points: the
 * functions (Rosenbrock as scipy.optimize.rosen computes it, the notebook's function_2) do the
 * same float64 operations in the same order in both languages, so every derivative must be the
 * same float64. Compared as bytes. Skipped only when python3 or scipy is absent.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PURE_BUILTINS } from '../../src/core/functions.js';
import { type DiffSpec, REL_STEP_2POINT, REL_STEP_3POINT, approxDerivative } from '../../src/core/numdiff.js';
import { Rng } from '../../src/core/prng.js';
import { readNpyFile, writeNpyFile } from '../../src/io/npy-file.js';

const SCRIPT = resolve(dirname(fileURLToPath(import.meta.url)), '../helpers/scipy_numdiff.py');
const HAS_SCIPY = spawnSync('python3', ['-c', 'import scipy.optimize._numdiff'], { encoding: 'utf8' }).status === 0;
const ENV = { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' };

/** k held-out points of n coordinates: mixed scales, signs, exact zeros, large and tiny values. */
function points(seed: number, k: number, n: number): Float64Array {
  const rng = new Rng(seed);
  const x = new Float64Array(k * n);
  for (let c = 0; c < x.length; c++) {
    const r = rng.nextFloat();
    const scale = r < 0.1 ? 0 : r < 0.2 ? 1e-9 : r < 0.3 ? 1e6 : r < 0.65 ? 0.5 : 3;
    x[c] = scale * rng.normal();
  }
  return x;
}

function ours(fn: string, X: Float64Array, k: number, n: number, spec: Omit<DiffSpec, 'lower' | 'upper'>, lower?: Float64Array, upper?: Float64Array): Float64Array {
  const out = new Float64Array(k * n);
  for (let p = 0; p < k; p++) {
    const r = approxDerivative(PURE_BUILTINS[fn], X.subarray(p * n, (p + 1) * n), { ...spec, lower, upper });
    out.set(r.rows, p * n);
  }
  return out;
}

const bytes = (a: Float64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

interface Case {
  readonly name: string;
  readonly fn: string;
  readonly method: DiffSpec['method'];
  readonly X: Float64Array;
  readonly k: number;
  readonly n: number;
  readonly spec: Omit<DiffSpec, 'lower' | 'upper'>;
  readonly lower?: Float64Array;
  readonly upper?: Float64Array;
}

/** Every case, built up front: SciPy computes them all in one python3 process. */
function buildCases(): Case[] {
  const out: Case[] = [];
  const steps: { name: string; spec: Omit<DiffSpec, 'lower' | 'upper' | 'method'> }[] = [
    { name: 'default steps', spec: {} },
    { name: 'rel_step 1e-5', spec: { relStep: 1e-5 } },
    { name: 'abs_step 1e-3', spec: { absStep: 1e-3 } },
    { name: 'abs_step -2e-7 (backward; the fallback step where x0 + h == x0)', spec: { absStep: -2e-7 } },
  ];
  for (const method of ['2-point', '3-point'] as const) {
    for (const fn of ['rosenbrock', 'function_2']) {
      for (const s of steps) out.push({ name: `${method} ${fn} ${s.name}`, fn, method, X: points(fn === 'rosenbrock' ? 1501 : 1502, 6, 40), k: 6, n: 40, spec: { method, ...s.spec } });
      // Bounds per coordinate: some tight around x (inside SciPy's step), some on x, some wide.
      const k = 5, n = 30;
      const X = points(1601, k, n).map((v) => Math.max(-2, Math.min(2, v)));
      const rng = new Rng(1602);
      const lower = new Float64Array(n), upper = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const t = rng.int(4);
        lower[i] = t === 0 ? -2 : t === 1 ? -Infinity : -2 - 1e-7;
        upper[i] = t === 2 ? 2 : t === 3 ? Infinity : 2 + 3e-9;
      }
      for (let p = 0; p < k; p++) for (let i = 0; i < n; i += 3) X[p * n + i] = i % 2 ? (lower[i] === -Infinity ? 2 : lower[i]) : upper[i] === Infinity ? -2 : upper[i];
      out.push({ name: `${method} ${fn} bounds, default steps`, fn, method, X, k, n, spec: { method }, lower, upper });
      out.push({ name: `${method} ${fn} bounds, abs_step 1e-3`, fn, method, X, k, n, spec: { method, absStep: 1e-3 }, lower, upper });
      out.push({ name: `${method} ${fn} bounds, rel_step 0.3`, fn, method, X, k, n, spec: { method, relStep: 0.3 }, lower, upper });
    }
  }
  for (const fn of ['rosenbrock', 'function_2']) out.push({ name: `central ${fn} (the notebook's numerical_gradient)`, fn, method: 'central', X: points(1701, 4, 25), k: 4, n: 25, spec: { method: 'central' } });
  return out;
}

describe.skipIf(!HAS_SCIPY)('numdiff vs SciPy approx_derivative and the notebook, bitwise', () => {
  let dir: string;
  const cases = buildCases();
  const results = new Map<string, Float64Array>();
  let version = '';
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'numgrad-scipy-'));
    const jobs = cases.map((c, j) => {
      const file = (what: string): string => join(dir, `${what}-${j}.npy`);
      writeNpyFile(file('x'), c.X, [c.k, c.n]);
      if (c.lower) writeNpyFile(file('lower'), c.lower);
      if (c.upper) writeNpyFile(file('upper'), c.upper);
      return {
        fn: c.fn, method: c.method, x: file('x'), out: file('out'),
        ...(c.spec.relStep !== undefined ? { rel_step: c.spec.relStep } : {}),
        ...(c.spec.absStep !== undefined ? { abs_step: c.spec.absStep } : {}),
        ...(c.lower ? { lower: file('lower'), upper: file('upper') } : {}),
      };
    });
    writeFileSync(join(dir, 'cases.json'), JSON.stringify(jobs));
    const r = spawnSync('python3', [SCRIPT, join(dir, 'cases.json')], { encoding: 'utf8', env: ENV });
    if (r.status !== 0) throw new Error(`scipy_numdiff.py failed: ${r.stderr}`);
    version = r.stdout.trim();
    jobs.forEach((j, k) => {
      const a = readNpyFile(j.out);
      expect(a.shape).toEqual([cases[k].k, cases[k].n]);
      results.set(cases[k].name, a.data as Float64Array);
    });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('runs against SciPy 1.17 (the version whose _numdiff.py numdiff mirrors)', () => {
    expect(version).toMatch(/^1\.17\./);
  });

  it("SciPy's default relative steps are the constants numdiff uses", () => {
    const r = spawnSync('python3', ['-c', 'import numpy as np; e=np.finfo(np.float64).eps; print(float(e**0.5).hex(), float(e**(1/3)).hex())'], { encoding: 'utf8' });
    const [a, b] = r.stdout.trim().split(' ');
    expect(a).toBe('0x1.0000000000000p-26');
    expect(Number(b.replace(/^0x1\.([0-9a-f]+)p-18$/, (_m, f: string) => String((1 + parseInt(f, 16) / 2 ** 52) * 2 ** -18)))).toBe(REL_STEP_3POINT);
    expect(REL_STEP_2POINT).toBe(2 ** -26);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s: every byte equal', (_name, c) => {
    const a = ours(c.fn, c.X, c.k, c.n, c.spec, c.lower, c.upper);
    expect(bytes(a).equals(bytes(results.get(c.name) as Float64Array))).toBe(true);
  });
});
