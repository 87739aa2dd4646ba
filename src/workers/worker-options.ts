import type { Logger } from '../io/logger.js';

/** `numgrad worker`'s settings, validated once by the CLI (or the caller); defaults in WORKER_DEFAULTS. */
export interface QueueWorkerOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly threads: number;
  readonly mnistDir?: string;
  /** Folder of function modules (--functions, NUMGRAD_FUNCTIONS); built-ins only when absent. */
  readonly functionsDir?: string;
  readonly logger: Logger;
  /** Also consume the reduce queue (gradients, evaluations, training steps). Default: WORKER_DEFAULTS.reducer. */
  readonly reducer?: boolean;
  /**
   * As the only worker on the shard queue, compute a run's steps here (a train-drive job) instead of
   * a flow of shards per step. Default: WORKER_DEFAULTS.drive.
   */
  readonly drive?: boolean;
  /**
   * Shard jobs in flight per process. Default: WORKER_DEFAULTS.concurrency(threads). Also the bound
   * on function evaluations in flight per process (async functions overlap).
   */
  readonly concurrency?: number;
  /** BullMQ lock duration and stalled-check interval (ms); shortened in fault tests. */
  readonly lockDuration?: number;
  readonly stalledInterval?: number;
  /**
   * Called once when Redis refuses the credentials, with a message fit to print (URL redacted).
   * Retrying cannot help then, and a worker that retries forever looks alive while doing nothing.
   */
  readonly onFatal?: (message: string) => void;
}

/** Every default of a queue worker, in one place (as BullMQ's WorkerOptions documents its own). */
export const WORKER_DEFAULTS = {
  /** A worker also reduces: any process can finish any gradient, evaluation or training step. */
  reducer: true,
  /** Alone on the shard queue, a worker computes a run's steps itself (train-drive.ts). */
  drive: true,
  /** Shard jobs in flight: 2 × threads, so every thread has the next one queued. */
  concurrency: (threads: number): number => 2 * threads,
  /** Reduce jobs in flight: they wait on Redis, not on the threads. */
  reduceConcurrency: 4,
  /** How long a job's lock lives unless renewed (ms); BullMQ renews it at half this. */
  lockDuration: 30_000,
  /** How often a worker looks for jobs whose lock expired (ms). */
  stalledInterval: 30_000,
  /** A job may stall this often (its process died, or it lost its lock) before it fails for good. */
  maxStalledCount: 2,
  /**
   * How often (ms) a worker asks Redis how many workers listen on the shard queue: alone, it runs a
   * training run's steps itself (train-drive.ts); a worker that joins is given shards within this.
   */
  soloCheckMs: 500,
  /** Params snapshots a process keeps decoded (the shards of a step share one). */
  paramsCache: 6,
} as const;
