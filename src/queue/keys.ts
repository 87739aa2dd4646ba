/**
 * numgrad's own Redis keys, beside BullMQ's, all under the same prefix (so a `{hash-tagged}`
 * prefix keeps them on one Redis Cluster slot with the queues).
 */
export class Keys {
  constructor(readonly prefix: string) {}
  private k(...parts: string[]): string {
    return [this.prefix, 'ng', ...parts].join(':');
  }
  /** Binary float64 parameters of one version. */
  params(version: string): string {
    return this.k('params', version);
  }
  /** Who still needs a params version (a set of holder ids); the snapshot goes when it empties. */
  holders(version: string): string {
    return this.k('params', version, 'holders');
  }
  /**
   * One fd-shard's derivatives, binary (float64 LE), under the shard job's id: written by the shard,
   * read by its reducer, deleted when the reducer is done with them (a TTL catches the rest).
   */
  shardResult(jobId: string): string {
    return this.k('shard', jobId);
  }
  /** An assembled gradient, binary, for its submitter (with a TTL). */
  result(id: string): string {
    return this.k('result', id);
  }
  /** A run's summary hash: config, state, step, current params version, last loss and accuracy. */
  run(id: string): string {
    return this.k('run', id);
  }
  /** A run's metrics: one JSON line per iteration (list). */
  runMetrics(id: string): string {
    return this.k('run', id, 'metrics');
  }
  /** A run's per-epoch evaluations: field `<iter>:<split>` → JSON (hash). */
  runEvals(id: string): string {
    return this.k('run', id, 'evals');
  }
  /** Evaluations still pending (set); deleted when the run ends. */
  runPending(id: string): string {
    return this.k('run', id, 'pending');
  }
  /** The final params of a finished run (binary). */
  runParams(id: string): string {
    return this.k('run', id, 'params');
  }
  /** Index of runs by creation time (zset). */
  runs(): string {
    return this.k('runs');
  }
}

/** A BullMQ job's lock: its key, the token of the attempt that holds it, and the duration it is renewed for. */
export interface LockOwner {
  readonly lockKey: string;
  readonly token: string;
  readonly lockMs: number;
}

/**
 * The lock of the attempt now running `job` (BullMQ keeps it at `<queue>:<id>:lock`, holding the
 * attempt's token, renewed while the attempt lives) and the worker's lock duration: for a commit
 * that must be refused once the attempt has lost it, and renews it otherwise (Store.commitStep's
 * `owner`). Undefined for a job without a token (not taken by a worker): its commits go unchecked.
 */
export function jobLock(job: { readonly queueQualifiedName: string; readonly id?: string; readonly token?: string }, lockMs: number): LockOwner | undefined {
  if (job.id === undefined || job.token === undefined || job.token === '') return undefined;
  return { lockKey: `${job.queueQualifiedName}:${job.id}:lock`, token: job.token, lockMs };
}
