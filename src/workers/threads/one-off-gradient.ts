import { ValidationError, NumgradError } from '../../core/errors.js';
import type { Batch } from '../../core/dataset.js';
import { FdEngine, planGradient, planLoss } from '../../core/fd-engine.js';
import { UNIT_COORDS, countUnits, runSchedule, scheduleGradient, scheduleLength } from '../../core/fd-schedule.js';
import { packPlan, unpackPlan } from '../../core/plan-buffer.js';
import type { LocalPool, PoolGradient } from './pool.js';
import { claimBytes, claimTask, newPlanId } from './task-types.js';

/**
 * Worker threads are started once the main thread has computed this long and work is left. Measured
 * on our 2-core machines (docs/BENCHMARKS.md, "A cold one-off gradient"): a worker thread runs its
 * first unit 150–250 ms after it is started (Node's thread bootstrap, its modules, the WebAssembly
 * kernels, a cold JIT), and starting and stopping one costs the main thread ~50 ms (piscina's module,
 * the thread's creation and termination) while its boot slows the main thread's own cold code; the
 * chapter-4 gradient takes one cold thread ~70 ms. So a thread is paid for only once the work has
 * shown it is long: at worst, a gradient just longer than this pays the start for nothing.
 */
export const START_THREADS_AFTER_MS = 200;
/** Between slices of this length the main thread yields, so that piscina hands the threads their tasks. */
const SLICE_MS = 5;

export interface OneOffOptions {
  /** Threads in all: this process's main thread and threads − 1 worker threads. */
  threads: number;
  /** MNIST folder, for the worker threads' pool (a gradient's plan carries its batch: they never read it). */
  mnistDir?: string;
  /** Default START_THREADS_AFTER_MS; 0 starts them with the first gradient. */
  startThreadsAfterMs?: number;
  /** Coordinates per unit (default: adapted to the thread count, fd-schedule.ts); the values never depend on it. */
  gradientShardSize?: number;
}

export interface OneOffResult extends PoolGradient {
  /** Of the units, those the main thread ran. */
  readonly callerUnits: number;
  /** Seconds into the gradient at which the worker threads were started; null if they were not. */
  readonly threadsStartedAt: number | null;
}

/**
 * The gradients of a one-off command (`numgrad gradient --backend local`) on `threads` threads. Its
 * main thread would otherwise only wait, so it computes from the start, claiming units of the
 * gradient's schedule (fd-schedule.ts) from the counter in shared memory that worker threads claim
 * from too, once started (START_THREADS_AFTER_MS): which thread runs a unit never changes a value,
 * so the bytes are fdGradient's whoever ran what. The pool's module (piscina, the thread runtime)
 * is loaded only when threads start.
 */
export class OneOffGradients {
  readonly threads: number;
  private readonly startAfterMs: number;
  private pool: Promise<LocalPool> | undefined;
  private closed = false;

  constructor(private readonly opts: OneOffOptions) {
    const { threads, startThreadsAfterMs = START_THREADS_AFTER_MS } = opts;
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new ValidationError('OneOffGradients', 'threads', 'an integer in [1, 256]', threads);
    if (!(startThreadsAfterMs >= 0)) throw new ValidationError('OneOffGradients', 'startThreadsAfterMs', 'a number ≥ 0', startThreadsAfterMs);
    this.threads = threads;
    this.startAfterMs = startThreadsAfterMs;
  }

  /** The gradient at `params` on `batch` by central differences; `seconds` counts from its plan. */
  async gradient(params: Float64Array, batch: Batch, h?: number): Promise<OneOffResult> {
    if (this.closed) throw new NumgradError('OneOffGradients: closed');
    const t0 = performance.now();
    const plan = planGradient(params, batch, h);
    // The plan and its memo in shared memory from the start: threads that join mid-way reuse the rows done.
    const buffer = packPlan(plan, (n) => new SharedArrayBuffer(n)) as SharedArrayBuffer;
    const shared = unpackPlan(buffer);
    const engine = new FdEngine(shared.plan, shared.memory);
    const coords = params.length;
    const schedule = scheduleGradient(plan.hidden, plan.rowSample.length, 0, coords, this.threads, this.opts.gradientShardSize);
    const units = scheduleLength(schedule);
    // Fresh buffers, not reused: a thread task posted for this gradient may start after it is done
    // (it finds the counter past the end and writes nothing but the counter).
    const task = claimTask(newPlanId(), buffer, 0, coords, schedule, new SharedArrayBuffer(claimBytes(coords, schedule.length)));
    const startAt = t0 + this.startAfterMs;
    let mine = runSchedule(engine, task.schedule, task.next, task.out, 0, this.threads > 1 ? () => performance.now() < startAt : undefined);
    let threadsStartedAt: number | null = null;
    let theirs = 0;
    if (Atomics.load(task.next, 0) < units) {
      threadsStartedAt = (performance.now() - t0) / 1000;
      const runs = (await this.threadPool()).claim(task, Math.min(this.threads - 1, units));
      // A task still queued when the pool closes (its thread never became ready) is rejected then.
      for (const r of runs) r.catch(() => undefined);
      // Piscina hands a queued task to a thread when that thread says it is ready, which this event
      // loop must hear: claim in slices and yield between them.
      while (Atomics.load(task.next, 0) < units) {
        const until = performance.now() + SLICE_MS;
        mine += runSchedule(engine, task.schedule, task.next, task.out, 0, () => performance.now() < until);
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      // Every unit is claimed; wait for those the threads claimed, not for a thread still booting.
      if (mine < units) theirs = await unitsRun(runs, units - mine);
    }
    if (mine + theirs !== units) throw new NumgradError(`OneOffGradients: ${mine + theirs} of ${units} units ran`);
    return {
      gradient: task.out.slice(), loss: planLoss(plan), shards: countUnits(schedule, UNIT_COORDS), units,
      callerUnits: mine, threadsStartedAt, seconds: (performance.now() - t0) / 1000,
    };
  }

  private threadPool(): Promise<LocalPool> {
    this.pool ??= import('./pool.js').then(({ LocalPool }) => {
      // Closed while the module loaded: start no thread that nothing would stop.
      if (this.closed) throw new NumgradError('OneOffGradients: closed');
      return new LocalPool({ threads: this.threads - 1, mnistDir: this.opts.mnistDir });
    });
    return this.pool;
  }

  /** Stops the worker threads, if any were started; safe to call twice. */
  async close(): Promise<void> {
    this.closed = true;
    // A pool that failed to start has no thread to stop (its gradient reported the failure).
    const pool = await this.pool?.catch(() => undefined);
    await pool?.close();
  }
}

/**
 * The units the threads ran, once the tasks that resolved have run `want` between them (tasks still
 * queued are not waited for), or once every task has resolved; a failed task rejects.
 */
function unitsRun(runs: Promise<number>[], want: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let ran = 0;
    let settled = 0;
    for (const r of runs) {
      r.then((n) => {
        ran += n;
        if (ran >= want || ++settled === runs.length) resolve(ran);
      }, reject);
    }
  });
}
