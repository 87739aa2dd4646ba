/**
 * A train-drive job against a recording Redis stand-in: it commits the run's steps in order with the
 * θ a flow would have committed (θ_{t+1} = θ_t − lr·g_t from the step it found), one progress event
 * per step, and ends as the run tells it to: at the end, when another worker appears or its own
 * worker closes (step t handed back as a train-step flow on θ_t), when the run is stopped, or when
 * another job advanced the run. A snapshot with NaN fails it naming the value.
 */
import type { FlowProducer, Job } from 'bullmq';
import { describe, expect, it } from 'vitest';
import { sgdStep, trainConfig } from '../../src/core/training.js';
import { paramsVersion } from '../../src/queue/codec.js';
import type { RunSummary, Store } from '../../src/queue/store.js';
import { type TrainDriveDeps, trainDrive } from '../../src/workers/train-drive.js';

const P = 795 * 50 + 10;
const cfg = { ...trainConfig({ iters: 6, evalEvery: 600 }), shards: 4 };

function theta0(): Float64Array {
  return Float64Array.from({ length: P }, (_, i) => Math.sin(i) / 10);
}

/** A gradient that depends on θ and on the batch, so a wrong θ or step shows in the committed bits. */
async function gradient(params: Float64Array, indices: Int32Array): Promise<{ gradient: Float64Array; loss: number; seconds: number; shards: number; units: number; callerUnits: number }> {
  const g = params.map((x, i) => Math.cos(x * 3 + indices[i % indices.length]));
  return { gradient: g, loss: indices[0] + params[0], seconds: 0, shards: 1, units: 1, callerUnits: 0 };
}

interface World {
  deps: TrainDriveDeps;
  job: Job;
  /** Each commit: its first step, how many steps, θ after them, its metrics lines. */
  commits: { t: number; k: number; version: string; params: Float64Array; lines: readonly string[]; release?: { version: string; holder: string } }[];
  progress: unknown[];
  /** The lock each commit named (Store.commitStep's owner). */
  owners: unknown[];
  added: { name: string; data: Record<string, unknown> }[];
  run: { step: number; state: RunSummary['state']; params: string };
}

function world(opts: { solo?: (n: number) => boolean; stopping?: () => boolean; theta?: Float64Array; afterCommit?: (w: World, t: number) => void; commitMs?: number; lockLost?: (w: World) => boolean } = {}): World {
  const t0 = opts.theta ?? theta0();
  const snapshots = new Map<string, Float64Array>([[paramsVersion(t0), t0]]);
  const w = { commits: [], progress: [], added: [], owners: [], run: { step: 0, state: 'running', params: paramsVersion(t0) } } as unknown as World;
  const summary = (): RunSummary => ({ id: 'r', state: w.run.state, step: w.run.step, iters: cfg.iters, config: cfg, params: w.run.params, loss: null, trainAcc: null, testAcc: null, createdAt: 0, updatedAt: 0 });
  const store = {
    getRun: async () => summary(),
    getParams: async (v: string) => snapshots.get(v) ?? null,
    commitStep: async (_id: string, t: number, s: { params: Float64Array; version: string; metricsLines: readonly string[]; release?: { version: string; holder: string }; owner?: unknown }) => {
      w.owners.push(s.owner);
      if (opts.lockLost?.(w)) return 'not-owner';
      if (t !== w.run.step) return 'elsewhere';
      const k = s.metricsLines.length;
      w.commits.push({ t, k, version: s.version, params: s.params, lines: s.metricsLines, release: s.release });
      snapshots.set(s.version, s.params);
      w.run.step = t + k;
      w.run.params = s.version;
      opts.afterCommit?.(w, t + k - 1);
      return 'advanced';
    },
    isPending: async () => true,
    releaseAfterStep: async () => 'released',
    release: async () => undefined,
    keepFinalParams: async () => undefined,
  } as unknown as Store;
  const flows = { add: async (f: { name: string; data: Record<string, unknown> }) => void w.added.push(f) } as unknown as FlowProducer;
  let checks = 0;
  w.deps = {
    store,
    flows,
    logger: { debug: () => undefined } as unknown as TrainDriveDeps['logger'],
    loaded: async () => undefined,
    results: { keys: { shardResult: (j: string) => j }, getShardResults: async () => [] } as unknown as TrainDriveDeps['results'],
    tryFinish: async () => {
      if (w.run.step >= cfg.iters) w.run.state = 'done';
    },
    solo: async () => opts.solo?.(checks++) ?? true,
    stopping: opts.stopping ?? (() => false),
    gradient,
    // One step per commit unless a test says otherwise (the default groups by time).
    commitMs: opts.commitMs ?? 0,
  };
  w.job = { id: 'run-r-drive-0', attemptsStarted: 1, updateProgress: async (p: unknown) => void w.progress.push(p) } as unknown as Job;
  return w;
}

