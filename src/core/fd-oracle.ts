import type { Batch } from './dataset.js';
import { loss } from './network.js';
import { DEFAULT_H, numericalGradientRange } from './numerical.js';

/**
 * The textbook method, kept as the oracle: two full forward passes per coordinate on a copy of
 * params. ~40,000× the work of the engine for the 784-50-10 net; use it on small nets or ranges.
 */
export function naiveGradientShard(params: Float64Array, batch: Batch, start: number, end: number, h = DEFAULT_H): Float64Array {
  return numericalGradientRange((p) => loss(p, batch), Float64Array.from(params), start, end, h);
}
