/**
 * The seed's chapter-4 notebook, recomputed by numgrad's core: every value the notebook prints, then
 * its two figures as SVG. Values print with String(x), JS's shortest round-trip form, which is the
 * same algorithm as Python's float repr — so each line can be compared with the notebook digit by digit.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { gatherBatch, toFloat } from '../core/dataset.js';
import { crossEntropyError, oneHot, sumSquaresError } from '../core/losses.js';
import { matrix } from '../core/matrix.js';
import { gradientDescent, numericalDiff, numericalGradient } from '../core/numerical.js';
import { miniBatchIndices } from '../core/prng.js';
import { pairwiseSum } from '../core/sum.js';
import { loadMnist } from '../io/mnist.js';
import { lineChart, vectorField } from './svg.js';

export interface DemoOptions {
  out: string;
  mnistDir?: string;
  print: (line: string) => void;
}

/** The notebook's functions, written with numpy's operations in numpy's order. */
export const function1 = (x: number): number => 0.01 * x ** 2 + 0.1 * x;
export const functionTmp1 = (x0: number): number => x0 * x0 + 4.0 ** 2;
export const functionTmp2 = (x1: number): number => 3.0 ** 2 + x1 * x1;
/** np.sum(x**2): numpy squares with x*x, then sums pairwise. */
export function function2(x: Float64Array): number {
  const sq = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) sq[i] = x[i] * x[i];
  return pairwiseSum(sq);
}

/**
 * A float array as numpy's print() shows it (default options: precision 8, 'maxprec'): positional
 * with trailing zeros trimmed (`[6. 8.]`), or scientific with a common number of digits when the
 * values span more than 1e3 or go below 1e-4 (`[-6.11110793e-10  8.14814391e-10]`).
 * Line wrapping at 75 columns is not reproduced; the demo's arrays are short.
 */
export function formatNumpy(values: ArrayLike<number>): string {
  const xs = Array.from(values);
  const finite = xs.filter(Number.isFinite);
  const nonZero = finite.filter((v) => v !== 0).map(Math.abs);
  const max = Math.max(...nonZero);
  const min = Math.min(...nonZero);
  const scientific = nonZero.length > 0 && (max >= 1e8 || min < 1e-4 || max / min > 1e3);
  // Shortest round-trip digits, but never more than 8 after the point (numpy's unique + precision).
  const split = (v: number): { int: string; frac: string; exp: string } => {
    let s = scientific ? v.toExponential() : String(v);
    let [mant, exp = ''] = s.split('e');
    if ((mant.split('.')[1] ?? '').length > 8) {
      s = scientific ? v.toExponential(8) : v.toFixed(8);
      [mant, exp = ''] = s.split('e');
      mant = mant.replace(/0+$/, '');
    }
    const [int, frac = ''] = mant.split('.');
    return { int: Object.is(v, -0) ? '-0' : int, frac, exp };
  };
  const parts = finite.map(split);
  const padLeft = Math.max(0, ...parts.map((p) => p.int.length));
  const fracLen = Math.max(0, ...parts.map((p) => p.frac.length));
  const expLen = Math.max(2, ...parts.map((p) => p.exp.length - 1));
  let k = 0;
  const cells = xs.map((v) => {
    if (!Number.isFinite(v)) return (Number.isNaN(v) ? 'nan' : v > 0 ? 'inf' : '-inf').padStart(padLeft + 1 + fracLen);
    const p = parts[k++];
    const head = `${p.int.padStart(padLeft)}.`;
    if (!scientific) return head + p.frac.padEnd(fracLen);
    // Scientific: every mantissa gets the same digits; exponents get a sign and ≥ 2 digits.
    return `${head}${p.frac.padEnd(fracLen, '0')}e${p.exp[0]}${p.exp.slice(1).padStart(expLen, '0')}`;
  });
  return `[${cells.join(' ')}]`;
}

/** An integer array as numpy prints it: right-aligned to the widest entry. */
export function formatNumpyInts(values: ArrayLike<number>): string {
  const s = Array.from(values, String);
  const w = Math.max(0, ...s.map((x) => x.length));
  return `[${s.map((x) => x.padStart(w)).join(' ')}]`;
}

/** arange(lo, hi, step) by index multiplication, as numpy computes it. */
function arange(lo: number, hi: number, step: number): number[] {
  const n = Math.ceil((hi - lo) / step);
  return Array.from({ length: n }, (_, i) => lo + i * step);
}

