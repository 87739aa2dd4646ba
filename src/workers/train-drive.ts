import type { Job } from 'bullmq';
import { TRAIN_SIZE, type TrainDriveData } from '../core/contract.js';
import { ValidationError } from '../core/errors.js';
import { sgdStep } from '../core/training.js';
import { batchIndices } from '../queue/codec.js';
import { seededBatch, trainStepFlow } from '../queue/flows.js';
import type { RunSummary } from '../queue/store.js';
import type { PoolGradient } from './threads/pool.js';
import { type TrainStepDeps, afterCommit, checkedSnapshot, commitStep } from './train-step.js';

export interface TrainDriveDeps extends TrainStepDeps {
  /** The gradient on this process's threads (LocalPool.gradient): the same bits as any sharding of it. */
  readonly gradient: (params: Float64Array, indices: Int32Array, h: number) => Promise<PoolGradient>;
  /** True once this worker is shutting down: the run goes back to train-step flows. */
  readonly stopping: () => boolean;
}

/** Why a drive ended: the run ended or stopped, another worker appeared or this one is closing, or another job advanced the run. */
export type DriveEnd = 'done' | 'stopped' | 'handed-back' | 'elsewhere';

/**
 * A run's steps, one after another, on this process's threads: what a train-step flow per step does
 * when there is only one worker to run its shards, without the flow. Each step is committed as a
 * train-step commits it (commitStep, afterCommit: the same script, metrics line, holders and epoch
 * evaluations), and its commit overlaps the next step's gradient, which starts from θ_{t+1} as this
 * process computed it: the bits a flow would have written, since every gradient is bitwise the same
 * however it is sharded. A progress event per step (`{ step }`) times the steps on Redis's clock.
 *
 * It ends, leaving the run as a train-step flow would leave it, when:
 *  - another worker process listens on the shard queue, or this one shuts down: the step it is at is
 *    enqueued as a train-step flow (θ_t is held for it already) and the workers share it;
 *  - the run stops or is cancelled (θ_{t+1} stays held for `numgrad resume`), or ends;
 *  - a commit finds the run advanced by another job (a duplicate after a stall): that one goes on.
 * A drive that dies is a stalled job: redone, it goes on from the step Redis holds. A commit that
 * Redis lost (StepLost) fails the attempt the same way.
 */
export async function trainDrive(deps: TrainDriveDeps, job: Job, d: TrainDriveData): Promise<{ from: number; to: number; end: DriveEnd }> {
  const { store } = deps;
  const run = await store.getRun(d.run);
  if (run === null) throw new ValidationError('train-drive', 'data.run', 'an existing run', d.run);
  const cfg = run.config;
  let t = run.step;
  const from = t;
  if (run.state !== 'running') return { from, to: t, end: 'stopped' };
  if (t >= cfg.iters) return { from, to: t, end: 'done' };
  let version = run.params;
  let theta = checkedSnapshot('train-drive', version, await store.getParams(version));
  /** Step t − 1's commit and what follows it, running while step t's gradient is computed; θ_t's version. */
  let prev: Promise<{ end: DriveEnd | 'go'; version: string }> | undefined;
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
      version = f.version;
      if (f.end !== 'go') {
        await settle();
        return { from, to: t, end: f.end };
      }
    }
    if (g === undefined) return { from, to: t, end: 'done' };
    if (deps.stopping() || !(await deps.solo())) {
      await settle();
      await deps.flows.add(trainStepFlow(d.run, t, version, cfg.hidden, cfg.seed, cfg.batch, cfg.h, cfg.shards));
      return { from, to: t, end: 'handed-back' };
    }
    const { gradient, loss } = await g;
    const next = sgdStep(theta, gradient, cfg.lr);
    prev = commitOverlapped(deps, job, d.run, cfg, t, version, next, loss);
    prev.catch(() => undefined);
    theta = next;
    t++;
  }
}

/** Step t's commit and what follows it, begun once the caller has started step t + 1's gradient (the hash of θ_{t+1} included). */
async function commitOverlapped(deps: TrainDriveDeps, job: Job, runId: string, cfg: RunSummary['config'], t: number, from: string, next: Float64Array, loss: number): Promise<{ end: DriveEnd | 'go'; version: string }> {
  await null;
  const c = await commitStep(deps, runId, cfg, t, next, loss, []);
  const now = await afterCommit(deps, runId, cfg, t, from, c.version, c.advanced, false);
  if (!c.advanced) return { end: 'elsewhere', version: c.version };
  await job.updateProgress({ step: t });
  if (now === null || now.state !== 'running') return { end: t + 1 >= cfg.iters ? 'done' : 'stopped', version: c.version };
  return { end: now.step === t + 1 ? 'go' : 'elsewhere', version: c.version };
}
