/**
 * The job contract of registered functions (part of the one payload contract: contract.ts
 * re-exports everything here, and docs/JOBS.md documents it). Functions are registered on the
 * workers, never shipped in jobs: a job names one, with a small JSON `args` object. Points and
 * results travel as base64 of little-endian float64, like every other vector of the contract.
 */
import { z } from 'zod';
import { DIFF_METHODS } from './numdiff.js';
import { DEFAULT_FN_TIMEOUT_MS, MAX_FN_ARGS_BYTES, MAX_FN_DIM, MAX_FN_OUTPUTS, MAX_FN_POINTS, MAX_FN_SHARD_VALUES, MAX_FN_TIMEOUT_MS } from './function-limits.js';

export * from './function-limits.js';

/** Job names: shards on the `shards` queue, their reducers on the `reduce` queue. */
export const FN_JOBS = {
  diffShard: 'fn-diff-shard',
  mapShard: 'fn-map-shard',
  diff: 'fn-diff',
  map: 'fn-map',
} as const;

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const base64 = (maxBytes: number) => z.string().max(4 * Math.ceil(maxBytes / 3)).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');

/** A registered function's name: what a module exports as `name`. */
export const FnName = z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a function name: letters, digits, _ . -, 1–64 characters');

/** A plain JSON object of at most MAX_FN_ARGS_BYTES, the function's second argument. */
export const FnArgs = z.record(z.string(), z.unknown()).superRefine((a, ctx) => {
  const size = new TextEncoder().encode(JSON.stringify(a)).length;
  if (size > MAX_FN_ARGS_BYTES) ctx.addIssue({ code: 'custom', message: `a JSON object of at most ${MAX_FN_ARGS_BYTES} bytes (here ${size})` });
});

const DiffFields = {
  method: z.enum(DIFF_METHODS),
  /** central: the step (default 1e-4). */
  h: z.number().gt(0).max(1).optional(),
  /** 2-point/3-point: SciPy's rel_step or abs_step (at most one; default SciPy's steps). */
  relStep: z.number().optional(),
  absStep: z.number().optional(),
  /** 2-point/3-point: bounds, base64 of n float64 each (default ±∞). */
  lower: base64(8 * MAX_FN_DIM).optional(),
  upper: base64(8 * MAX_FN_DIM).optional(),
};

const rangeCheck = (d: { start: number; end: number }, total: number, what: string, ctx: z.RefinementCtx): void => {
  if (d.end <= d.start) ctx.addIssue({ code: 'custom', path: ['end'], message: `> start (${d.start})` });
  if (d.end > total) ctx.addIssue({ code: 'custom', path: ['end'], message: `≤ the number of ${what} (${total})` });
};

/** fn-diff-shard: derivatives for coordinates [start, end) of point `point` (its n values in `x`). */
export const FnDiffShardData = z
  .strictObject({
    v: z.literal(1),
    fn: FnName,
    args: FnArgs.optional(),
    ...DiffFields,
    point: int(0, MAX_FN_POINTS - 1),
    n: int(1, MAX_FN_DIM),
    x: base64(8 * MAX_FN_DIM),
    start: int(0, MAX_FN_DIM),
    end: int(1, MAX_FN_DIM),
    timeoutMs: int(1, MAX_FN_TIMEOUT_MS).default(DEFAULT_FN_TIMEOUT_MS),
  })
  .superRefine((d, ctx) => rangeCheck(d, d.n, 'coordinates (n)', ctx));
export type FnDiffShardData = z.infer<typeof FnDiffShardData>;

/** fn-map-shard: f at points [start, end) of a submission; `x` holds their (end − start)·n values. */
export const FnMapShardData = z
  .strictObject({
    v: z.literal(1),
    fn: FnName,
    args: FnArgs.optional(),
    n: int(1, MAX_FN_DIM),
    k: int(1, MAX_FN_POINTS),
    x: base64(8 * MAX_FN_DIM),
    start: int(0, MAX_FN_POINTS),
    end: int(1, MAX_FN_POINTS),
    timeoutMs: int(1, MAX_FN_TIMEOUT_MS).default(DEFAULT_FN_TIMEOUT_MS),
  })
  .superRefine((d, ctx) => {
    rangeCheck(d, d.k, 'points (k)', ctx);
    if ((d.end - d.start) * d.n > MAX_FN_DIM) ctx.addIssue({ code: 'custom', path: ['end'], message: `≤ start + ${Math.floor(MAX_FN_DIM / d.n)} (a shard's points × n ≤ ${MAX_FN_DIM})` });
  });
export type FnMapShardData = z.infer<typeof FnMapShardData>;

/**
 * A function shard's return value: rows [start, end) (coordinates of point `point` for a diff
 * shard, holding ∂f/∂x_i; points for a map shard, holding f), m values each, and whether f
 * returned a number (scalar) rather than a vector.
 */
export const FnShardResult = z.strictObject({
  point: int(0, MAX_FN_POINTS - 1).optional(),
  start: z.number().int(),
  end: z.number().int(),
  m: int(1, MAX_FN_OUTPUTS),
  scalar: z.boolean(),
  data: base64(8 * MAX_FN_SHARD_VALUES),
});
export type FnShardResult = z.infer<typeof FnShardResult>;

/** fn-diff and fn-map (parents): assemble the shards of k points of n coordinates. */
export const FnReduceData = z.strictObject({
  v: z.literal(1),
  fn: FnName,
  k: int(1, MAX_FN_POINTS),
  n: int(1, MAX_FN_DIM),
  /** Seconds the assembled result stays readable in Redis (default 3600). */
  resultTtl: int(1, 7 * 24 * 3600).default(3600),
});
export type FnReduceData = z.infer<typeof FnReduceData>;

/**
 * What an fn-diff/fn-map parent returns: where the assembled float64 result is (row-major, k × n
 * gradients or k × m × n Jacobians; k values or k × m for a map), and its shape.
 */
export const FnResult = z.strictObject({ key: z.string(), bytes: z.number().int(), k: z.number().int(), n: z.number().int(), m: z.number().int(), scalar: z.boolean() });
export type FnResult = z.infer<typeof FnResult>;
