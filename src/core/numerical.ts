import { ValidationError } from './errors.js';

/**
 * Central differences, as the book writes them. h = 1e-4: small enough that the truncation error
 * (h²/6·f''') is ~1e-9 relative for this net, large enough that rounding in f(x±h) (~1e-16·|f|)
 * divided by 2h stays ~1e-12. Much smaller h (the book's 1e-50 example) rounds x+h back to x.
 */
export const DEFAULT_H = 1e-4;

export function checkStep(op: string, h: number): void {
  if (!(h > 0) || !Number.isFinite(h)) throw new ValidationError(op, 'h', 'a finite number > 0', h);
}

/** (f(x+h) − f(x−h)) / 2h. */
export function numericalDiff(f: (x: number) => number, x: number, h = DEFAULT_H): number {
  checkStep('numericalDiff', h);
  return (f(x + h) - f(x - h)) / (2 * h);
}

/**
 * Numerical gradient of a scalar function of a flat vector: each coordinate is perturbed in place
 * (x is the caller's array, as in the book), and restored to its exact old value after use.
 */
export function numericalGradient(f: (x: Float64Array) => number, x: Float64Array, h = DEFAULT_H): Float64Array {
  return numericalGradientRange(f, x, 0, x.length, h);
}

/**
 * The same for coordinates [start, end) only: the naive reference (two full evaluations of f per
 * coordinate), and the fallback for any scalar function that has no incremental form.
 */
export function numericalGradientRange(
  f: (x: Float64Array) => number,
  x: Float64Array,
  start: number,
  end: number,
  h = DEFAULT_H,
): Float64Array {
  checkStep('numericalGradient', h);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > x.length || start > end) {
    throw new ValidationError('numericalGradient', 'range', `integers 0 ≤ start ≤ end ≤ ${x.length}`, `[${start}, ${end})`);
  }
  const grad = new Float64Array(end - start);
  for (let i = start; i < end; i++) {
    const old = x[i];
    x[i] = old + h;
    const f1 = f(x);
    x[i] = old - h;
    const f2 = f(x);
    x[i] = old;
    grad[i - start] = (f1 - f2) / (2 * h);
  }
  return grad;
}

/** Plain gradient descent from a copy of `init`; returns the final point and every visited point. */
export function gradientDescent(
  f: (x: Float64Array) => number,
  init: Float64Array,
  lr = 0.01,
  steps = 100,
  grad: (f: (x: Float64Array) => number, x: Float64Array) => Float64Array = numericalGradient,
): { x: Float64Array; history: Float64Array[] } {
  if (!(lr > 0) || !Number.isFinite(lr)) throw new ValidationError('gradientDescent', 'lr', 'a finite number > 0', lr);
  if (!Number.isInteger(steps) || steps < 0) throw new ValidationError('gradientDescent', 'steps', 'an integer ≥ 0', steps);
  const x = Float64Array.from(init);
  const history: Float64Array[] = [];
  for (let s = 0; s < steps; s++) {
    history.push(Float64Array.from(x));
    const g = grad(f, x);
    for (let i = 0; i < x.length; i++) x[i] -= lr * g[i];
  }
  return { x, history };
}
