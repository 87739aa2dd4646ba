/**
 * The job contract: every queue name, job name and payload schema, and the result encodings. The
 * producer, the workers and the reducer all import this module; nothing else defines a payload
 * shape. docs/JOBS.md documents it for any BullMQ client.
 *
 * Vectors never travel as JSON number arrays (BullMQ would store a string ~5× the binary size):
 * parameters are stored once per version in Redis as binary under a content-derived key (the
 * SHA-256 of the float64 bytes), fd-shard results binary under their job id (or, from any other
 * client, base64 of little-endian float64 in the result, as ce-shard results are).
 */
import { z } from 'zod';
import { ValidationError } from './errors.js';
import { paramCount } from './layout.js';

export const CONTRACT_VERSION = 1;

/** Registered functions' jobs (fn-diff, fn-map and their shards): schemas in contract-functions.ts. */
export * from './contract-functions.js';

/** Queue names (under the BullMQ prefix). */
export const QUEUES = {
  /** Shard jobs (children): finite-difference and cross-entropy shards. */
  shards: 'shards',
  /** Parent jobs: the reducers of gradients, evaluations and training steps. */
  reduce: 'reduce',
} as const;

/** Job names. */
export const JOBS = {
  fdShard: 'fd-shard',
  ceShard: 'ce-shard',
  gradient: 'gradient',
  evaluation: 'evaluation',
  trainStep: 'train-step',
  trainDrive: 'train-drive',
} as const;

/** Largest hidden layer a job may ask for: 795·4096+10 float64 = 26 MB of parameters. */
export const MAX_HIDDEN = 4096;
/** Largest explicit batch (indices) a job may carry. */
export const MAX_BATCH = 60_000;
/**
 * Largest batch size × hidden units of a gradient: the plan's memo holds ~70 rows per sample of H
 * float64 each, so this bounds it to ~560 MB however the two are combined (100 × 50 needs 2.7 MB).
 */
export const MAX_BATCH_TIMES_HIDDEN = 1_000_000;
/**
 * Largest samples × hidden units of one ce-shard: its forward pass holds two n × H float64 arrays
 * (a1 and z), so this bounds them to ~330 MB. numgrad's own evaluation shards (5000 samples) fit at
 * any H ≤ MAX_HIDDEN; without it one job (60000 samples at H = 4096) would ask for 4 GB.
 */
export const MAX_CE_SAMPLES_TIMES_HIDDEN = 5_000 * MAX_HIDDEN;
export const TRAIN_SIZE = 60_000;
export const TEST_SIZE = 10_000;

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const paramsKey = z.string().regex(/^[0-9a-f]{64}$/, 'a params version: 64 lowercase hex digits (SHA-256 of the float64 bytes)');

/** The fields every job over a stored params snapshot starts with: the contract version, the snapshot's version, H. */
const ofSnapshot = { v: z.literal(CONTRACT_VERSION), params: paramsKey, hidden: int(1, MAX_HIDDEN) };

/** Characters of the base64 of `bytes` bytes (padded). */
const base64Chars = (bytes: number): number => 4 * Math.ceil(bytes / 3);
/**
 * Base64 of at most `maxBytes` bytes. The bound is checked before anything is decoded, so a job
 * cannot make a worker allocate for a string longer than any valid payload (JSON itself is bounded
 * only by Redis' proto-max-bulk-len).
 */
const base64 = (maxBytes: number) => z.string().max(base64Chars(maxBytes)).regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');

/** A mini-batch: explicit training-set indices (base64 of int32 LE), or the seeded batch of a run's step. */
export const BatchSpec = z.discriminatedUnion('kind', [
  z.strictObject({ kind: z.literal('indices'), count: int(1, MAX_BATCH), indices: base64(4 * MAX_BATCH) }),
  z.strictObject({ kind: z.literal('seeded'), seed: int(0, Number.MAX_SAFE_INTEGER), step: int(0, Number.MAX_SAFE_INTEGER), size: int(1, MAX_BATCH) }),
]);
export type BatchSpec = z.infer<typeof BatchSpec>;

const validHidden = (h: number): boolean => Number.isInteger(h) && h >= 1 && h <= MAX_HIDDEN;

const rangeRefine = <T extends { start: number; end: number }>(d: T, ctx: z.RefinementCtx, total: number, what: string): void => {
  if (d.end <= d.start) ctx.addIssue({ code: 'custom', path: ['end'], message: `> start (${d.start})` });
  if (d.end > total) ctx.addIssue({ code: 'custom', path: ['end'], message: `≤ the number of ${what} (${total})` });
};

