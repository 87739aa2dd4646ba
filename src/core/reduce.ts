import { ValidationError } from './errors.js';
import type { Range } from './shard.js';
import { pairwiseSum } from './sum.js';

/**
 * Reduction of shard results. Results are placed by their range, never by arrival order, so the
 * output does not depend on which worker computed what or when; a shard delivered twice writes the
 * same bytes to the same place.
 */
export class RangeAssembler {
  readonly out: Float64Array;
  private readonly seen: Uint8Array;
  private filled = 0;

  constructor(
    readonly total: number,
    readonly ranges: readonly Range[],
  ) {
    this.out = new Float64Array(total);
    this.seen = new Uint8Array(ranges.length);
  }

  /** Places shard k's values; returns true when every shard is in. */
  put(k: number, values: Float64Array): boolean {
    const r = this.ranges[k];
    if (r === undefined) throw new ValidationError('reduce', 'shard', `an index in [0, ${this.ranges.length})`, k);
    if (values.length !== r.end - r.start) throw new ValidationError('reduce', `shard ${k}`, `${r.end - r.start} values`, values.length);
    this.out.set(values, r.start);
    if (this.seen[k] === 0) {
      this.seen[k] = 1;
      this.filled++;
    }
    return this.complete;
  }

  get complete(): boolean {
    return this.filled === this.ranges.length;
  }
}

/**
 * Mean loss and accuracy from per-sample losses in sample order: the sum is pairwise over the whole
 * array (numpy's order), so it is bitwise the same for any number of shards.
 */
export function reduceEvaluation(losses: Float64Array, correct: number): { loss: number; accuracy: number; count: number; correct: number } {
  const n = losses.length;
  if (n === 0) throw new ValidationError('reduceEvaluation', 'losses', 'at least one sample', 0);
  return { loss: pairwiseSum(losses) / n, accuracy: correct / n, count: n, correct };
}
