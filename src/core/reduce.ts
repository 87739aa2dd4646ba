import type { ShardOrigin } from './contract.js';
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

/** How a child's values met the ones already placed: none of its range covered before, the exact range of an earlier child, or part of one or more. */
export type Placement = 'new' | 'duplicate' | 'overlap';

/**
 * Reduction of results that arrive with their own ranges (the queue's children, any cover a client
 * chose). Values are placed by range; a range that overlaps earlier ones is accepted only when the
 * overlap is bitwise equal (the work is deterministic, so two honest children that computed the
 * same coordinates agree to the bit), else the reducer fails naming both children and the index.
 */
export class CoverAssembler {
  readonly out: Float64Array;
  private readonly children: { readonly name: string; readonly start: number; readonly end: number }[] = [];

  constructor(
    readonly op: string,
    readonly total: number,
  ) {
    this.out = new Float64Array(total);
  }

  put(child: string, start: number, end: number, values: Float64Array): Placement {
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > this.total || end <= start) {
      throw new ValidationError(this.op, `range of child ${child}`, `within [0, ${this.total})`, `[${start}, ${end})`);
    }
    if (values.length !== end - start) throw new ValidationError(this.op, `values of child ${child}`, `${end - start} values for [${start}, ${end})`, values.length);
    // Ranges, not a mark per index: the usual cover (a few disjoint children) costs a copy and no loop
    // over its values; only the indices two children share are compared.
    let overlapped = false;
    let duplicate = false;
    for (const other of this.children) {
      const lo = Math.max(start, other.start);
      const hi = Math.min(end, other.end);
      if (lo >= hi) continue;
      overlapped = true;
      if (other.start === start && other.end === end) duplicate = true;
      const i = firstDifference(this.out, lo, values, lo - start, hi - lo);
      if (i >= 0) {
        const j = i - start;
        throw new ValidationError(
          this.op,
          `data of child ${child}`,
          `bitwise equal to child ${other.name}'s where their ranges [${start}, ${end}) and [${other.start}, ${other.end}) overlap (index ${i}: ${num(values[j])} here, ${num(this.out[i])} there)`,
        );
      }
    }
    this.children.push({ name: child, start, end });
    this.out.set(values, start);
    return duplicate ? 'duplicate' : overlapped ? 'overlap' : 'new';
  }

  /** The first index no child covered, or −1 when every one is in. */
  firstGap(): number {
    let pos = 0;
    for (const c of [...this.children].sort((x, y) => x.start - y.start)) {
      if (c.start > pos) return pos;
      pos = Math.max(pos, c.end);
    }
    return pos < this.total ? pos : -1;
  }
}

/**
 * The first index in [at, at + n) of `a` whose bytes differ from `b` at the same offset from `from`,
 * or −1. Bitwise: compared as bytes, so −0 ≠ 0 and NaN payloads count (=== would say otherwise).
 */
function firstDifference(a: Float64Array, at: number, b: Float64Array, from: number, n: number): number {
  const x = new Uint8Array(a.buffer, a.byteOffset + 8 * at, 8 * n);
  const y = new Uint8Array(b.buffer, b.byteOffset + 8 * from, 8 * n);
  for (let k = 0; k < x.length; k++) if (x[k] !== y[k]) return at + Math.floor(k / 8);
  return -1;
}

const num = (x: number): string => (Object.is(x, -0) ? '-0' : String(x));
const short = (v: unknown): string => (typeof v === 'string' && /^[0-9a-f]{64}$/.test(v) ? `${v.slice(0, 12)}…` : v === undefined ? 'absent' : typeof v === 'string' ? JSON.stringify(v) : String(v));

/**
 * A child's result must have been computed on its parent's inputs: the job kind, params version, H,
 * batch, h and split, in that order; the first that differs fails the reducer, naming the child and
 * the field. Without this a gradient of children on two params versions (or two h, or two batches)
 * would complete as a mix of both.
 */
export function checkOrigin(op: string, child: string, expected: ShardOrigin, got: ShardOrigin): void {
  if (got.job !== expected.job) throw new ValidationError(op, `job name of child ${child}`, `"${expected.job}" (the kind ${op} assembles)`, got.job);
  for (const field of ['params', 'hidden', 'batch', 'h', 'split'] as const) {
    const want = expected[field];
    const have = got[field];
    if (want !== have) throw new ValidationError(op, `data.${field} of child ${child}`, `${short(want)} (the parent's)`, have === undefined ? 'absent' : typeof have === 'string' && /^[0-9a-f]{64}$/.test(have) ? short(have) : have);
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
