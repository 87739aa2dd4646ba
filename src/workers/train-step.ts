import type { FlowProducer, Job } from 'bullmq';
import { type EvaluationData, JOBS, QUEUES, type TrainStepData } from '../core/contract.js';
import { ValidationError } from '../core/errors.js';
import { paramCount } from '../core/layout.js';
import { isEvalStep, sgdStep } from '../core/training.js';
import type { Logger } from '../io/logger.js';
import { type ShardResults, assembleChildren, fdOrigin } from '../queue/children.js';
import { paramsVersion } from '../queue/codec.js';
import { EVAL_SHARD_SAMPLES, evaluationFlow, jobId, seededBatch, trainDriveJob, trainStepFlow } from '../queue/flows.js';
import type { LockOwner } from '../queue/keys.js';
import type { Advance, RunSummary, Store } from '../queue/store.js';

/**
 * Redis no longer holds a step this job committed (it came back from its append-only file without
 * its last second of writes). Not a NumgradError: BullMQ retries the job, which redoes the step.
 */
export class StepLost extends Error {
  constructor(run: string, t: number, at: number) {
    super(`train-step: run ${run} is back at step ${at} (Redis lost its last writes); step ${t} is redone`);
    this.name = 'StepLost';
  }
}

export interface TrainStepDeps {
  readonly store: Store;
  readonly flows: FlowProducer;
  readonly logger: Logger;
  /** θ_t as this process's shards loaded it, if it is still here (else it is read from Redis). */
  readonly loaded: (version: string) => Promise<Float64Array | undefined>;
  /** Stored shard results: Redis, or this process's memory for shards that ran here. */
  readonly results: ShardResults;
  /** Marks the run done once its last step and evaluations are in. */
  readonly tryFinish: (run: string) => Promise<void>;
  /** Whether this is the only worker process on the shard queue (then step t + 1 is a train-drive job). */
  readonly solo: () => Promise<boolean>;
}

type RunConfig = RunSummary['config'];

/**
 * One training step: θ_{t+1} = θ_t − lr·g_t, written once (a Lua check on the run's step makes a
 * duplicate a no-op), then the epoch evaluations and step t+1 enqueued under deterministic ids.
 * Every action after the advance is idempotent, so a reducer that dies half-way is simply re-run.
 */
export async function trainStep(deps: TrainStepDeps, job: Job, d: TrainStepData): Promise<{ step: number; advanced: boolean }> {
  const { store } = deps;
  const run = await store.getRun(d.run);
  if (run === null) throw new ValidationError('train-step', 'data.run', 'an existing run', d.run);
  const holderT = jobId('run', d.run, 'step', d.step);
  if (run.state !== 'running' || run.step > d.step + 1 || run.step < d.step) {
    // A stopped run keeps its current snapshot (held for this step): `numgrad resume` goes on from it.
    if (run.state === 'running' || run.step !== d.step) await store.release(d.params, holderT);
    return { step: d.step, advanced: false };
  }
  const cfg = run.config;
  const t = d.step;
  let next: string;
  let advanced = false;
  if (run.step === t) {
    const { out: g, loss, stored } = await assembleChildren(job, JOBS.trainStep, paramCount(cfg.hidden), fdOrigin(d.params, cfg.hidden, seededBatch(cfg.seed, t, cfg.batch), cfg.h), deps.results);
    const theta = checkedSnapshot('train-step', d.params, (await deps.loaded(d.params)) ?? (await store.getParams(d.params)));
    const c = await commitSteps(deps, d.run, cfg, t, sgdStep(theta, g, cfg.lr), [loss], stored);
    next = c.version;
    advanced = c.result === 'advanced';
    deps.logger.debug({ queue: QUEUES.reduce, jobId: job.id, run: d.run, step: t, loss }, 'step');
  } else {
    next = run.params;
  }
  await afterCommit(deps, d.run, cfg, t, d.params, next, advanced, true);
  return { step: t, advanced };
}

/** A params snapshot read for a step: present (else the job names a version Redis does not hold) and finite. */
export function checkedSnapshot(op: string, version: string, theta: Float64Array | null): Float64Array {
  if (theta === null) throw new ValidationError(op, 'data.params', 'a params version stored in Redis', version);
  // The shards check the snapshot when they load it, but may have loaded it before it changed.
  const bad = theta.findIndex((x) => !Number.isFinite(x));
  if (bad >= 0) throw new ValidationError(op, `data.params[${bad}]`, 'a finite number in the stored snapshot', theta[bad]);
  return theta;
}

