import { availableParallelism } from 'node:os';
import { Piscina } from 'piscina';
import { DEFAULT_FN_TIMEOUT_MS } from '../../core/contract-functions.js';
import { FunctionError, NumgradError, ValidationError } from '../../core/errors.js';
import { type DiffPlan, combine, evaluationsFor, needsF0 } from '../../core/numdiff.js';
import { loadMnist } from '../../io/mnist.js';
import { compiledSibling } from '../../io/compiled-path.js';
import { type RegisteredFn, loadRegistry, lookup } from './function-registry.js';
import { type FnTask, decodeFnResult, describeEval } from './function-task-types.js';

export interface FunctionPoolOptions {
  /** Threads evaluating functions. Default: the machine's available parallelism. */
  readonly threads?: number;
  /** Folder of function modules (--functions, NUMGRAD_FUNCTIONS). Default: built-ins only. */
  readonly functionsDir?: string;
  /** MNIST folder, for mnist-loss. */
  readonly mnistDir?: string;
  /** Evaluations in flight on the whole pool (async functions overlap). Default: threads. */
  readonly concurrency?: number;
}

/** One evaluation request: a function by name with its args and per-evaluation timeout. */
export interface FnCall {
  readonly fn: string;
  readonly args?: Record<string, unknown>;
  readonly timeoutMs?: number;
}

/** Values of a list of evaluations: E·m values, and the shape f returned. */
export interface FnValues {
  readonly values: Float64Array;
  readonly m: number;
  readonly scalar: boolean;
}

/**
 * Registered functions on piscina threads of their own (created on first use). A thread whose
 * evaluation outlives its timeout with its event loop blocked (a synchronous hang) cannot stop
 * itself: a watchdog here reads the shared clock of each task and aborts it, which ends that
 * thread (piscina starts another). A crash of a thread fails its task the same way; either
 * failure names the function, the point and the coordinate, and the pool carries on.
 */
export class FunctionPool {
  readonly threads: number;
  readonly inflight: number;
  private pool: Piscina | undefined;
  private registry: Promise<Map<string, RegisteredFn>> | undefined;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: FunctionPoolOptions = {}) {
    const threads = opts.threads ?? Math.max(1, availableParallelism());
    if (!Number.isInteger(threads) || threads < 1 || threads > 256) throw new ValidationError('FunctionPool', 'threads', 'an integer in [1, 256]', threads);
    const c = opts.concurrency ?? threads;
    if (!Number.isInteger(c) || c < 1 || c > 4096) throw new ValidationError('FunctionPool', 'concurrency', 'an integer in [1, 4096]', c);
    this.threads = threads;
    // In flight per thread: a thread runs one task at a time, so the pool never exceeds `concurrency`.
    this.inflight = Math.max(1, Math.floor(c / threads));
  }

  private piscina(): Piscina {
    if (this.closing !== undefined) throw new NumgradError('FunctionPool: closed');
    this.pool ??= new Piscina({ filename: compiledSibling(import.meta.url, 'function-tasks.js'), minThreads: this.threads, maxThreads: this.threads, idleTimeout: 60_000 });
    return this.pool;
  }

  /** The registry as this process sees it (for names and errors before any thread runs). */
  names(): Promise<string[]> {
    return this.reg().then((r) => [...r.keys()].sort());
  }

  private reg(): Promise<Map<string, RegisteredFn>> {
    this.registry ??= loadRegistry(this.opts.functionsDir, () => loadMnist('train', this.opts.mnistDir));
    return this.registry;
  }

  /** Fails at once, listing the names this pool has, when `fn` is not one of them. */
  async check(fn: string, op: string, field?: string): Promise<void> {
    lookup(await this.reg(), fn, op, field);
  }

  /** Evaluates a list of points on one thread (see FnTask); failures are FunctionErrors naming the evaluation. */
  async evaluate(call: FnCall, n: number, base: Float64Array, row: Int32Array, coords: Int32Array, values: Float64Array, label: Int32Array, shape?: { m: number; scalar: boolean }): Promise<FnValues> {
    await this.check(call.fn, 'function');
    const timeoutMs = call.timeoutMs ?? DEFAULT_FN_TIMEOUT_MS;
    const inflight = Math.min(this.inflight, Math.max(1, coords.length));
    const clock = new Float64Array(new SharedArrayBuffer(16 * inflight));
    const train = call.fn === 'mnist-loss' ? loadMnist('train', this.opts.mnistDir) : undefined;
    const task: FnTask = {
      fn: call.fn, dir: this.opts.functionsDir, args: call.args, n, base, row, coords, values, label, inflight, timeoutMs, clock,
      ...(train ? { train: { pixels: train.pixels, labels: train.labels } } : {}),
      ...(shape ? { m: shape.m, scalar: shape.scalar } : {}),
    };
    const abort = new AbortController();
    let hung: string | undefined;
    // A thread's own timer ends an async evaluation at timeoutMs; this catches a blocked thread.
    const grace = Math.min(1_000, timeoutMs);
    const watchdog = setInterval(() => {
      for (let s = 0; s < inflight; s++) {
        if (clock[2 * s] > 0 && Date.now() - clock[2 * s] > timeoutMs + grace) {
          hung = `${describeEval(task, clock[2 * s + 1])}: did not return within ${timeoutMs} ms (its thread was stopped)`;
          abort.abort(hung);
          return;
        }
      }
    }, Math.max(20, Math.min(250, timeoutMs / 4)));
    try {
      const r = decodeFnResult((await this.piscina().run(task, { name: 'fnEval', signal: abort.signal })) as Float64Array);
      return { values: r.values, m: r.m, scalar: r.scalar };
    } catch (err) {
      if (hung !== undefined) throw new FunctionError(hung);
      const msg = err instanceof Error ? err.message : String(err);
      if (msg.startsWith('function "')) throw new FunctionError(msg);
      // The thread died (process.exit, an uncaught error outside the evaluation, out of memory):
      // the slots still hold what it was evaluating.
      for (let s = 0; s < inflight; s++) if (clock[2 * s] > 0) throw new FunctionError(`${describeEval(task, clock[2 * s + 1])}: crashed its thread (${msg})`);
      throw new FunctionError(`function "${call.fn}" at point ${label[0] ?? 0}: its thread failed (${msg})`);
    } finally {
      clearInterval(watchdog);
    }
  }

  /**
   * Rows [start, end) of Jᵀ at one point (plan.x0), with f(x0) computed here when the method needs
   * it and `f0` is not given. The values depend only on f's values, never on how the coordinates
   * are split.
   */
  async diffRange(call: FnCall, plan: DiffPlan, point: number, start: number, end: number, f0?: FnValues): Promise<FnValues> {
    const { coords, values } = evaluationsFor(plan, start, end);
    const hasF0 = needsF0(plan, start, end);
    const skip = hasF0 && f0 !== undefined ? 1 : 0;
    const E = coords.length - skip;
    const n = plan.x0.length;
    const r = await this.evaluate(call, n, plan.x0, new Int32Array(E), coords.subarray(skip), values.subarray(skip), new Int32Array(E).fill(point), f0);
    let evals = r.values;
    if (skip) {
      evals = new Float64Array((E + 1) * r.m);
      evals.set(f0?.values ?? [], 0);
      evals.set(r.values, r.m);
    }
    return { values: combine(plan, start, end, evals, r.m), m: r.m, scalar: r.scalar };
  }

  /** Stops every thread; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= this.pool?.destroy() ?? Promise.resolve();
    return this.closing;
  }
}
