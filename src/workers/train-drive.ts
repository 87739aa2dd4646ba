import type { Job } from 'bullmq';
import { TRAIN_SIZE, type TrainDriveData } from '../core/contract.js';
import { ValidationError } from '../core/errors.js';
import { isEvalStep, sgdStep } from '../core/training.js';
import { batchIndices } from '../queue/codec.js';
import { jobLock } from '../queue/keys.js';
import { type DriveProgress, seededBatch, trainDriveJob, trainStepFlow } from '../queue/flows.js';
import type { RunSummary } from '../queue/store.js';
import type { PoolGradient } from './threads/pool.js';
import { type TrainStepDeps, afterCommit, checkedSnapshot, commitSteps } from './train-step.js';
import { WORKER_DEFAULTS } from './worker-options.js';

export interface TrainDriveDeps extends TrainStepDeps {
  /** The gradient on this process's threads (LocalPool.gradient): the same bits as any sharding of it. */
  readonly gradient: (params: Float64Array, indices: Int32Array, h: number) => Promise<PoolGradient>;
  /** True once this worker is shutting down: the run goes back to train-step flows. */
  readonly stopping: () => boolean;
  /** How long steps are computed before they are committed together (ms); default DRIVE_COMMIT_MS. */
  readonly commitMs?: number;
  /** The worker's lock duration (ms), which each commit renews the drive's lock for; default WORKER_DEFAULTS.lockDuration. */
  readonly lockMs?: number;
}

/**
 * Why a drive ended: the run ended or stopped; another worker appeared or this one is closing; another
 * job advanced the run; it was started again after the run had moved on (a new drive goes on); or
 * this attempt lost the job's lock (its new attempt goes on).
 */
export type DriveEnd = 'done' | 'stopped' | 'handed-back' | 'elsewhere' | 'renewed' | 'lost-lock';

/**
 * How long a drive computes steps before it commits them (ms): steps are committed a few at a time,
 * and an epoch step, the last step, or a hand-back always ends a commit.
 */
export const DRIVE_COMMIT_MS = 100;

/**
 * A run's steps, one after another, on this process's threads: what a train-step flow per step does
 * when there is only one worker to run its shards, without the flow. The steps computed in each
 * DRIVE_COMMIT_MS are committed together, as one train-step commit would commit them (commitSteps,
 * afterCommit: the same script, metrics lines, holders and epoch evaluations). Each commit overlaps
 * the next step's gradient, which starts from θ as this process computed it: the bits a flow would
 * have written, since every gradient is bitwise the same however it is sharded. A progress event per
 * commit (`{ step, steps }`: the last step committed and how many) times the steps on Redis's clock.
 *
 * At a commit it ends, leaving the run as a train-step flow would leave it, when:
 *  - another worker process listens on the shard queue, or this one shuts down: the step it is at is
 *    enqueued as a train-step flow (θ_t is held for it already) and the workers share it;
 *  - the run stops or is cancelled (θ stays held for `numgrad resume`), or ends;
 *  - a commit finds the run advanced by another job (a duplicate after a stall): that one goes on;
 *  - a commit finds the job's lock no longer this attempt's (it outlived its lock, in a Redis outage
 *    say, and was taken over as stalled): the new attempt goes on, and this one commits nothing more.
 * A drive that dies is a stalled job: redone, it enqueues a new drive from the step Redis holds (the
 * steps it had not committed are computed again, to the same bits). A commit that Redis lost
 * (StepLost) fails the attempt, and its retry does the same.
 */
