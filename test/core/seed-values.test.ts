/**
 * The values the seed's chapter-4 notebook prints, recomputed with the core functions. Compared as
 * strings: String(x) is the shortest round-trip form, like Python's repr, so a one-ulp difference
 * in any sum or difference shows up here.
 */
import { describe, expect, it } from 'vitest';
import { sigmoid, softmaxVec } from '../../src/core/activations.js';
import { crossEntropyError, oneHot, sumSquaresError } from '../../src/core/losses.js';
import { matrix } from '../../src/core/matrix.js';
import { gradientDescent, numericalDiff, numericalGradient } from '../../src/core/numerical.js';
import { pairwiseSum } from '../../src/core/sum.js';

const t = Float64Array.from([0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
const y2 = Float64Array.from([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0]);
const y7 = Float64Array.from([0.1, 0.05, 0.1, 0.0, 0.05, 0.1, 0.0, 0.6, 0.0, 0.0]);

// The notebook's functions, with numpy's operations (x**2 on an array is x*x; np.sum is pairwise).
const function1 = (x: number): number => 0.01 * x ** 2 + 0.1 * x;
const functionTmp1 = (x0: number): number => x0 * x0 + 4.0 ** 2;
const functionTmp2 = (x1: number): number => 3.0 ** 2 + x1 * x1;
const function2 = (x: Float64Array): number => pairwiseSum(x.map((v) => v * v));

describe('seed values: losses', () => {
  it('sum_squares_error', () => {
    expect(String(sumSquaresError(y2, t))).toBe('0.09750000000000003');
    expect(String(sumSquaresError(y7, t))).toBe('0.5975');
  });

  it('cross_entropy_error, 1-D and as a batch of one', () => {
    expect(String(crossEntropyError(y2, t))).toBe('0.510825457099338');
    expect(String(crossEntropyError(y7, t))).toBe('2.302584092994546');
    const batch = matrix(1, 10, y2);
    expect(String(crossEntropyError(batch, [2]))).toBe('0.510825457099338');
    expect(String(crossEntropyError(batch, oneHot([2])))).toBe('0.510825457099338');
  });
});

describe('seed values: numerical differentiation', () => {
  it('numerical_diff of function_1', () => {
    expect(String(numericalDiff(function1, 5))).toBe('0.1999999999990898');
    expect(String(numericalDiff(function1, 10))).toBe('0.2999999999986347');
  });

  it('partial derivatives', () => {
    expect(String(numericalDiff(functionTmp1, 3.0))).toBe('6.00000000000378');
    expect(String(numericalDiff(functionTmp2, 4.0))).toBe('7.999999999999119');
  });

  it('numerical_gradient of function_2', () => {
    expect(Array.from(numericalGradient(function2, Float64Array.from([3, 4])), String)).toEqual(['6.00000000000378', '7.999999999999119']);
    expect(Array.from(numericalGradient(function2, Float64Array.from([0, 2])), String)).toEqual(['0', '4.000000000004']);
    expect(Array.from(numericalGradient(function2, Float64Array.from([3, 0])), String)).toEqual(['6.000000000012662', '0']);
  });

  it("gradient_descent from (-3, 4) ends at the book's point, ~1e-9 from the origin", () => {
    const { x, history } = gradientDescent(function2, Float64Array.from([-3.0, 4.0]), 0.1, 100);
    expect(history).toHaveLength(100);
    // The book prints [-6.11110793e-10  8.14814391e-10]; the full values are Python's, digit for digit.
    expect(x[0].toExponential(8)).toBe('-6.11110793e-10');
    expect(x[1].toExponential(8)).toBe('8.14814391e-10');
    expect(Array.from(x, String)).toEqual(['-6.111107928998789e-10', '8.148143905314271e-10']);
    // Each coordinate is within 1e-9 of 0 (the Euclidean distance is 1.0185e-9 = 5·0.8^100: each step
    // scales x by 1 − 2·lr, so the book's own point is that far).
    expect(Math.max(Math.abs(x[0]), Math.abs(x[1]))).toBeLessThan(1e-9);
    expect(Math.hypot(x[0], x[1])).toBeLessThan(1.02e-9);
  });
});

describe('seed values: activations', () => {
  it('sigmoid basics', () => {
    expect(sigmoid(0)).toBe(0.5);
    expect(sigmoid(40)).toBeCloseTo(1, 15);
    expect(sigmoid(-1000)).toBe(0);
    expect(sigmoid(1) + sigmoid(-1)).toBeCloseTo(1, 15);
  });

  it('softmax of [1010, 1000, 990] is finite and sums to 1', () => {
    const p = softmaxVec(Float64Array.from([1010, 1000, 990]));
    expect(Array.from(p).every(Number.isFinite)).toBe(true);
    expect(Math.abs(p[0] + p[1] + p[2] - 1)).toBeLessThanOrEqual(1e-15);
  });

  it('softmax of [0.3, 2.9, 4.0] matches numpy', () => {
    const p = softmaxVec(Float64Array.from([0.3, 2.9, 4.0]));
    const numpy = [0.01821127, 0.24519181, 0.73659691];
    numpy.forEach((v, i) => expect(Math.abs(p[i] - v)).toBeLessThan(1e-8));
  });
});
