import { ValidationError } from './errors.js';
import { type Matrix, asBatch } from './matrix.js';
import { pairwiseSum } from './sum.js';

/**
 * The seed's guard: log(y + 1e-7) stays finite when a predicted probability is exactly 0.
 * Every loss in numgrad (and the analytic gradient used as oracle) includes it.
 */
export const CEE_DELTA = 1e-7;

/** log(p + δ): the guarded log of a predicted probability p. */
export function guardedLog(p: number): number {
  return Math.log(p + CEE_DELTA);
}

/** One sample's cross-entropy −log(p + δ), p the predicted probability of its true class. */
export function sampleCrossEntropy(p: number): number {
  return -guardedLog(p);
}

/**
 * log((p₋ + δ)/(p₊ + δ)) = sampleCrossEntropy(p₊) − sampleCrossEntropy(p₋) in exact arithmetic: one
 * log of a ratio near 1 instead of two logs subtracted (the finite-difference engine's difference).
 */
export function guardedLogRatio(pMinus: number, pPlus: number): number {
  return Math.log((pMinus + CEE_DELTA) / (pPlus + CEE_DELTA));
}

/** Targets: one-hot rows (same shape as y) or one class index per row. */
export type Targets = Float64Array | Matrix | Int32Array | Uint8Array | readonly number[];

function isLabels(t: Targets): t is Int32Array | Uint8Array | readonly number[] {
  return t instanceof Int32Array || t instanceof Uint8Array || Array.isArray(t);
}

function oneHotMatrix(op: string, y: Matrix, t: Float64Array | Matrix): Matrix {
  const tm = asBatch(t);
  if (tm.rows !== y.rows || tm.cols !== y.cols) {
    throw new ValidationError(op, 't', `one-hot targets of shape ${y.rows}x${y.cols} like y`, `${tm.rows}x${tm.cols}`);
  }
  return tm;
}

function checkLabels(op: string, y: Matrix, t: ArrayLike<number>): void {
  if (t.length !== y.rows) throw new ValidationError(op, 't', `${y.rows} class indices (one per row of y)`, t.length);
  for (let r = 0; r < t.length; r++) {
    const c = t[r];
    if (!Number.isInteger(c) || c < 0 || c >= y.cols) {
      throw new ValidationError(op, `t[${r}]`, `a class index in [0, ${y.cols})`, c);
    }
  }
}

/**
 * Sum-of-squares error 0.5·Σ(y−t)², divided by the batch size; a 1-D y is a batch of one, so the
 * single form is the seed's `0.5 * np.sum((y - t)**2)`. Summed in numpy's order.
 */
export function sumSquaresError(y: Float64Array | Matrix, t: Targets): number {
  const op = 'sumSquaresError';
  const ym = asBatch(y);
  const d = new Float64Array(ym.data.length);
  if (isLabels(t)) {
    checkLabels(op, ym, t);
    for (let r = 0; r < ym.rows; r++) {
      for (let k = 0; k < ym.cols; k++) {
        const v = ym.data[r * ym.cols + k] - (t[r] === k ? 1 : 0);
        d[r * ym.cols + k] = v * v;
      }
    }
  } else {
    const tm = oneHotMatrix(op, ym, t);
    for (let i = 0; i < d.length; i++) {
      const v = ym.data[i] - tm.data[i];
      d[i] = v * v;
    }
  }
  return (0.5 * pairwiseSum(d)) / ym.rows;
}

/**
 * Cross-entropy error −Σ t·log(y + 1e-7) / batch. One-hot targets follow the seed's
 * `-np.sum(t * np.log(y + delta)) / batch_size` (every element, in numpy's order); class indices
 * follow `-np.sum(np.log(y[np.arange(n), t] + delta)) / n`.
 */
export function crossEntropyError(y: Float64Array | Matrix, t: Targets): number {
  const op = 'crossEntropyError';
  const ym = asBatch(y);
  if (isLabels(t)) {
    checkLabels(op, ym, t);
    const l = new Float64Array(ym.rows);
    for (let r = 0; r < ym.rows; r++) l[r] = guardedLog(ym.data[r * ym.cols + t[r]]);
    return -pairwiseSum(l) / ym.rows;
  }
  const tm = oneHotMatrix(op, ym, t);
  const p = new Float64Array(ym.data.length);
  for (let i = 0; i < p.length; i++) p[i] = tm.data[i] * guardedLog(ym.data[i]);
  return -pairwiseSum(p) / ym.rows;
}

/** One-hot rows for class indices. */
export function oneHot(labels: ArrayLike<number>, classes = 10): Matrix {
  const data = new Float64Array(labels.length * classes);
  for (let r = 0; r < labels.length; r++) data[r * classes + labels[r]] = 1;
  return { rows: labels.length, cols: classes, data };
}