/**
 * Steps t … t+k−1 committed as one (k = losses.length; a train-step commits one): θ_{t+k} with its
 * holders (step t + k, and the epoch evaluations of step t+k−1, the only one of them that may be an
 * epoch step), the k metrics lines and the last loss, in one script (store.commitStep); `stored`
 * shard results go with it, and so does the release of θ_t (`releaseFrom`, its version) when given;
 * with `owner` (a drive's lock), only while the committing job still holds its lock.
 */
export async function commitSteps(deps: Pick<TrainStepDeps, 'store'>, runId: string, cfg: RunConfig, t: number, nextParams: Float64Array, losses: readonly number[], stored: readonly string[], releaseFrom?: string, owner?: LockOwner): Promise<{ version: string; result: Advance }> {
  const last = t + losses.length - 1;
  for (let u = t; u < last; u++) if (isEvalStep(cfg, u)) throw new Error(`commitSteps: epoch step ${u} must end the steps committed together (${t}–${last})`);
  const version = paramsVersion(nextParams);
  const evals = isEvalStep(cfg, last);
  const holders = [jobId('run', runId, 'step', last + 1), ...(evals ? [jobId('run', runId, 'eval', last, 'train'), jobId('run', runId, 'eval', last, 'test')] : [])];
  const pending = evals ? [`eval:${last}:train`, `eval:${last}:test`] : [];
  const metricsLines = losses.map((loss, i) => JSON.stringify({ iter: t + i, loss }));
  const release = releaseFrom === undefined ? undefined : { version: releaseFrom, holder: jobId('run', runId, 'step', t) };
  const result = await deps.store.commitStep(runId, t, { params: nextParams, version, holders, pending, metricsLines, loss: losses[losses.length - 1], shardResults: stored, release, owner });
  return { version, result };
}

/**
 * What follows a commit that ended with step t (`advanced`: this call made it; else it was found
 * made): the epoch evaluations of step t, step t + 1 (a train-step flow, or a train-drive job when
 * this is the only worker) when `enqueueNext`, or at the end the final params; then θ_t (`from`, held
 * by step t) released — undefined when the commit released it itself (a drive's). Returns the run as
 * Redis holds it after the commit. Throws StepLost when Redis no longer holds the steps.
 */
export async function afterCommit(deps: TrainStepDeps, runId: string, cfg: RunConfig, t: number, from: string | undefined, next: string, advanced: boolean, enqueueNext: boolean): Promise<RunSummary | null> {
  const { store, flows } = deps;
  // What comes next names θ_{t+1}: only once Redis holds the step (a Redis that came back without
  // its last writes may have lost it, snapshot and all). Then this job is retried and redoes it.
  const now = await store.getRun(runId);
  if (now !== null && now.state === 'running' && now.step < t + 1) throw new StepLost(runId, t, now.step);
  if (isEvalStep(cfg, t)) {
    for (const split of ['train', 'test'] as const) {
      // After a crash between the advance and here, add only evaluations still pending.
      if (!advanced && !(await store.isPending(runId, `eval:${t}:${split}`))) continue;
      const holder = jobId('run', runId, 'eval', t, split);
      const data: EvaluationData = { v: 1, params: next, hidden: cfg.hidden, split, holder, run: { id: runId, iter: t } };
      await flows.add(evaluationFlow(data, holder, EVAL_SHARD_SAMPLES));
    }
  }
  if (t + 1 < cfg.iters) {
    // Only while the run waits for step t + 1: a late duplicate of this job (a worker cut off the
    // network, back after its step was redone elsewhere) would otherwise add step t + 1 again, under
    // the same ids but as new jobs (the done ones are removed), on a θ_{t+1} already released.
    if (enqueueNext && now?.state === 'running' && now.step === t + 1) {
      await flows.add((await deps.solo()) ? trainDriveJob(runId, t + 1) : trainStepFlow(runId, t + 1, next, cfg.hidden, cfg.seed, cfg.batch, cfg.h, cfg.shards));
    }
    // Stopped meanwhile: θ_{t+1} stays held for step t+1, which `numgrad resume` enqueues.
  } else {
    await store.keepFinalParams(runId, next);
    await store.release(next, jobId('run', runId, 'step', t + 1));
  }
  // Refused while Redis holds the run at step t or before: it lost the step after the check above
  // (a command in flight when it went down is resent when it is back), and the redo needs θ_t.
  if (from !== undefined && (await store.releaseAfterStep(runId, t, from, jobId('run', runId, 'step', t))) === 'behind') throw new StepLost(runId, t, t);
  if (t + 1 >= cfg.iters) await deps.tryFinish(runId);
  return now;
}
