import type { FlowProducer, Job } from 'bullmq';
import { type EvaluationData, JOBS, QUEUES, type TrainStepData } from '../core/contract.js';
import { ValidationError } from '../core/errors.js';
import { paramCount } from '../core/layout.js';
import { isEvalStep, sgdStep } from '../core/training.js';
import type { Logger } from '../io/logger.js';
import { type ShardResults, assembleChildren, fdOrigin } from '../queue/children.js';
import { paramsVersion } from '../queue/codec.js';
import { EVAL_SHARD_SAMPLES, evaluationFlow, jobId, seededBatch, trainStepFlow } from '../queue/flows.js';
import type { Store } from '../queue/store.js';

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
}

/**
 * One training step: θ_{t+1} = θ_t − lr·g_t, written once (a Lua check on the run's step makes a
 * duplicate a no-op), then the epoch evaluations and step t+1 enqueued under deterministic ids.
 * Every action after the advance is idempotent, so a reducer that dies half-way is simply re-run.
 */
export async function trainStep(deps: TrainStepDeps, job: Job, d: TrainStepData): Promise<{ step: number; advanced: boolean }> {
  const { store, flows } = deps;
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
    const theta = (await deps.loaded(d.params)) ?? (await store.getParams(d.params));
    if (theta === null) throw new ValidationError('train-step', 'data.params', 'a params version stored in Redis', d.params);
    // The shards check the snapshot when they load it, but may have loaded it before it changed.
    const bad = theta.findIndex((x) => !Number.isFinite(x));
    if (bad >= 0) throw new ValidationError('train-step', `data.params[${bad}]`, 'a finite number in the stored snapshot', theta[bad]);
    const nextParams = sgdStep(theta, g, cfg.lr);
    next = paramsVersion(nextParams);
    const evals = isEvalStep(cfg, t);
    const holders = [jobId('run', d.run, 'step', t + 1), ...(evals ? [jobId('run', d.run, 'eval', t, 'train'), jobId('run', d.run, 'eval', t, 'test')] : [])];
    const pending = evals ? [`eval:${t}:train`, `eval:${t}:test`] : [];
    advanced = (await store.commitStep(d.run, t, { params: nextParams, version: next, holders, pending, metricsLine: JSON.stringify({ iter: t, loss }), loss, shardResults: stored })) === 'advanced';
    deps.logger.debug({ queue: QUEUES.reduce, jobId: job.id, run: d.run, step: t, loss }, 'step');
  } else {
    next = run.params;
  }
  // What comes next names θ_{t+1}: only once Redis holds the step (a Redis that came back without
  // its last writes may have lost it, snapshot and all). Then this job is retried and redoes it.
  const now = await store.getRun(d.run);
  if (now !== null && now.state === 'running' && now.step < t + 1) throw new StepLost(d.run, t, now.step);
  if (isEvalStep(cfg, t)) {
    for (const split of ['train', 'test'] as const) {
      // After a crash between the advance and here, add only evaluations still pending.
      if (!advanced && !(await store.isPending(d.run, `eval:${t}:${split}`))) continue;
      const holder = jobId('run', d.run, 'eval', t, split);
      const data: EvaluationData = { v: 1, params: next, hidden: cfg.hidden, split, holder, run: { id: d.run, iter: t } };
      await flows.add(evaluationFlow(data, holder, EVAL_SHARD_SAMPLES));
    }
  }
  if (t + 1 < cfg.iters) {
    // Only while the run waits for step t + 1: a late duplicate of this job (a worker cut off the
    // network, back after its step was redone elsewhere) would otherwise add step t + 1 again, under
    // the same ids but as new jobs (the done ones are removed), on a θ_{t+1} already released.
    if (now?.state === 'running' && now.step === t + 1) {
      await flows.add(trainStepFlow(d.run, t + 1, next, cfg.hidden, cfg.seed, cfg.batch, cfg.h, cfg.shards));
    }
    // Stopped meanwhile: θ_{t+1} stays held for step t+1, which `numgrad resume` enqueues.
  } else {
    await store.keepFinalParams(d.run, next);
    await store.release(next, jobId('run', d.run, 'step', t + 1));
  }
  // Refused while Redis holds the run at step t or before: it lost the step after the check above
  // (a command in flight when it went down is resent when it is back), and the redo needs θ_t.
  if ((await store.releaseAfterStep(d.run, t, d.params, holderT)) === 'behind') throw new StepLost(d.run, t, t);
  if (t + 1 >= cfg.iters) await deps.tryFinish(d.run);
  return { step: t, advanced };
}
