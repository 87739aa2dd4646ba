/**
 * The training step's reducer against what Redis says, with the store and the flow producer as
 * recording stubs: a late duplicate of a step (a worker cut off the network, back after the step
 * was redone elsewhere and the run moved on) enqueues nothing.
 */
import type { FlowProducer, Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { trainConfig } from '../../src/core/training.js';
import type { RunSummary, Store } from '../../src/queue/store.js';
import { type TrainStepDeps, trainStep } from '../../src/workers/train-step.js';

const cfg = { ...trainConfig({ iters: 100, evalEvery: 600 }), shards: 4 };
const V = 'a'.repeat(64);

function run(step: number): RunSummary {
  return { id: 'r', state: 'running', step, iters: 100, config: cfg, params: V, loss: null, trainAcc: null, testAcc: null, createdAt: 0, updatedAt: 0 };
}

/** Deps whose store answers getRun with `steps` in turn (the last one from then on) and records what is called. */
function deps(steps: number[], solo = false): { deps: TrainStepDeps; added: unknown[]; released: unknown[][] } {
  const added: unknown[] = [];
  const released: unknown[][] = [];
  let n = 0;
  const store = {
    getRun: async () => run(steps[Math.min(n++, steps.length - 1)]),
    releaseAfterStep: async (...a: unknown[]) => {
      released.push(a);
      return 'released';
    },
    release: async () => undefined,
  } as unknown as Store;
  const flows = { add: async (f: unknown) => void added.push(f) } as unknown as FlowProducer;
  const none = async () => undefined;
  return {
    deps: { store, flows, logger: { debug: () => undefined } as unknown as TrainStepDeps['logger'], loaded: none, tryFinish: none, solo: async () => solo, results: { keys: { shardResult: (j) => j }, getShardResults: async () => [] } },
    added,
    released,
  };
}

const job = { id: 'run-r-step-30' } as unknown as Job;

describe('train-step: what a step enqueues follows what Redis says now', () => {
  it('a duplicate of step 30 while the run waits for step 31 enqueues step 31 (idempotent: same ids)', async () => {
    const d = deps([31]);
    await trainStep(d.deps, job, { v: 1, run: 'r', step: 30, params: 'b'.repeat(64) });
    expect(d.added).toHaveLength(1);
    expect(d.released).toHaveLength(1);
  });

  it('a worker alone on the shard queue enqueues step 31 as a train-drive job (no shards), under its deterministic id', async () => {
    const d = deps([31], true);
    await trainStep(d.deps, job, { v: 1, run: 'r', step: 30, params: 'b'.repeat(64) });
    expect(d.added).toEqual([expect.objectContaining({ name: 'train-drive', queueName: 'reduce', data: { v: 1, run: 'r', step: 31 }, opts: expect.objectContaining({ jobId: 'run-r-drive-31' }) })]);
    expect((d.added[0] as { children?: unknown }).children).toBeUndefined();
  });

  it('a late duplicate of step 30 that finds the run moved on meanwhile (at step 35) enqueues nothing', async () => {
    const d = deps([31, 35]);
    await trainStep(d.deps, job, { v: 1, run: 'r', step: 30, params: 'b'.repeat(64) });
    expect(d.added).toEqual([]);
  });

  it('a duplicate that finds the run past step 31 from the start changes nothing', async () => {
    const d = deps([35]);
    const r = await trainStep(d.deps, job, { v: 1, run: 'r', step: 30, params: 'b'.repeat(64) });
    expect(r).toEqual({ step: 30, advanced: false });
    expect(d.added).toEqual([]);
  });
});
