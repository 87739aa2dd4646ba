import type { FlowJob, JobsOptions } from 'bullmq';
import { type BatchSpec, CONTRACT_VERSION, type CeShardData, type EvaluationData, type FdShardData, type GradientData, JOBS, QUEUES, type TrainDriveData, type TrainStepData, splitSize } from '../core/contract.js';
import { paramCount } from '../core/layout.js';
import { splitBySize, splitEven } from '../core/shard.js';

/**
 * The BullMQ flows numgrad submits: a parent (the reducer) whose children are shards. Children
 * fail their parent when they fail for good (the parent fails with the shard's reason instead of
 * waiting forever); transient errors are retried. Completed jobs are removed at once: a child's
 * return value lives on in its parent's processed set until the parent is done with it.
 */
export const SHARD_OPTS: JobsOptions = {
  attempts: 3,
  backoff: { type: 'exponential', delay: 500 },
  removeOnComplete: true,
  removeOnFail: { count: 1000 },
  failParentOnFailure: true,
};
/**
 * The shards of a run's flows (training steps, epoch evaluations) start their parent instead of
 * failing it: the reducer then runs, reads the shard's reason (BullMQ keeps it in the parent's
 * failed-children hash) and records the run as failed before it fails itself, under its own lock.
 * With failParentOnFailure BullMQ fails the parent without running it, and the run's state could
 * only be set after the fact, by whoever saw the event.
 */
export const RUN_SHARD_OPTS: JobsOptions = { ...SHARD_OPTS, failParentOnFailure: false, continueParentOnFailure: true };
export const PARENT_OPTS: JobsOptions = { attempts: 3, backoff: { type: 'exponential', delay: 500 }, removeOnComplete: true, removeOnFail: { count: 1000 } };

/**
 * BullMQ's events streams are capped (XADD MAXLEN ~) so its bookkeeping stays bounded. The cap
 * lives in the queue's meta hash and every `Queue` writes its own on start (the default is 10000),
 * so every Queue numgrad opens, in the producer and in the worker alike, passes this one.
 */
export const EVENTS_STREAMS = { events: { maxLen: 2_000 } };

/** Samples per evaluation shard. */
export const EVAL_SHARD_SAMPLES = 5000;
/** Default number of gradient shards per flow through the queue. */
export const DEFAULT_QUEUE_SHARDS = 4;

/** BullMQ job ids may not contain ':'; ours are built from safe parts and deterministic where it matters. */
export function jobId(...parts: (string | number)[]): string {
  return parts.join('-');
}

export function fdChildren(params: string, hidden: number, batch: BatchSpec, h: number, shards: number, idBase?: string, opts = SHARD_OPTS): FlowJob[] {
  return splitEven(paramCount(hidden), shards).map((r, k) => {
    const data: FdShardData = { v: CONTRACT_VERSION, params, hidden, batch, h, start: r.start, end: r.end };
    return { name: JOBS.fdShard, queueName: QUEUES.shards, data, opts: { ...opts, ...(idBase ? { jobId: jobId(idBase, 's', k) } : {}) } };
  });
}

export function gradientFlow(d: GradientData, shards: number, id?: string): FlowJob {
  return {
    name: JOBS.gradient,
    queueName: QUEUES.reduce,
    data: d,
    opts: { ...PARENT_OPTS, ...(id ? { jobId: id } : {}) },
    children: fdChildren(d.params, d.hidden, d.batch, d.h, shards, id),
  };
}

export function evaluationFlow(d: EvaluationData, id?: string, shardSamples = EVAL_SHARD_SAMPLES): FlowJob {
  const total = splitSize(d.split, d.batch);
  const children: FlowJob[] = splitBySize(total, shardSamples).map((r, k) => {
    const data: CeShardData = { v: CONTRACT_VERSION, params: d.params, hidden: d.hidden, split: d.split, ...(d.batch ? { batch: d.batch } : {}), start: r.start, end: r.end };
    const opts = d.run === undefined ? SHARD_OPTS : RUN_SHARD_OPTS;
    return { name: JOBS.ceShard, queueName: QUEUES.shards, data, opts: { ...opts, ...(id ? { jobId: jobId(id, 's', k) } : {}) } };
  });
  return { name: JOBS.evaluation, queueName: QUEUES.reduce, data: d, opts: { ...PARENT_OPTS, ...(id ? { jobId: id } : {}) }, children };
}

/** The seeded mini-batch of step `step` of a run, as its fd-shards name it. */
export function seededBatch(seed: number, step: number, size: number): BatchSpec {
  return { kind: 'seeded', seed, step, size };
}

/** Step t of a run: deterministic ids, so enqueueing the same step twice adds nothing. */
export function trainStepFlow(run: string, step: number, params: string, hidden: number, seed: number, batchSize: number, h: number, shards: number): FlowJob {
  const id = jobId('run', run, 'step', step);
  const data: TrainStepData = { v: CONTRACT_VERSION, run, step, params };
  const batch = seededBatch(seed, step, batchSize);
  return { name: JOBS.trainStep, queueName: QUEUES.reduce, data, opts: { ...PARENT_OPTS, jobId: id }, children: fdChildren(params, hidden, batch, h, shards, id, RUN_SHARD_OPTS) };
}

/** Steps of a run from `step` on, driven by one worker (train-drive.ts): a job without children. */
export function trainDriveJob(run: string, step: number): FlowJob {
  const data: TrainDriveData = { v: CONTRACT_VERSION, run, step };
  return { name: JOBS.trainDrive, queueName: QUEUES.reduce, data, opts: { ...PARENT_OPTS, jobId: jobId('run', run, 'drive', step) } };
}

/** A train-drive job's progress event after each commit: the last step it committed, and how many steps that commit held. */
export interface DriveProgress {
  readonly step: number;
  readonly steps: number;
}

/**
 * The run and the steps of a train-drive job's progress event (its job id and data, as the events
 * stream has them); undefined for any other job or a data field that is not a DriveProgress.
 */
export function driveProgressOf(jobId: string, data: string | undefined): (DriveProgress & { run: string }) | undefined {
  const run = /^run-(.+)-drive-\d+$/.exec(jobId);
  if (run === null) return undefined;
  let d: { step?: unknown; steps?: unknown } | null;
  try {
    d = JSON.parse(data ?? 'null') as { step?: unknown; steps?: unknown } | null;
  } catch {
    return undefined;
  }
  if (typeof d?.step !== 'number') return undefined;
  return { run: run[1], step: d.step, steps: typeof d.steps === 'number' && d.steps >= 1 ? Math.floor(d.steps) : 1 };
}
