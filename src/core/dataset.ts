import { ValidationError } from './errors.js';
import { INPUTS } from './layout.js';

/**
 * Images stay compact: one byte per pixel (0..255), scaled to [0, 1] as byte/255 only where a value
 * is used — exactly numpy's `uint8 / 255.0`. Labels are class indices.
 */
export interface Dataset {
  readonly count: number;
  readonly pixels: Uint8Array; // count × 784
  readonly labels: Uint8Array; // count
}

/** A mini-batch: the same shape as a dataset, gathered by indices (duplicates allowed). */
export type Batch = Dataset;

export function checkIndices(op: string, indices: ArrayLike<number>, datasetSize: number, field = 'indices'): void {
  if (indices.length === 0) throw new ValidationError(op, field, 'a non-empty list of training-set indices', 'an empty batch');
  for (let k = 0; k < indices.length; k++) {
    const v = indices[k];
    if (!Number.isInteger(v) || v < 0 || v >= datasetSize) {
      throw new ValidationError(op, `${field}[${k}]`, `an integer in [0, ${datasetSize})`, v);
    }
  }
}

export function gatherBatch(data: Dataset, indices: ArrayLike<number>): Batch {
  checkIndices('gatherBatch', indices, data.count);
  return gatherRows(data, indices);
}

/** gatherBatch for indices checked where they entered (a CLI option, a job loaded from Redis). */
export function gatherRows(data: Dataset, indices: ArrayLike<number>): Batch {
  const n = indices.length;
  const pixels = new Uint8Array(n * INPUTS);
  const labels = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const i = indices[k];
    pixels.set(data.pixels.subarray(i * INPUTS, (i + 1) * INPUTS), k * INPUTS);
    labels[k] = data.labels[i];
  }
  return { count: n, pixels, labels };
}

/** A contiguous sample range [start, end) of a dataset, without copying. */
export function sliceDataset(data: Dataset, start: number, end: number): Dataset {
  return { count: end - start, pixels: data.pixels.subarray(start * INPUTS, end * INPUTS), labels: data.labels.subarray(start, end) };
}

/** Pixels as float64 rows in [0, 1] (numpy's `x / 255.0`). */
export function toFloat(batch: Batch): Float64Array {
  const out = new Float64Array(batch.pixels.length);
  for (let i = 0; i < out.length; i++) out[i] = batch.pixels[i] / 255;
  return out;
}

/** Mean of all pixels in [0, 1]. */
export function meanPixel(data: Dataset): number {
  let s = 0;
  for (let i = 0; i < data.pixels.length; i++) s += data.pixels[i];
  return s / 255 / data.pixels.length;
}
