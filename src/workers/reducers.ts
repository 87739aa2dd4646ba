import type { FlowProducer, Job } from 'bullmq';
import { EvaluationData, type EvaluationResult, GradientData, type GradientResult, JOBS, QUEUES, TrainDriveData, TrainStepData, parsePayload, splitSize } from '../core/contract.js';
import { ValidationError } from '../core/errors.js';
import { paramCount } from '../core/layout.js';
import { reduceEvaluation } from '../core/reduce.js';
import type { Logger } from '../io/logger.js';
import { type ShardResults, assembleChildren, ceOrigin, fdOrigin } from '../queue/children.js';
import { type RunState, failedChild, isFinal } from '../queue/run-state.js';
import type { Store } from '../queue/store.js';
import { type FunctionJobs, isFunctionJob } from './function-jobs.js';
import { type TrainDriveDeps, trainDrive } from './train-drive.js';
import { trainStep } from './train-step.js';
import { unrecoverable } from './unrecoverable.js';

export interface ReducerDeps {
  readonly store: Store;
  readonly runState: RunState;
  readonly flows: FlowProducer;
  readonly functions: FunctionJobs;
  readonly logger: Logger;
  /** θ as this process's shards loaded it, if it is still here. */
  readonly loaded: (version: string) => Promise<Float64Array | undefined>;
  /** Stored shard results: Redis, or this process's memory for shards that ran here. */
  readonly results: ShardResults;
  /** Logs a failure to record a failed run (the Redis URL redacted). */
  readonly warnUnrecorded: (job: Job, err: unknown) => void;
  /** For train-drive jobs: this process's gradient, whether it is the only worker, whether it is closing, the lock duration. */
  readonly gradient: TrainDriveDeps['gradient'];
  readonly solo: TrainDriveDeps['solo'];
  readonly stopping: TrainDriveDeps['stopping'];
  readonly lockMs: TrainDriveDeps['lockMs'];
}

/**
 * The reduce queue's processor: a parent job whose shards are all in assembles their results
 * (children.ts checks that they cover the range once and belong to this parent), then finishes a
 * gradient, an evaluation, or a training step (train-step.ts).
 */
export class Reducers {
  constructor(private readonly deps: ReducerDeps) {}

  async process(job: Job): Promise<unknown> {
    try {
      if (isFunctionJob(job.name)) return await this.deps.functions.reduce(job);
      const child = await failedChild(job);
      if (child !== undefined) throw child;
      if (job.name === JOBS.gradient) return await this.gradient(job, parsePayload(GradientData, job.name, job.data));
      if (job.name === JOBS.evaluation) return await this.evaluation(job, parsePayload(EvaluationData, job.name, job.data));
      if (job.name === JOBS.trainStep) return await trainStep(this.stepDeps(), job, parsePayload(TrainStepData, job.name, job.data));
      if (job.name === JOBS.trainDrive) return await trainDrive(this.stepDeps(), job, parsePayload(TrainDriveData, job.name, job.data));
      throw new ValidationError('reduce', 'job name', `"${JOBS.gradient}", "${JOBS.evaluation}", "${JOBS.trainStep}" or "${JOBS.trainDrive}"`, job.name);
    } catch (err) {
      const e = unrecoverable(err);
      // Recorded here, under the job's lock, before BullMQ moves the job to failed: a process that
      // dies in between leaves a stalled job that is redone and records it again.
      if (e instanceof Error && isFinal(job, e, job.attemptsMade + 1)) await this.endRun(job, e);
      throw e;
    }
  }

  private stepDeps(): TrainDriveDeps {
    return { ...this.deps, tryFinish: (id) => this.tryFinish(id) };
  }

  /** A run's step or evaluation failed for good: the run is failed, with the reason, now. */
  async endRun(job: Job, err: Error): Promise<void> {
    try {
      const run = await this.deps.runState.failJob(job, err);
      if (run !== undefined) this.deps.logger.error({ run, jobId: job.id, job: job.name, err: err.message }, 'run failed');
    } catch (e) {
      this.deps.warnUnrecorded(job, e);
    }
  }

  private async gradient(job: Job, d: GradientData): Promise<GradientResult> {
    const { store } = this.deps;
    const { out, loss, stored } = await assembleChildren(job, JOBS.gradient, paramCount(d.hidden), fdOrigin(d.params, d.hidden, d.batch, d.h), this.deps.results);
    const key = await store.putResult(String(job.id), out, d.resultTtl);
    await store.deleteKeys(stored);
    await store.release(d.params, d.holder);
    return { key, bytes: out.byteLength, loss };
  }

  private async evaluation(job: Job, d: EvaluationData): Promise<EvaluationResult> {
    const { store, logger } = this.deps;
    const { out, correct } = await assembleChildren(job, JOBS.evaluation, splitSize(d.split, d.batch), ceOrigin(d.params, d.hidden, d.split, d.batch), this.deps.results);
    const r = reduceEvaluation(out, correct);
    if (d.run !== undefined) {
      await store.recordEval(d.run.id, d.run.iter, d.split, { loss: r.loss, accuracy: r.accuracy });
      logger.info({ queue: QUEUES.reduce, jobId: job.id, run: d.run.id, step: d.run.iter, split: d.split, accuracy: r.accuracy, loss: r.loss }, 'epoch evaluation');
    }
    await store.release(d.params, d.holder);
    if (d.run !== undefined) await this.tryFinish(d.run.id);
    return { loss: r.loss, accuracy: r.accuracy, count: r.count, correct: r.correct };
  }

  /** Marks a run done once every step is advanced and no evaluation is pending (store.finish checks both). */
  private async tryFinish(id: string): Promise<void> {
    const run = await this.deps.store.getRun(id);
    if (run === null || run.step < run.iters) return;
    if (await this.deps.store.finish(id, run.iters)) this.deps.logger.info({ run: id, step: run.step }, 'run done');
  }
}