/** θ_0 … θ_n as a flow per step would commit them: the same gradient, the same SGD step. */
async function expected(n: number): Promise<Float64Array[]> {
  const { batchIndices } = await import('../../src/queue/codec.js');
  const { seededBatch } = await import('../../src/queue/flows.js');
  const out = [theta0()];
  for (let t = 0; t < n; t++) {
    const g = await gradient(out[t], batchIndices(seededBatch(cfg.seed, t, cfg.batch), 60_000));
    out.push(sgdStep(out[t], g.gradient, cfg.lr));
  }
  return out;
}

/** The loss of each step as the gradient stand-in reports it, along the flow-per-step θ. */
async function lossesOf(n: number): Promise<{ losses: number[] }> {
  const { batchIndices } = await import('../../src/queue/codec.js');
  const { seededBatch } = await import('../../src/queue/flows.js');
  const thetas = await expected(n);
  const losses: number[] = [];
  for (let t = 0; t < n; t++) losses.push((await gradient(thetas[t], batchIndices(seededBatch(cfg.seed, t, cfg.batch), 60_000))).loss);
  return { losses };
}

const bytes = (a: Float64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('train-drive: a run\'s steps on one worker, committed as flows would commit them', () => {
  it('drives the run to its end: every step committed in order, bitwise the θ of a flow per step, one progress event each', async () => {
    const w = world();
    const r = await trainDrive(w.deps, w.job, { v: 1, run: 'r', step: 0 });
    expect(r).toEqual({ from: 0, to: 6, end: 'done' });
    const want = await expected(6);
    expect(w.commits.map((c) => [c.t, c.k])).toEqual([0, 1, 2, 3, 4, 5].map((t) => [t, 1]));
    for (const c of w.commits) {
      expect(bytes(c.params).equals(bytes(want[c.t + 1])), `θ_${c.t + 1} bitwise`).toBe(true);
      expect(c.version).toBe(paramsVersion(want[c.t + 1]));
    }
    expect(w.progress).toEqual([0, 1, 2, 3, 4, 5].map((step) => ({ step, steps: 1 })));
    // Each commit drops the hold on the θ it started from, in the same script.
    expect(w.commits.map((c) => c.release)).toEqual([0, 1, 2, 3, 4, 5].map((t) => ({ version: paramsVersion(want[t]), holder: `run-r-step-${t}` })));
    // Epoch evaluations of steps 0 and 5 (train and test); no train-step flow: the drive ran them all.
    expect(w.added.map((f) => f.name)).toEqual(['evaluation', 'evaluation', 'evaluation', 'evaluation']);
  });

  it('commits the steps of each interval together, an epoch step and the last step ending a commit; the same bits and lines', async () => {
    const w = world({ commitMs: 60_000 });
    const r = await trainDrive(w.deps, w.job, { v: 1, run: 'r', step: 0 });
    expect(r).toEqual({ from: 0, to: 6, end: 'done' });
    const want = await expected(6);
    // Step 0 is an epoch step (it ends a commit); steps 1–5 go together (5 is the last).
    expect(w.commits.map((c) => [c.t, c.k])).toEqual([[0, 1], [1, 5]]);
    expect(bytes(w.commits[1].params).equals(bytes(want[6]))).toBe(true);
    const { losses } = await lossesOf(6);
    expect(w.commits.flatMap((c) => c.lines)).toEqual(losses.map((loss, iter) => JSON.stringify({ iter, loss })));
    expect(w.progress).toEqual([{ step: 0, steps: 1 }, { step: 5, steps: 5 }]);
  });

  it('hands step t back as a train-step flow on θ_t when another worker appears', async () => {
    const w = world({ solo: (n) => n < 2 });
    const r = await trainDrive(w.deps, w.job, { v: 1, run: 'r', step: 0 });
    expect(r).toEqual({ from: 0, to: 2, end: 'handed-back' });
    expect(w.commits.map((c) => c.t)).toEqual([0, 1]);
    const flow = w.added.find((f) => f.name === 'train-step');
    expect(flow?.data).toEqual({ v: 1, run: 'r', step: 2, params: paramsVersion((await expected(2))[2]) });
  });

  it('hands back when its worker is closing', async () => {
    let closing = false;
    const w = world({ stopping: () => closing, afterCommit: (_, t) => (closing = t === 2) });
    const r = await trainDrive(w.deps, w.job, { v: 1, run: 'r', step: 0 });
    expect(r).toEqual({ from: 0, to: 3, end: 'handed-back' });
    expect(w.added.filter((f) => f.name === 'train-step').map((f) => f.data.step)).toEqual([3]);
  });

  it('ends when the run is stopped (θ_{t+1} stays for resume) or advanced by another job', async () => {
    const stopped = world({ afterCommit: (w, t) => void (t === 1 && (w.run.state = 'cancelled')) });
    expect(await trainDrive(stopped.deps, stopped.job, { v: 1, run: 'r', step: 0 })).toEqual({ from: 0, to: 2, end: 'stopped' });
    expect(stopped.commits.map((c) => c.t)).toEqual([0, 1]);

    // Another job commits step 2 first: this drive's commit of step 2 is refused and it ends.
    const other = world({ afterCommit: (w, t) => void (t === 1 && (w.run.step = 3)) });
    expect(await trainDrive(other.deps, other.job, { v: 1, run: 'r', step: 0 })).toEqual({ from: 0, to: 2, end: 'elsewhere' });
    expect(other.commits.map((c) => c.t)).toEqual([0, 1]);
    expect(other.added.filter((f) => f.name === 'train-step')).toEqual([]);
  });

  it('starts from the step Redis holds (a drive redone after a stall), not the one it was enqueued for', async () => {
    const want = await expected(6);
    const w = world({ theta: want[3] });
    w.run.step = 3;
    const r = await trainDrive(w.deps, w.job, { v: 1, run: 'r', step: 1 });
    expect(r).toEqual({ from: 3, to: 6, end: 'done' });
    expect(w.commits.map((c) => c.t)).toEqual([3, 4, 5]);
    expect(bytes(w.commits[2].params).equals(bytes(want[6]))).toBe(true);
  });

  it('started again (a stall, a retry) after it moved the run on, it enqueues a new drive from the step Redis holds and ends', async () => {
    const want = await expected(6);
    const w = world({ theta: want[3] });
    w.run.step = 3;
    const again = { ...w.job, attemptsStarted: 2 } as unknown as Job;
    expect(await trainDrive(w.deps, again, { v: 1, run: 'r', step: 1 })).toEqual({ from: 3, to: 3, end: 'renewed' });
    expect(w.commits).toEqual([]);
    expect(w.added).toEqual([expect.objectContaining({ name: 'train-drive', data: { v: 1, run: 'r', step: 3 }, opts: expect.objectContaining({ jobId: 'run-r-drive-3' }) })]);
    // Started again at the step it was enqueued for: it goes on itself.
    const same = world({ theta: want[3] });
    same.run.step = 3;
    expect(await trainDrive(same.deps, { ...same.job, attemptsStarted: 2 } as unknown as Job, { v: 1, run: 'r', step: 3 })).toEqual({ from: 3, to: 6, end: 'done' });
  });

  it('names its lock in every commit, and once a commit is refused for it (the attempt outlived its lock) ends, committing and enqueuing nothing more', async () => {
    const w = world({ lockLost: (x) => x.commits.length >= 2 });
    w.deps = { ...w.deps, lockMs: 2000 };
    w.job = { ...w.job, id: 'run-r-drive-0', queueQualifiedName: 'p:reduce', token: 'tok-1' } as unknown as Job;
    const r = await trainDrive(w.deps, w.job, { v: 1, run: 'r', step: 0 });
    expect(r).toEqual({ from: 0, to: 2, end: 'lost-lock' });
    expect(w.commits.map((c) => c.t)).toEqual([0, 1]);
    expect(w.owners.length).toBe(3);
    for (const o of w.owners) expect(o).toEqual({ lockKey: 'p:reduce:run-r-drive-0:lock', token: 'tok-1', lockMs: 2000 });
    expect(w.run.step).toBe(2);
    expect(w.added.filter((f) => f.name !== 'evaluation')).toEqual([]);
  });

  it('a snapshot with NaN fails the drive, naming the value', async () => {
    const bad = theta0();
    bad[3] = Number.NaN;
    const w = world({ theta: bad });
    await expect(trainDrive(w.deps, w.job, { v: 1, run: 'r', step: 0 })).rejects.toThrow(/^train-drive: data\.params\[3\] must be a finite number in the stored snapshot, got NaN$/);
    expect(w.commits).toEqual([]);
  });
});
