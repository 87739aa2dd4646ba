/**
 * The BullMQ side of registered functions, thin like the rest: validate the payload, hand the
 * evaluations to the function pool, return base64 rows; the reducers place shards by their ranges
 * and store the assembled float64 result for the submitter.
 */
import type { Job } from 'bullmq';
import {
  FN_JOBS, FnDiffShardData, FnMapShardData, FnReduceData, type FnResult, FnShardResult, MAX_FN_RESULT_VALUES, MAX_FN_SHARD_VALUES, parsePayload,
} from '../core/contract.js';
import { ValidationError } from '../core/errors.js';
import { planDiff } from '../core/numdiff.js';
import { base64ToF64, f64ToBase64 } from '../queue/codec.js';
import { ShapeCheck, placeJacobian } from './threads/function-batch.js';
import { FunctionPool, type FunctionPoolOptions } from './threads/function-pool.js';
import type { Store } from '../queue/store.js';

export const isFunctionJob = (name: string): boolean => (Object.values(FN_JOBS) as string[]).includes(name);

export class FunctionJobs {
  private pool: FunctionPool | undefined;

  constructor(
    private readonly opts: FunctionPoolOptions,
    private readonly store: Store,
  ) {}

  /** The pool, started on the first function job (workers that never see one never start its threads). */
  private fnPool(): FunctionPool {
    this.pool ??= new FunctionPool(this.opts);
    return this.pool;
  }

  async shard(job: Job): Promise<FnShardResult> {
    if (job.name === FN_JOBS.diffShard) {
      const d = parsePayload(FnDiffShardData, job.name, job.data);
      await this.fnPool().check(d.fn, job.name);
      const x = base64ToF64(d.x, 'data.x', d.n);
      const bound = (b: string | undefined, f: string): Float64Array | undefined => (b === undefined ? undefined : base64ToF64(b, f, d.n));
      const plan = asJob(job.name, () => planDiff(x, { method: d.method, h: d.h, relStep: d.relStep, absStep: d.absStep, lower: bound(d.lower, 'data.lower'), upper: bound(d.upper, 'data.upper') }));
      const r = await this.fnPool().diffRange({ fn: d.fn, args: d.args, timeoutMs: d.timeoutMs }, plan, d.point, d.start, d.end);
      return result(job.name, r, d.start, d.end, d.point);
    }
    const d = parsePayload(FnMapShardData, job.name, job.data);
    await this.fnPool().check(d.fn, job.name);
    const E = d.end - d.start;
    const x = base64ToF64(d.x, 'data.x', E * d.n);
    const r = await this.fnPool().evaluate(
      { fn: d.fn, args: d.args, timeoutMs: d.timeoutMs }, d.n, x,
      Int32Array.from({ length: E }, (_v, e) => e), new Int32Array(E).fill(-1), new Float64Array(E), Int32Array.from({ length: E }, (_v, e) => d.start + e),
    );
    return result(job.name, r, d.start, d.end);
  }

  /** fn-diff / fn-map: every shard placed by its range, every row exactly once, one shape. */
  async reduce(job: Job): Promise<FnResult> {
    const d = parsePayload(FnReduceData, job.name, job.data);
    const diff = job.name === FN_JOBS.diff;
    const rowsPer = diff ? d.n : 1;
    const shape = new ShapeCheck(d.fn);
    const parts = Object.values((await job.getChildrenValues()) as Record<string, unknown>).map((v) => parsePayload(FnShardResult, 'function shard result', v));
    for (const r of parts) shape.take(r, diff ? `at point ${r.point ?? 0}, coordinate ${r.start}` : `at point ${r.start}`);
    const m = Math.max(shape.m, 1);
    if (d.k * m * rowsPer > MAX_FN_RESULT_VALUES) throw new ValidationError(job.name, 'result', `at most ${MAX_FN_RESULT_VALUES} values (k·m·n)`, d.k * m * rowsPer);
    const rows = new Float64Array(d.k * rowsPer * m);
    const covered = new Uint8Array(d.k * rowsPer);
    for (const r of parts) {
      const base = diff ? (r.point ?? 0) * d.n : 0;
      const limit = diff ? d.n : d.k;
      if (r.start < 0 || r.end > limit || r.end <= r.start || (diff && (r.point ?? 0) >= d.k)) throw new ValidationError(job.name, 'shard range', `within [0, ${limit})`, `[${r.start}, ${r.end})`);
      rows.set(base64ToF64(r.data, 'data', (r.end - r.start) * m), (base + r.start) * m);
      covered.fill(1, base + r.start, base + r.end);
    }
    const missing = covered.indexOf(0);
    if (missing >= 0) throw new ValidationError(job.name, 'children', `results covering all ${covered.length} rows`, `nothing for row ${missing}`);
    let out = rows;
    if (diff) {
      out = new Float64Array(rows.length);
      for (let p = 0; p < d.k; p++) placeJacobian(out, p, rows.subarray(p * d.n * m, (p + 1) * d.n * m), d.n, m);
    }
    const key = await this.store.putResult(String(job.id), out, d.resultTtl);
    return { key, bytes: out.byteLength, k: d.k, n: d.n, m, scalar: shape.scalar };
  }

  close(): Promise<void> {
    return this.pool?.close() ?? Promise.resolve();
  }
}

function result(op: string, r: { values: Float64Array; m: number; scalar: boolean }, start: number, end: number, point?: number): FnShardResult {
  if (r.values.length > MAX_FN_SHARD_VALUES) throw new ValidationError(op, 'result', `at most ${MAX_FN_SHARD_VALUES} values per shard (use more shards)`, r.values.length);
  return { ...(point !== undefined ? { point } : {}), start, end, m: r.m, scalar: r.scalar, data: f64ToBase64(r.values) };
}

/** A core check's ValidationError relabelled with the job's name. */
function asJob<T>(op: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(op, `data.${err.field}`, err.expected, err.got);
    throw err;
  }
}
