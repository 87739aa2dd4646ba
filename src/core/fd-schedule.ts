import { ValidationError } from './errors.js';
import type { FdEngine } from './fd-engine.js';
import { layout } from './layout.js';
import { type Range, splitBySize, splitEven } from './shard.js';

/**
 * The work of one gradient range as a list of units that threads claim in order from one counter
 * in shared memory (Atomics.add), so a unit costs an atomic increment rather than a round trip
 * through the thread that hands out work. Which thread runs a unit never changes a value: every
 * derivative is a pure function of the plan.
 *
 * The order is chosen for the hardware, not for the values:
 *  1. the W2/b2 coordinates (they read only the forward pass, not the memo),
 *  2. the memo rows D(n, level, ·), in row order, in small blocks: each thread fills its own
 *     stretch of the memo, sample by sample, so the sample's cached activations stay in its cache
 *     and no cache line is written by two threads (rows computed on demand in pixel order would
 *     jump between samples, and both threads would write next to what the other reads),
 *  3. the W1/b1 coordinates: sums of memo rows. A row still being filled by the other thread at
 *     the turn from 2 to 3 is computed again by whoever needs it (same bits), so no thread ever
 *     waits for another.
 */
export const UNIT_COORDS = 0;
export const UNIT_ROWS = 1;
const FIELDS = 3;

/** Memo-row blocks per worker: fine enough that the turn to phase 3 costs little duplicated work. */
const ROW_BLOCKS_PER_WORKER = 64;
/** Coordinate shards per worker in each coordinate phase (one when there is a single worker). */
const SHARDS_PER_WORKER = 8;

/**
 * Units for coordinates [start, end) of a plan with `rows` memo rows and `hidden` units, for
 * `workers` threads. `shardSize` (coordinates per unit) overrides the adapted default. Memo rows
 * get units of their own only when the range is the whole gradient (a part of it needs only some
 * rows, which its coordinates then compute on demand). Encoded as [kind, start, end] triples.
 */
export function scheduleGradient(hidden: number, rows: number, start: number, end: number, workers: number, shardSize?: number): Int32Array {
  const l = layout(hidden);
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > l.length || start > end) {
    throw new ValidationError('gradientRange', 'range', `integers 0 ≤ start ≤ end ≤ ${l.length}`, `[${start}, ${end})`);
  }
  if (!Number.isInteger(workers) || workers < 1) throw new ValidationError('gradientRange', 'workers', 'an integer ≥ 1', workers);
  const units: number[] = [];
  const coords = (a: number, b: number): void => {
    if (a >= b) return;
    const parts: Range[] = shardSize !== undefined ? splitBySize(b - a, shardSize) : splitEven(b - a, workers === 1 ? 1 : workers * SHARDS_PER_WORKER);
    for (const r of parts) units.push(UNIT_COORDS, a + r.start, a + r.end);
  };
  coords(Math.max(start, l.w2), end);
  if (start === 0 && end === l.length && rows > 0) {
    for (const r of splitEven(rows, workers === 1 ? 1 : workers * ROW_BLOCKS_PER_WORKER)) units.push(UNIT_ROWS, r.start, r.end);
  }
  coords(start, Math.min(end, l.w2));
  if (units.length === 0) units.push(UNIT_COORDS, start, end);
  return Int32Array.from(units);
}

/** Number of units in a schedule. */
export function scheduleLength(schedule: Int32Array): number {
  return schedule.length / FIELDS;
}

/** Number of units of one kind (e.g. UNIT_COORDS: the coordinate shards). */
export function countUnits(schedule: Int32Array, kind: number): number {
  let n = 0;
  for (let u = 0; u < schedule.length; u += FIELDS) if (schedule[u] === kind) n++;
  return n;
}

/**
 * Claims units of `schedule` from `next[0]` until none is left and runs them on `engine`, writing
 * derivative c to out[c − base]. Returns the number of units this caller ran. Any number of threads
 * may run this at once over the same schedule, counter, output and shared memo. With `more`, the
 * caller stops claiming once it says false (a thread that must yield now and then); it can call again
 * to go on.
 */
export function runSchedule(engine: FdEngine, schedule: Int32Array, next: Int32Array, out: Float64Array<ArrayBufferLike>, base: number, more?: () => boolean): number {
  const count = schedule.length / FIELDS;
  let ran = 0;
  for (;;) {
    // Asked before each claim: a caller that stops leaves no claimed unit unrun.
    if (more !== undefined && !more()) break;
    const u = Atomics.add(next, 0, 1);
    if (u >= count) break;
    const kind = schedule[u * FIELDS];
    const a = schedule[u * FIELDS + 1];
    const b = schedule[u * FIELDS + 2];
    if (kind === UNIT_ROWS) engine.fillRows(a, b);
    else engine.shard(a, b, out.subarray(a - base, b - base));
    ran++;
  }
  return ran;
}
