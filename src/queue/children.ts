import type { Job } from 'bullmq';
import { type BatchSpec, CeShardResult, type EvalSplit, FdShardResult, JOBS, type ShardOrigin, parsePayload } from '../core/contract.js';
import { ValidationError } from '../core/errors.js';
import { CoverAssembler, checkOrigin } from '../core/reduce.js';
import { base64ToF64, batchKey, bufferToF64 } from './codec.js';

/** What an fd-shard of this gradient must have computed (it echoes the same in its result's `of`). */
export function fdOrigin(params: string, hidden: number, batch: BatchSpec, h: number): ShardOrigin {
  return { job: JOBS.fdShard, params, hidden, batch: batchKey(batch), h };
}

/** What a ce-shard of this evaluation must have computed. */
export function ceOrigin(params: string, hidden: number, split: EvalSplit, batch?: BatchSpec): ShardOrigin {
  return { job: JOBS.ceShard, params, hidden, split, ...(batch !== undefined ? { batch: batchKey(batch) } : {}) };
}

export interface Assembled {
  /** Derivatives (fd-shards) or per-sample losses (ce-shards), by index. */
  readonly out: Float64Array;
  /** The batch loss at θ (from the fd-shard that starts at 0); NaN for ce-shards. */
  readonly loss: number;
  /** Samples whose argmax is the label (ce-shards); 0 for fd-shards. */
  readonly correct: number;
  /** Keys of the stored shard results read (`stored: true`): the caller deletes them once it is done. */
  readonly stored: readonly string[];
}

/** Where stored shard results are read from (the Store). */
export interface ShardResults {
  readonly keys: { shardResult(jobId: string): string };
  getShardResults(jobIds: readonly string[]): Promise<(Buffer | null)[]>;
  /**
   * The derivatives of a child that ran in this process, as it computed them (no read from Redis):
   * only for the same job id, range and params version, so they are the stored bytes.
   */
  cached?(jobId: string, start: number, end: number, params: string): Float64Array | undefined;
}

/** The job id of a child key from getChildrenValues (`<prefix>:<queue>:<id>`; ids hold no ':'). */
const childJobId = (child: string): string => child.slice(child.lastIndexOf(':') + 1);

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object';

/**
 * A reducer's children, trusted for nothing: each result must parse, say it was computed on the
 * parent's own inputs (`checkOrigin`), and fit with its siblings (`CoverAssembler`: overlaps only
 * when bitwise equal; an evaluation's children may repeat a range but not cut into one, since their
 * `correct` counts cannot be split); together they must cover [0, total). Any failure is a
 * ValidationError naming the parent's job (`op`), the child's key and the field.
 */
export async function assembleChildren(job: Job, op: string, total: number, expected: ShardOrigin, results: ShardResults): Promise<Assembled> {
  const values = (await job.getChildrenValues()) as Record<string, unknown>;
  const asm = new CoverAssembler(op, total);
  const ce = expected.job === JOBS.ceShard;
  const correctOf = new Map<string, number>();
  let loss = NaN;
  let lossFrom: string | undefined;
  let correct = 0;
  // In range order (then by key), not Redis' hash order: which of two children a message names first never varies.
  const startOf = (v: unknown): number => (isObject(v) && typeof v.start === 'number' ? v.start : Infinity);
  const entries = Object.entries(values).sort(([ka, a], [kb, b]) => startOf(a) - startOf(b) || (ka < kb ? -1 : ka > kb ? 1 : 0));
  const parsed = entries.map(([child, v]) => {
    const label = `${op}: result of child ${child}`;
    const r = isObject(v) && 'losses' in v ? parsePayload(CeShardResult, label, v) : parsePayload(FdShardResult, label, v);
    checkOrigin(op, child, expected, r.of);
    return { child, label, r };
  });
  // Stored derivatives by job id: those computed here from this process's memory, the rest read in one round trip.
  const stored = new Map<string, Float64Array | Buffer | null>();
  const remote: string[] = [];
  for (const { child, r } of parsed) {
    if (!('stored' in r) || r.stored !== true) continue;
    const id = childJobId(child);
    const here = results.cached?.(id, r.start, r.end, r.of.params);
    if (here !== undefined) stored.set(id, here);
    else remote.push(id);
  }
  (await results.getShardResults(remote)).forEach((b, i) => stored.set(remote[i], b));
  for (const { child, label, r } of parsed) {
    let data: Float64Array;
    const id = childJobId(child);
    const v = stored.get(id) ?? null;
    if ('losses' in r) data = base64ToF64(r.losses, `${label}: data.losses`, r.end - r.start);
    else if (r.data !== undefined) data = base64ToF64(r.data, `${label}: data.data`, r.end - r.start);
    else data = v instanceof Float64Array ? v : storedValues(v, `${label}: data.stored`, results.keys.shardResult(id), r.end - r.start);
    const placed = asm.put(child, r.start, r.end, data);
    if ('correct' in r) {
      const range = `${r.start}:${r.end}`;
      if (placed === 'overlap') {
        throw new ValidationError(op, `range of child ${child}`, "disjoint from its siblings' ranges or equal to one of them (an evaluation counts correct answers per child: a partial overlap cannot be split)", `[${r.start}, ${r.end})`);
      }
      if (placed === 'duplicate' && correctOf.get(range) !== r.correct) {
        throw new ValidationError(op, `data.correct of child ${child}`, `${correctOf.get(range)} (a sibling's count for the same range [${r.start}, ${r.end}))`, r.correct);
      }
      if (placed === 'new') {
        correctOf.set(range, r.correct);
        correct += r.correct;
      }
    }
    if ('loss' in r && r.loss !== undefined) {
      if (lossFrom !== undefined && !Object.is(loss, r.loss)) throw new ValidationError(op, `data.loss of child ${child}`, `${loss} (child ${lossFrom}'s batch loss)`, r.loss);
      loss = r.loss;
      lossFrom = child;
    }
  }
  const gap = asm.firstGap();
  if (gap >= 0) throw new ValidationError(op, 'children', `results covering [0, ${total})`, `nothing for index ${gap}`);
  // The child at 0 reports the batch loss; a result without it would leave the step without one.
  if (!ce && lossFrom === undefined) throw new ValidationError(op, 'children', 'a result with the batch loss (the fd-shard that starts at 0)', 'none');
  return { out: asm.out, loss, correct, stored: [...stored.keys()].map((id) => results.keys.shardResult(id)) };
}

/** A stored shard result as float64 values: present, and exactly `count` of them. */
function storedValues(b: Buffer | null, field: string, key: string, count: number): Float64Array {
  if (b === null) throw new ValidationError('decode', field, `derivatives stored under ${key}`, 'nothing there (expired or deleted)');
  if (b.byteLength !== 8 * count) throw new ValidationError('decode', field, `${count} float64 values (${8 * count} bytes) under ${key}`, `${b.byteLength} bytes`);
  return bufferToF64(b, field);
}