/** fd-shard: derivatives for coordinates [start, end) of the gradient at `params` on `batch`. */
export const FdShardData = z
  .strictObject({
    ...ofSnapshot,
    batch: BatchSpec,
    h: z.number().gt(0).max(1),
    start: int(0, paramCount(MAX_HIDDEN)),
    end: int(1, paramCount(MAX_HIDDEN)),
  })
  .superRefine((d, ctx) => {
    // zod runs refinements after a range issue (hidden 0, -5, 10.5): that issue names the field
    // already, and paramCount would throw a message that does not.
    if (!validHidden(d.hidden)) return;
    rangeRefine(d, ctx, paramCount(d.hidden), 'coordinates (795·hidden + 10)');
    const size = d.batch.kind === 'indices' ? d.batch.count : d.batch.size;
    if (size * d.hidden > MAX_BATCH_TIMES_HIDDEN) {
      ctx.addIssue({ code: 'custom', path: ['batch'], message: `a batch with size × hidden ≤ ${MAX_BATCH_TIMES_HIDDEN} (here ${size} × ${d.hidden})` });
    }
  });
export type FdShardData = z.infer<typeof FdShardData>;

/** The split an evaluation runs over: a whole MNIST split, or a mini-batch of training images. */
export const EvalSplit = z.enum(['train', 'test', 'batch']);
export type EvalSplit = z.infer<typeof EvalSplit>;

/** Samples in an evaluation's split: the whole training or test set, or the mini-batch's size. */
export const splitSize = (split: EvalSplit, batch?: BatchSpec): number =>
  split === 'train' ? TRAIN_SIZE : split === 'test' ? TEST_SIZE : batch === undefined ? 0 : batch.kind === 'indices' ? batch.count : batch.size;

/** ce-shard: per-sample cross-entropy and the number correct for samples [start, end) of a split. */
export const CeShardData = z
  .strictObject({
    ...ofSnapshot,
    split: EvalSplit,
    batch: BatchSpec.optional(),
    start: int(0, MAX_BATCH),
    end: int(1, MAX_BATCH),
  })
  .superRefine((d, ctx) => {
    if (d.split === 'batch' && d.batch === undefined) ctx.addIssue({ code: 'custom', path: ['batch'], message: 'present when split is "batch"' });
    if (d.split !== 'batch' && d.batch !== undefined) ctx.addIssue({ code: 'custom', path: ['batch'], message: 'absent unless split is "batch"' });
    rangeRefine(d, ctx, splitSize(d.split, d.batch), 'samples in the split');
    if ((d.end - d.start) * d.hidden > MAX_CE_SAMPLES_TIMES_HIDDEN) {
      ctx.addIssue({ code: 'custom', path: ['end'], message: `≤ start + ${Math.floor(MAX_CE_SAMPLES_TIMES_HIDDEN / d.hidden)} (a shard's samples × hidden ≤ ${MAX_CE_SAMPLES_TIMES_HIDDEN}, here ${d.end - d.start} × ${d.hidden})` });
    }
  });
export type CeShardData = z.infer<typeof CeShardData>;

/**
 * What a shard computed, echoed in its result (`of`): its job name, params version, H, batch key
 * (see workers/codec.ts batchKey), h (fd-shard) and split (ce-shard). A reducer compares it with its
 * own payload before it uses the values: a child's payload is gone by then (children are removed on
 * completion), and reading it back would cost a round trip per child on every step.
 */
export const ShardOrigin = z.strictObject({
  job: z.enum([JOBS.fdShard, JOBS.ceShard]),
  params: paramsKey,
  hidden: int(1, MAX_HIDDEN),
  batch: z.string().max(80).optional(),
  h: z.number().optional(),
  split: EvalSplit.optional(),
});
export type ShardOrigin = z.infer<typeof ShardOrigin>;

/**
 * Return value of an fd-shard: its range, its float64 derivatives, (shard at 0) the batch loss, and
 * what it computed. The derivatives are either inline (`data`: base64) or `stored: true`: binary
 * under the shard job's id in Redis (`<prefix>:ng:shard:<job id>`, float64 LE), which is what
 * numgrad's workers do: 8 bytes a value instead of ~11 in base64 copied through the job, its
 * parent and the events stream.
 */
export const FdShardResult = z
  .strictObject({ start: z.number().int(), end: z.number().int(), data: base64(8 * paramCount(MAX_HIDDEN)).optional(), stored: z.literal(true).optional(), loss: z.number().optional(), of: ShardOrigin })
  .superRefine((r, ctx) => {
    if (r.data === undefined && r.stored === undefined) ctx.addIssue({ code: 'custom', path: ['data'], message: 'base64 derivatives, or data.stored true for derivatives stored under the job id' });
    if (r.data !== undefined && r.stored !== undefined) ctx.addIssue({ code: 'custom', path: ['stored'], message: 'absent when data.data carries the derivatives' });
  });
export type FdShardResult = z.infer<typeof FdShardResult>;

/** Return value of a ce-shard: its range, base64 float64 per-sample losses, the number correct, and what it computed. */
export const CeShardResult = z.strictObject({ start: z.number().int(), end: z.number().int(), losses: base64(8 * MAX_BATCH), correct: z.number().int(), of: ShardOrigin });
export type CeShardResult = z.infer<typeof CeShardResult>;

