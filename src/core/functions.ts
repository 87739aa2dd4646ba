/**
 * The pure built-in functions a worker always has (the chapter-4 net's loss, which needs MNIST, is
 * added by the worker's registry). Their arithmetic is numpy's, operation for operation, so their
 * derivatives can be compared with SciPy's bit for bit: squares are x·x (numpy's x**2 and x**2.0),
 * sums are numpy's pairwise sum.
 */
import { ValidationError } from './errors.js';
import { pairwiseSum } from './sum.js';

/** The notebook's function_1: 0.01·x² + 0.1·x, of one coordinate. */
export function function1(x: Float64Array): number {
  if (x.length !== 1) throw new ValidationError('function_1', 'x', 'one coordinate (function_1 is f(x) = 0.01x² + 0.1x)', `${x.length} coordinates`);
  const v = x[0];
  return 0.01 * (v * v) + 0.1 * v;
}

/** The notebook's function_2: np.sum(x**2). */
export function function2(x: Float64Array): number {
  const sq = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) sq[i] = x[i] * x[i];
  return pairwiseSum(sq);
}

/**
 * n-D Rosenbrock as scipy.optimize.rosen computes it:
 * np.sum(100.0*(x[1:] - x[:-1]**2.0)**2.0 + (1 - x[:-1])**2.0) (n ≥ 2).
 */
export function rosenbrock(x: Float64Array): number {
  if (x.length < 2) throw new ValidationError('rosenbrock', 'x', 'at least 2 coordinates', `${x.length}`);
  const terms = new Float64Array(x.length - 1);
  for (let i = 0; i < terms.length; i++) {
    const d = x[i + 1] - x[i] * x[i];
    const o = 1 - x[i];
    terms[i] = 100.0 * (d * d) + o * o;
  }
  return pairwiseSum(terms);
}

/** The pure built-ins by name. */
export const PURE_BUILTINS: Readonly<Record<string, (x: Float64Array) => number>> = {
  function_1: function1,
  function_2: function2,
  rosenbrock,
};
