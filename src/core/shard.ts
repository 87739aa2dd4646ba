import { ValidationError } from './errors.js';

/** A half-open range [start, end): the unit of distribution (coordinates of a gradient, samples of a split). */
export interface Range {
  readonly start: number;
  readonly end: number;
}

/** `total` split into `count` contiguous ranges whose sizes differ by at most one. */
export function splitEven(total: number, count: number): Range[] {
  if (!Number.isInteger(total) || total < 0) throw new ValidationError('splitEven', 'total', 'an integer ≥ 0', total);
  if (!Number.isInteger(count) || count < 1) throw new ValidationError('splitEven', 'count', 'an integer ≥ 1', count);
  const n = Math.min(count, Math.max(total, 1));
  const out: Range[] = [];
  for (let k = 0; k < n; k++) out.push({ start: Math.floor((k * total) / n), end: Math.floor(((k + 1) * total) / n) });
  return out;
}

/** `total` split into ranges of `size` (the last one shorter). */
export function splitBySize(total: number, size: number): Range[] {
  if (!Number.isInteger(size) || size < 1) throw new ValidationError('splitBySize', 'size', 'an integer ≥ 1', size);
  const out: Range[] = [];
  for (let s = 0; s < total; s += size) out.push({ start: s, end: Math.min(total, s + size) });
  if (out.length === 0) out.push({ start: 0, end: 0 });
  return out;
}

/** Shards of an evaluation over `total` samples: 2 per worker (the work per sample is uniform). */
export function evaluationShards(total: number, workers: number, size?: number): Range[] {
  if (size !== undefined) return splitBySize(total, size);
  return splitEven(total, Math.max(1, workers * 2));
}