export async function runDemo(opts: DemoOptions): Promise<{ files: string[] }> {
  const { print } = opts;
  const full = (v: Float64Array): string => `[${Array.from(v, String).join(', ')}]`;

  print('# 4.2 loss functions (t = one-hot 2)');
  const t = Float64Array.from([0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
  const y2 = Float64Array.from([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]);
  const y7 = Float64Array.from([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0]);
  print(`sum_squares_error(y=2) = ${String(sumSquaresError(y2, t))}`);
  print(`sum_squares_error(y=7) = ${String(sumSquaresError(y7, t))}`);
  print(`cross_entropy_error(y=2) = ${String(crossEntropyError(y2, t))}`);
  print(`cross_entropy_error(y=7) = ${String(crossEntropyError(y7, t))}`);
  // The batched form: y.reshape(1, 10), with a class index and with a one-hot row.
  const batchOfOne = matrix(1, 10, y2);
  print(`cross_entropy_error(batch of one, t=2) = ${String(crossEntropyError(batchOfOne, [2]))}`);
  print(`cross_entropy_error(batch of one, one-hot t) = ${String(crossEntropyError(batchOfOne, oneHot([2])))}`);

  print('# 4.3 numerical differentiation');
  print(`numerical_diff(function_1, 5) = ${String(numericalDiff(function1, 5))}`);
  print(`numerical_diff(function_1, 10) = ${String(numericalDiff(function1, 10))}`);
  print(`numerical_diff(function_tmp1, 3.0) = ${String(numericalDiff(functionTmp1, 3.0))}`);
  print(`numerical_diff(function_tmp2, 4.0) = ${String(numericalDiff(functionTmp2, 4.0))}`);

  print('# 4.4 gradient');
  for (const [a, b] of [[3.0, 4.0], [0.0, 2.0], [3.0, 0.0]]) {
    const g = numericalGradient(function2, Float64Array.from([a, b]));
    print(`numerical_gradient(function_2, [${a.toFixed(1)}, ${b.toFixed(1)}]) = ${formatNumpy(g)}  full: ${full(g)}`);
  }
  const { x: end } = gradientDescent(function2, Float64Array.from([-3.0, 4.0]), 0.1, 100);
  print(`gradient_descent(function_2, init_x=[-3.0, 4.0], lr=0.1, step_num=100) = ${formatNumpy(end)}  full: ${full(end)}`);
  print(`distance from origin = ${String(Math.hypot(end[0], end[1]))}`);

  print('# 4.2.3 mini-batch of the MNIST training set');
  const train = loadMnist('train', opts.mnistDir);
  print(`x_train (${train.count}, 784)`);
  const indices = miniBatchIndices(0, 0, 10, train.count);
  const batch = gatherBatch(train, indices);
  const xBatch = toFloat(batch);
  const tBatch = oneHot(batch.labels);
  print(`batch_mask (seed 0, step 0) = ${formatNumpyInts(indices)}`);
  print(`x_batch (${batch.count}, ${xBatch.length / batch.count})`);
  print(`t_batch (${tBatch.rows}, ${tBatch.cols})`);
  print(`t_batch labels = ${formatNumpyInts(batch.labels)}`);

  await mkdir(opts.out, { recursive: true });
  const files = [join(opts.out, 'function_1.svg'), join(opts.out, 'gradient_field.svg')];

  // Figure 4-7: function_1 with its tangent at x = 5, whose slope is the numerical derivative.
  const xs = arange(0.0, 20.0, 0.1);
  const d = numericalDiff(function1, 5);
  const tangent = (x: number): number => d * x + (function1(5) - d * 5);
  await writeFile(files[0], lineChart({
    title: 'function_1 and its tangent at x = 5',
    xLabel: 'x',
    yLabel: 'f(x)',
    series: [
      { name: 'f(x) = 0.01x² + 0.1x', points: xs.map((x) => [x, function1(x)]) },
      { name: `tangent, slope ${d.toFixed(4)}`, points: xs.map((x) => [x, tangent(x)]) },
    ],
  }));

  // Figure 4-9: −∇(x0² + x1²) points downhill, toward the minimum at the origin.
  await writeFile(files[1], vectorField({
    title: 'negative gradient of x0² + x1²',
    xRange: [-2, 2.5],
    yRange: [-2, 2.5],
    grid: 0.25,
    vector: (x0, x1) => {
      const g = numericalGradient(function2, Float64Array.from([x0, x1]));
      return [-g[0], -g[1]];
    },
  }));
  for (const f of files) print(`wrote ${f}`);
  return { files };
}