export async function trainDrive(deps: TrainDriveDeps, job: Job, d: TrainDriveData): Promise<{ from: number; to: number; end: DriveEnd }> {
  const { store } = deps;
  const run = await store.getRun(d.run);
  if (run === null) throw new ValidationError('train-drive', 'data.run', 'an existing run', d.run);
  const cfg = run.config;
  let t = run.step;
  const from = t;
  if (run.state !== 'running') return { from, to: t, end: 'stopped' };
  // Started again (its worker died, or an attempt failed) after it had moved the run on: its last
  // commit's evaluations, or the run's end, may not have followed it (its process died in between),
  // so that is done now, as a redone train-step does; then a new drive goes on from here. A job's
  // stalls and attempts add up over its life, and a drive can live for a whole run: each death of
  // its worker must not count against the next. (Started again at the step it was enqueued for, it
  // goes on itself: a drive that keeps dying there fails as a step would.)
  if (job.attemptsStarted > 1 && t > d.step) {
    await afterCommit(deps, d.run, cfg, t - 1, undefined, run.params, false, false);
    if (t >= cfg.iters) return { from, to: t, end: 'done' };
    await deps.flows.add(trainDriveJob(d.run, t));
    return { from, to: t, end: 'renewed' };
  }
  if (t >= cfg.iters) return { from, to: t, end: 'done' };
  /** The last commit's θ (θ_first) by version; the steps computed since, not yet committed, from `first`. */
  let base = run.params;
  let theta = checkedSnapshot('train-drive', base, await store.getParams(base));
  let first = t;
  let losses: number[] = [];
  let since = performance.now();
  /** The last commit and what follows it, running while the next step's gradient is computed; the version it committed, the step the run is at after it. */
  let prev: Promise<{ end: DriveEnd | 'go'; version: string; to: number }> | undefined;
  for (;;) {
    const g = t < cfg.iters ? deps.gradient(theta, batchIndices(seededBatch(cfg.seed, t, cfg.batch), TRAIN_SIZE), cfg.h) : undefined;
    const settle = (): Promise<unknown> | undefined => g?.catch(() => undefined);
    void settle();
    if (prev !== undefined) {
      const f = await prev.catch(async (err: unknown) => {
        await settle();
        throw err;
      });
      prev = undefined;
      base = f.version;
      if (f.end !== 'go') {
        await settle();
        return { from, to: f.to, end: f.end };
      }
    }
    // Every step up to t is committed here (the last step ends a commit).
    if (g === undefined) return { from, to: t, end: 'done' };
    if (losses.length === 0 && (deps.stopping() || !(await deps.solo()))) {
      await settle();
      await deps.flows.add(trainStepFlow(d.run, t, base, cfg.hidden, cfg.seed, cfg.batch, cfg.h, cfg.shards));
      return { from, to: t, end: 'handed-back' };
    }
    const { gradient, loss } = await g;
    theta = sgdStep(theta, gradient, cfg.lr);
    losses.push(loss);
    t++;
    if (isEvalStep(cfg, t - 1) || t >= cfg.iters || performance.now() - since >= (deps.commitMs ?? DRIVE_COMMIT_MS) || deps.stopping()) {
      prev = commitOverlapped(deps, job, d.run, cfg, first, base, theta, losses);
      prev.catch(() => undefined);
      first = t;
      losses = [];
      since = performance.now();
    }
  }
}

/** Steps first … first+k−1 committed, begun once the caller has started the next step's gradient (the hash of θ included). */
async function commitOverlapped(deps: TrainDriveDeps, job: Job, runId: string, cfg: RunSummary['config'], first: number, from: string, next: Float64Array, losses: number[]): Promise<{ end: DriveEnd | 'go'; version: string; to: number }> {
  await null;
  const last = first + losses.length - 1;
  // θ_first's hold goes with the commit: a drive that dies right after it leaves nothing held.
  // Only while this attempt holds the job's lock: one that outlived it (a Redis outage longer than
  // the lock) has been taken over as stalled, and the new attempt goes on from the step Redis holds.
  const c = await commitSteps(deps, runId, cfg, first, next, losses, [], from, jobLock(job, deps.lockMs ?? WORKER_DEFAULTS.lockDuration));
  // A refused commit's steps are not the run's: `to` is where this drive left the run.
  if (c.result === 'not-owner') return { end: 'lost-lock', version: c.version, to: first };
  const advanced = c.result === 'advanced';
  const now = await afterCommit(deps, runId, cfg, last, undefined, c.version, advanced, false);
  if (!advanced) return { end: 'elsewhere', version: c.version, to: first };
  const progress: DriveProgress = { step: last, steps: losses.length };
  await job.updateProgress(progress);
  if (now === null || now.state !== 'running') return { end: last + 1 >= cfg.iters ? 'done' : 'stopped', version: c.version, to: last + 1 };
  return { end: now.step === last + 1 ? 'go' : 'elsewhere', version: c.version, to: last + 1 };
}
