/**
 * k points at once on the local function pool: `diff` (a gradient or Jacobian at each point, each
 * point's coordinates split into chunks that the threads take as they come free) and `map` (f at
 * each point, points split into chunks). Chunks are placed by their ranges, so the result is the
 * same, bit for bit, whatever the chunking or the thread count.
 */
import { FunctionError } from '../../core/errors.js';
import { type DiffSpec, needsF0, planDiff, transposeRows } from '../../core/numdiff.js';
import { splitEven } from '../../core/shard.js';
import type { FnCall, FnValues, FunctionPool } from './function-pool.js';

export interface BatchResult {
  /** k × n (scalar f) or k × m × n (Jacobians) for diff; k or k × m for map; row-major. */
  readonly values: Float64Array;
  readonly m: number;
  readonly scalar: boolean;
}

/**
 * Promise.all that, when one fails, still waits for the others to settle before it rejects with
 * the first failure: no task is left running on a pool that its caller may close next.
 */
export async function allSettledFirst<T>(ps: Promise<T>[]): Promise<T[]> {
  const rs = await Promise.allSettled(ps);
  const bad = rs.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (bad !== undefined) throw bad.reason;
  return rs.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** Keeps the first shape seen and refuses any other, naming where it changed. */
export class ShapeCheck {
  m = -1;
  scalar = false;
  constructor(private readonly fn: string) {}
  take(r: { m: number; scalar: boolean }, where: string): void {
    if (this.m < 0) {
      this.m = r.m;
      this.scalar = r.scalar;
    } else if (r.m !== this.m || r.scalar !== this.scalar) {
      const say = (m: number, s: boolean): string => (s ? 'a number' : `a vector of ${m}`);
      throw new FunctionError(`function "${this.fn}" ${where}: returned ${say(r.m, r.scalar)} where its other evaluations returned ${say(this.m, this.scalar)}`);
    }
  }
}

/** Place point p's Jᵀ rows (n × m) as its gradient or Jacobian in the k-point output. */
export function placeJacobian(out: Float64Array, p: number, rows: Float64Array, n: number, m: number): void {
  out.set(transposeRows(rows, n, m), p * m * n);
}

export async function diffBatch(pool: FunctionPool, call: FnCall, X: Float64Array, k: number, n: number, spec: DiffSpec, onDone: (done: number, total: number) => void = () => undefined): Promise<BatchResult> {
  const shape = new ShapeCheck(call.fn);
  // Enough chunks for the threads to share the work evenly, each with enough evaluations to keep
  // its thread's in-flight slots busy (async functions).
  const chunks = Math.max(1, Math.min(n, pool.threads * 16, Math.floor((2 * n) / pool.inflight)));
  const total = k * chunks;
  let done = 0;
  const perPoint = await allSettledFirst(
    Array.from({ length: k }, async (_v, p) => {
      const plan = planDiff(X.slice(p * n, (p + 1) * n), spec);
      let f0: FnValues | undefined;
      if (needsF0(plan, 0, n)) {
        f0 = await pool.evaluate(call, n, plan.x0, Int32Array.of(0), Int32Array.of(-1), Float64Array.of(0), Int32Array.of(p));
        shape.take(f0, `at point ${p}`);
      }
      const parts = await allSettledFirst(
        splitEven(n, chunks).map(async (r) => {
          const v = await pool.diffRange(call, plan, p, r.start, r.end, f0);
          shape.take(v, `at point ${p}, coordinate ${r.start}`);
          onDone(++done, total);
          return { r, v };
        }),
      );
      const m = parts[0].v.m;
      const all = new Float64Array(n * m);
      for (const { r, v } of parts) all.set(v.values, r.start * m);
      return all;
    }),
  );
  const m = shape.m;
  const out = new Float64Array(k * m * n);
  perPoint.forEach((rows, p) => placeJacobian(out, p, rows, n, m));
  return { values: out, m, scalar: shape.scalar };
}

export async function mapBatch(pool: FunctionPool, call: FnCall, X: Float64Array, k: number, n: number, onDone: (done: number, total: number) => void = () => undefined): Promise<BatchResult> {
  const shape = new ShapeCheck(call.fn);
  const ranges = splitEven(k, Math.max(1, Math.min(k, pool.threads * 16, Math.floor(k / pool.inflight))));
  let done = 0;
  const parts = await allSettledFirst(
    ranges.map(async (r) => {
      const E = r.end - r.start;
      const row = Int32Array.from({ length: E }, (_v, e) => e);
      const label = Int32Array.from({ length: E }, (_v, e) => r.start + e);
      const v = await pool.evaluate(call, n, X.subarray(r.start * n, r.end * n), row, new Int32Array(E).fill(-1), new Float64Array(E), label);
      shape.take(v, `at point ${r.start}`);
      onDone(++done, ranges.length);
      return { r, v };
    }),
  );
  const out = new Float64Array(k * shape.m);
  for (const { r, v } of parts) out.set(v.values, r.start * shape.m);
  return { values: out, m: shape.m, scalar: shape.scalar };
}
