import type { Job } from 'bullmq';
import { CeShardData, type CeShardResult, FdShardData, type FdShardResult, JOBS, TRAIN_SIZE, parsePayload } from '../core/contract.js';
import { ValidationError } from '../core/errors.js';
import { paramCount } from '../core/layout.js';
import { batchIndices, batchKey, f64ToBase64 } from '../queue/codec.js';
import { ceOrigin, fdOrigin } from '../queue/children.js';
import type { Store } from '../queue/store.js';
import { type FunctionJobs, isFunctionJob } from './function-jobs.js';
import { Lru } from './threads/lru.js';
import type { LocalPool } from './threads/pool.js';
import { unrecoverable } from './unrecoverable.js';
import { WORKER_DEFAULTS } from './worker-options.js';

/** Stored shard results kept in memory for a reducer in this process (a few steps' worth at H = 50); the oldest go first. */
const RECENT_RESULT_BYTES = 4 * 1024 * 1024;

/** A params snapshot as the shards use it: the values, and a shared copy for evaluation threads. */
export interface Snapshot {
  readonly params: Float64Array;
  readonly shared: SharedArrayBuffer;
}

/**
 * The shard queue's processor: validates a job's payload at the edge, loads its params snapshot
 * once per process (checked once, when loaded), and hands the numerics to the pool. Every value is
 * a pure function of the payload and the stored snapshot, so which process or thread computed a
 * shard never changes its bits.
 */
export class ShardProcessor {
  private readonly snapshots = new Lru<Snapshot>(WORKER_DEFAULTS.paramsCache);

  constructor(
    private readonly pool: LocalPool,
    private readonly store: Store,
    private readonly functions: FunctionJobs,
  ) {}

  /** Shards processed by this process (for metrics and logs). */
  done = 0;

  async process(job: Job): Promise<unknown> {
    try {
      if (isFunctionJob(job.name)) return await this.functions.shard(job);
      if (job.name === JOBS.fdShard) return await this.fdShard(parsePayload(FdShardData, job.name, job.data), job.parentKey === undefined ? undefined : String(job.id));
      if (job.name === JOBS.ceShard) return await this.ceShard(parsePayload(CeShardData, job.name, job.data));
      throw new ValidationError('shard', 'job name', `"${JOBS.fdShard}" or "${JOBS.ceShard}"`, job.name);
    } catch (err) {
      throw unrecoverable(err);
    } finally {
      this.done++;
    }
  }

  /** θ as this process's shards loaded it (a training step reads it back), if it is still here. */
  async loaded(version: string): Promise<Float64Array | undefined> {
    return (await this.snapshots.peek(version)?.catch(() => undefined))?.params;
  }

  private async load(version: string, hidden: number): Promise<Snapshot> {
    const loaded = await this.snapshots.get(version, async () => {
      let params: Float64Array | null;
      try {
        params = await this.store.getParams(version);
      } catch (err) {
        if (err instanceof ValidationError) throw new ValidationError('shard', 'data.params', err.expected, err.got);
        throw err;
      }
      if (params === null) throw new ValidationError('shard', 'data.params', 'a params version stored in Redis', `unknown version ${version.slice(0, 12)}…`);
      return snapshot(params);
    });
    // Checked for every job, not only the one whose load fills the cache: a later job naming the
    // same version may claim another H (and with it a range past the end of these params).
    const { params } = loaded;
    if (params.length !== paramCount(hidden)) {
      const fits = params.length >= paramCount(1) && (params.length - 10) % 795 === 0;
      if (!fits) throw new ValidationError('shard', 'data.params', 'a snapshot of 795·H + 10 float64 values', `${params.length} values`);
      throw new ValidationError('shard', 'data.hidden', `${(params.length - 10) / 795} for params of length ${params.length}`, hidden);
    }
    return loaded;
  }

  /**
   * A shard with a parent (a flow's child: its reducer reads and deletes what it stored) puts its
   * derivatives in Redis binary under its job id (`stored: true`); a shard on its own returns them
   * inline, base64, for whoever reads its return value.
   */
  private async fdShard(d: FdShardData, storeAs: string | undefined): Promise<FdShardResult> {
    const { params } = await this.load(d.params, d.hidden);
    const key = `${d.params}|${batchKey(d.batch)}|${d.h}`;
    const { values, loss } = await this.pool.gradientShardOf(key, () => ({ params, indices: batchIndices(d.batch, TRAIN_SIZE), h: d.h }), d.start, d.end);
    const base = { start: d.start, end: d.end, ...(d.start === 0 ? { loss } : {}), of: fdOrigin(d.params, d.hidden, d.batch, d.h) };
    if (storeAs === undefined) return { ...base, data: f64ToBase64(values) };
    await this.store.putShardResult(storeAs, values);
    this.remember(storeAs, `${d.start}:${d.end}:${d.params}`, values);
    return { ...base, stored: true };
  }

  /** Derivatives this process stored lately, by job id, for a reducer here (children.ts `cached`); oldest first. */
  private readonly recent = new Map<string, { what: string; values: Float64Array }>();
  private recentBytes = 0;

  private remember(jobId: string, what: string, values: Float64Array): void {
    this.forget(jobId);
    if (values.byteLength > RECENT_RESULT_BYTES) return;
    this.recent.set(jobId, { what, values });
    this.recentBytes += values.byteLength;
    while (this.recentBytes > RECENT_RESULT_BYTES) this.forget(this.recent.keys().next().value as string);
  }

  private forget(jobId: string): void {
    const e = this.recent.get(jobId);
    if (e === undefined) return;
    this.recent.delete(jobId);
    this.recentBytes -= e.values.byteLength;
  }

  /** A stored result computed here, if it is this job's range on this params version (then it is the stored bytes). */
  cached(jobId: string, start: number, end: number, params: string): Float64Array | undefined {
    const e = this.recent.get(jobId);
    if (e === undefined || e.what !== `${start}:${end}:${params}`) return undefined;
    this.forget(jobId);
    return e.values;
  }


  private async ceShard(d: CeShardData): Promise<CeShardResult> {
    const { shared } = await this.load(d.params, d.hidden);
    const indices = d.split === 'batch' && d.batch !== undefined ? batchIndices(d.batch, TRAIN_SIZE) : undefined;
    const r = await this.pool.evaluationShard(shared, d.split === 'test' ? 'test' : 'train', d.start, d.end, indices);
    return { start: d.start, end: d.end, losses: f64ToBase64(r.losses), correct: r.correct, of: ceOrigin(d.params, d.hidden, d.split, d.batch) };
  }
}

/**
 * A params snapshot as the shards use it. Anyone who can write to Redis can store a snapshot: NaN or
 * ±Infinity in it would make every derivative NaN (or a silent garbage step), so it is refused once,
 * when the snapshot is loaded.
 */
function snapshot(params: Float64Array): Snapshot {
  for (let c = 0; c < params.length; c++) {
    if (!Number.isFinite(params[c])) throw new ValidationError('shard', `data.params[${c}]`, 'a finite number in the stored snapshot', params[c]);
  }
  const shared = new SharedArrayBuffer(params.byteLength);
  new Float64Array(shared).set(params);
  return { params, shared };
}