/** gradient (parent): assemble fd-shard children; store the result under `result` for the submitter. */
export const GradientData = z.strictObject({
  ...ofSnapshot,
  batch: BatchSpec,
  h: z.number().gt(0).max(1),
  /** Snapshot holder to release when done (see store). */
  holder: z.string().min(1).max(200),
  /** Seconds the assembled gradient stays readable in Redis (default 3600). */
  resultTtl: int(1, 7 * 24 * 3600).default(3600),
});
export type GradientData = z.infer<typeof GradientData>;

/** evaluation (parent): reduce ce-shard children in sample order; optionally record into a run. */
export const EvaluationData = z.strictObject({
  ...ofSnapshot,
  split: EvalSplit,
  batch: BatchSpec.optional(),
  holder: z.string().min(1).max(200),
  run: z.strictObject({ id: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/), iter: int(0, Number.MAX_SAFE_INTEGER) }).optional(),
}).superRefine((d, ctx) => {
  // As on ce-shard: without this an evaluation of split "batch" and no batch reduced zero samples.
  if (d.split === 'batch' && d.batch === undefined) ctx.addIssue({ code: 'custom', path: ['batch'], message: 'present when split is "batch"' });
  if (d.split !== 'batch' && d.batch !== undefined) ctx.addIssue({ code: 'custom', path: ['batch'], message: 'absent unless split is "batch"' });
});
export type EvaluationData = z.infer<typeof EvaluationData>;

/** train-step (parent): θ_{t+1} = θ_t − lr·g_t from its fd-shard children, then the next step. */
export const TrainStepData = z.strictObject({
  v: z.literal(CONTRACT_VERSION),
  run: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  step: int(0, Number.MAX_SAFE_INTEGER),
  params: paramsKey,
});
export type TrainStepData = z.infer<typeof TrainStepData>;

/**
 * train-drive (no children): a run's steps from `step` on, computed by the one worker there is on its
 * own threads, each committed as a train-step commits it, until another worker appears (then the
 * run goes back to train-step flows), the run stops or ends, or the worker shuts down.
 */
export const TrainDriveData = z.strictObject({
  v: z.literal(CONTRACT_VERSION),
  run: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/),
  step: int(0, Number.MAX_SAFE_INTEGER),
});
export type TrainDriveData = z.infer<typeof TrainDriveData>;

/** The result an evaluation parent returns. */
export const EvaluationResult = z.strictObject({ loss: z.number(), accuracy: z.number(), count: z.number().int(), correct: z.number().int() });
export type EvaluationResult = z.infer<typeof EvaluationResult>;

/** The result a gradient parent returns: where the assembled float64 gradient is, and the batch loss. */
export const GradientResult = z.strictObject({ key: z.string(), bytes: z.number().int(), loss: z.number() });
export type GradientResult = z.infer<typeof GradientResult>;

/**
 * Validates a payload; a failure names the first bad field and what was expected, e.g.
 * `fd-shard: data.end must be ≤ the number of coordinates (795·hidden + 10) (39760), got 50000`.
 */
export function parsePayload<T>(schema: z.ZodType<T>, job: string, data: unknown): T {
  if (data !== null && typeof data === 'object') {
    for (const k of ['__proto__', 'constructor', 'prototype']) {
      if (Object.prototype.hasOwnProperty.call(data, k)) throw new ValidationError(job, `data.${k}`, 'absent (reserved key)');
    }
  }
  const r = schema.safeParse(data);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  let pathParts = issue.path.map(String);
  let expected = issue.message;
  switch (issue.code) {
    case 'invalid_type':
      expected = `${/^[aeiou]/.test(issue.expected) ? 'an' : 'a'} ${issue.expected}`;
      break;
    case 'too_small':
      expected = `${issue.origin === 'string' ? 'of length ' : ''}${issue.inclusive ? '≥' : '>'} ${String(issue.minimum)}`;
      break;
    case 'too_big':
      expected = `${issue.origin === 'string' ? 'of length ' : ''}${issue.inclusive ? '≤' : '<'} ${String(issue.maximum)}`;
      break;
    case 'unrecognized_keys':
      pathParts = [...pathParts, issue.keys[0]];
      expected = 'absent (not a field of this job)';
      break;
    case 'invalid_value':
      expected = `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
      break;
    case 'invalid_union':
      expected = 'a valid variant (see docs/JOBS.md)';
      break;
    default:
      break;
  }
  let got: unknown = data;
  for (const p of pathParts) got = got !== null && typeof got === 'object' ? (got as Record<string, unknown>)[p] : undefined;
  const field = pathParts.length ? `data.${pathParts.join('.')}` : 'data';
  throw got === undefined ? new ValidationError(job, field, `${expected} (it is missing)`) : new ValidationError(job, field, expected, got);
}
