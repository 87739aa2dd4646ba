import { ValidationError } from './errors.js';

/** A dense row-major matrix of float64: the only array shape the core passes around. */
export interface Matrix {
  readonly rows: number;
  readonly cols: number;
  readonly data: Float64Array;
}

export function matrix(rows: number, cols: number, data: Float64Array = new Float64Array(rows * cols)): Matrix {
  if (data.length !== rows * cols) throw new ValidationError('matrix', 'data', `of length ${rows * cols} (${rows}x${cols})`, data);
  return { rows, cols, data };
}

/** A 1-D vector seen as a batch of one, as the seed's `reshape(1, size)` does. */
export function asBatch(v: Float64Array | Matrix): Matrix {
  return v instanceof Float64Array ? matrix(1, v.length, v) : v;
}
