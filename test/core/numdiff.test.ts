import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { function1, function2, rosenbrock } from '../../src/core/functions.js';
import { approxDerivative, combine, evaluationsFor, planDiff, transposeRows } from '../../src/core/numdiff.js';

describe('numdiff: the notebook values', () => {
  it('central: the derivative of function_1 at 5 is 0.1999999999990898, at 10 0.2999999999986347', () => {
    expect(approxDerivative(function1, Float64Array.of(5), { method: 'central' }).rows[0]).toBe(0.1999999999990898);
    expect(approxDerivative(function1, Float64Array.of(10), { method: 'central' }).rows[0]).toBe(0.2999999999986347);
  });

  it('central: the gradient of function_2 at (3, 4) is [6.00000000000378, 7.999999999999119], at (0, 2) [0, 4.000000000004]', () => {
    expect(Array.from(approxDerivative(function2, Float64Array.of(3, 4), { method: 'central' }).rows)).toEqual([6.00000000000378, 7.999999999999119]);
    expect(Array.from(approxDerivative(function2, Float64Array.of(0, 2), { method: 'central' }).rows)).toEqual([0, 4.000000000004]);
  });

  it('3-point divides by the representable (x + h) − (x − h), not 2h: at x = 5, h = 1e-4 the two differ', () => {
    const plan = planDiff(Float64Array.of(5), { method: '3-point', absStep: 1e-4 });
    const { values } = evaluationsFor(plan, 0, 1);
    const f = (v: number): number => function1(Float64Array.of(v));
    const ours = combine(plan, 0, 1, Float64Array.from(values, f), 1)[0];
    const twoH = (f(values[1]) - f(values[0])) / 2e-4;
    expect(ours).not.toBe(twoH);
    expect(Math.abs(ours - twoH) / Math.abs(ours)).toBeLessThan(1e-11);
  });
});

describe('numdiff: Jacobians', () => {
  // f: R^2 → R^3, (x0·x1, sin x0, x1³) with Jacobian [[x1, x0], [cos x0, 0], [0, 3x1²]].
  const f = (x: Float64Array): Float64Array => Float64Array.of(x[0] * x[1], Math.sin(x[0]), x[1] ** 3);
  const x = Float64Array.of(0.7, -1.3);
  const exact = [-1.3, 0.7, Math.cos(0.7), 0, 0, 3 * 1.3 * 1.3];
  // Tolerances: the truncation terms, h²/6·|f'''| ≤ 1e-8 for central (h = 1e-4), h²/6·6 with SciPy's 3-point
  // step (6e-6) ~4e-11, h/2·|f''| with its 2-point step (1.5e-8) ~6e-8.
  it.each([['central', 2e-8], ['3-point', 1e-9], ['2-point', 1e-7]] as const)('%s: the Jacobian of a 3-output function matches the analytic one (abs ≤ %s)', (method, tol) => {
    const { rows, m } = approxDerivative(f, x, { method });
    expect(m).toBe(3);
    const J = transposeRows(rows, 2, 3);
    for (let k = 0; k < 6; k++) expect(Math.abs(J[k] - exact[k])).toBeLessThanOrEqual(tol);
  });
});

describe('numdiff: options are checked and named', () => {
  it.each([
    [{ method: 'central', relStep: 1e-3 }, /rel-step\/abs-step\/lower\/upper must be absent with method central/],
    [{ method: '2-point', h: 1e-3 }, /h must be absent with method 2-point/],
    [{ method: '3-point', relStep: 1e-3, absStep: 1e-3 }, /abs-step must be absent when rel-step is given/],
    [{ method: 'forward' }, /method must be one of central, 2-point, 3-point/],
    [{ method: '2-point', lower: Float64Array.of(1, 0) }, /x\[0\] must be within the bounds \[1, Infinity\]/],
    [{ method: '2-point', upper: Float64Array.of(1) }, /upper must be 2 values/],
  ])('%j', (spec, msg) => {
    expect(() => planDiff(Float64Array.of(0.5, 2), spec as never)).toThrow(ValidationError);
    expect(() => planDiff(Float64Array.of(0.5, 2), spec as never)).toThrow(msg);
  });

  it('rosenbrock refuses one coordinate; function_1 more than one', () => {
    expect(() => rosenbrock(Float64Array.of(1))).toThrow(/rosenbrock: x must be at least 2 coordinates/);
    expect(() => function1(Float64Array.of(1, 2))).toThrow(/function_1: x must be one coordinate/);
  });
});
