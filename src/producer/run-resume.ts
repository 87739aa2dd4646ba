import type { FlowProducer, Queue } from 'bullmq';
import type { EvaluationData } from '../core/contract.js';
import { NumgradError } from '../core/errors.js';
import { paramCount } from '../core/layout.js';
import { paramsVersion } from '../queue/codec.js';
import { EVAL_SHARD_SAMPLES, evaluationFlow, jobId, trainStepFlow } from '../queue/flows.js';
import { RunState } from '../queue/run-state.js';
import type { RunSummary, Store } from '../queue/store.js';

const OP = 'numgrad resume';
/** How long to wait for a shard of the failed step still running elsewhere (its lock) before giving up. */
const LOCKED_WAIT_MS = 35_000;

export interface ResumeDeps {
  readonly store: Store;
  readonly flows: FlowProducer;
  readonly reduce: Queue;
}

/**
 * The snapshot a stopped run goes on from must be there and be what its version says: the version is
 * the SHA-256 of the bytes, so any change (NaN bytes written over it, a truncation) is caught here,
 * before anything is enqueued, and a restored snapshot is accepted only if it is bitwise the original.
 */
async function checkSnapshot(store: Store, id: string, version: string, hidden: number, what: string): Promise<void> {
  const key = store.keys.params(version);
  const raw = version === '' ? null : await store.redis.getBuffer(key);
  if (raw === null) throw new NumgradError(`${OP}: run ${id}: the parameters of ${what} (${key}) are no longer in Redis; the run cannot go on`);
  const ok = raw.byteLength === 8 * paramCount(hidden) && paramsVersion(new Float64Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))) === version;
  if (!ok) throw new NumgradError(`${OP}: run ${id}: the parameters of ${what} (${key}) must be the bytes of their version (SHA-256 ${version.slice(0, 12)}…, ${8 * paramCount(hidden)} bytes), got ${raw.byteLength} bytes that differ; restore them, then resume`);
}

/**
 * A failed job of the run is removed with its shards before it is enqueued again under the same
 * deterministic id (a failed job or shard left under that id would swallow the new one). A job that
 * is still alive (waiting, active) is left alone: the run simply goes on with it. Returns the failed
 * job's data when there was one.
 */
async function clearFailed(reduce: Queue, id: string): Promise<unknown> {
  const job = await reduce.getJob(id);
  if (job === undefined || (await job.getState()) !== 'failed') return undefined;
  const deadline = Date.now() + LOCKED_WAIT_MS;
  for (;;) {
    try {
      await job.remove({ removeChildren: true });
      return job.data;
    } catch (err) {
      if (Date.now() > deadline) throw new NumgradError(`${OP}: job ${id} could not be removed (${err instanceof Error ? err.message : String(err)}); try again`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

/**
 * Restarts a failed or cancelled run from its last completed step: the step it stopped at is
 * enqueued again on the parameters it had (kept in Redis while the run is stopped), and so is any
 * epoch evaluation that failed. Seeded batches and content-addressed parameters make the resumed
 * run end bit for bit like one that never stopped.
 */
export async function resumeRun(deps: ResumeDeps, id: string): Promise<RunSummary> {
  const { store, flows, reduce } = deps;
  const run = await store.getRun(id);
  if (run === null) throw new NumgradError(`${OP}: RUN must be the id of an existing run (see \`numgrad runs\`), got ${JSON.stringify(id)}`);
  if (run.state !== 'failed' && run.state !== 'cancelled') throw new NumgradError(`${OP}: run ${id} is ${run.state} at step ${run.step}/${run.iters}; only a failed or cancelled run can be resumed`);
  const cfg = run.config;
  const stepLeft = run.step < run.iters;
  if (stepLeft) await checkSnapshot(store, id, run.params, cfg.hidden, `step ${run.step}`);
  const pending = (await store.redis.smembers(store.keys.runPending(id))).sort();
  const evals: EvaluationData[] = [];
  for (const token of pending) {
    const [, iter, split] = token.split(':');
    const evalId = jobId('run', id, 'eval', iter, split);
    const job = await reduce.getJob(evalId);
    if (job === undefined || (await job.getState()) !== 'failed') continue;
    const data = job.data as EvaluationData;
    await checkSnapshot(store, id, data.params, cfg.hidden, `the ${split} evaluation at iteration ${iter}`);
    evals.push(data);
  }
  if (stepLeft) await clearFailed(reduce, jobId('run', id, 'step', run.step));
  for (const d of evals) await clearFailed(reduce, d.holder);
  const was = await new RunState(store.redis, store.keys).reopen(id);
  if (was !== 'failed' && was !== 'cancelled') throw new NumgradError(`${OP}: run ${id} became ${was} meanwhile; nothing was resumed`);
  if (stepLeft) await flows.add(trainStepFlow(id, run.step, run.params, cfg.hidden, cfg.seed, cfg.batch, cfg.h, cfg.shards));
  for (const d of evals) await flows.add(evaluationFlow(d, d.holder, EVAL_SHARD_SAMPLES));
  return (await store.getRun(id)) as RunSummary;
}
