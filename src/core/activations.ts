import { type Matrix, matrix } from './matrix.js';

export function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

/**
 * Row-wise softmax. Subtracting each row's maximum before exp keeps every exponent ≤ 0, so
 * exp never overflows (softmax is invariant to a constant shift): [1010, 1000, 990] gives finite
 * probabilities where the naive form gives NaN.
 */
export function softmax(a: Matrix): Matrix {
  const { rows, cols, data } = a;
  const out = new Float64Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let m = -Infinity;
    for (let k = 0; k < cols; k++) if (data[o + k] > m) m = data[o + k];
    let s = 0;
    for (let k = 0; k < cols; k++) {
      const e = Math.exp(data[o + k] - m);
      out[o + k] = e;
      s += e;
    }
    for (let k = 0; k < cols; k++) out[o + k] /= s;
  }
  return matrix(rows, cols, out);
}

/** Softmax of a single vector. */
export function softmaxVec(v: Float64Array): Float64Array {
  return softmax(matrix(1, v.length, v)).data;
}
