/**
 * The piscina task file of registered functions: evaluate a list of points, up to `inflight` at
 * once (async functions overlap their waits; synchronous ones simply run one after another), and
 * return their values. Each slot writes the start time and the evaluation it runs into the shared
 * `clock`, so the main thread can stop a thread whose evaluation hangs it and say which one it was.
 */
import { Piscina } from 'piscina';
import type { Dataset } from '../../core/dataset.js';
import { FunctionError, NumgradError } from '../../core/errors.js';
import { type FnValue, type RegisteredFn, loadRegistry } from './function-registry.js';
import { type FnTask, describeEval, encodeFnResult } from './function-task-types.js';

let registry: { dir: string | undefined; reg: Promise<Map<string, RegisteredFn>> } | undefined;
let train: Dataset | undefined;

function registryFor(task: FnTask): Promise<Map<string, RegisteredFn>> {
  if (task.train !== undefined) train = { count: task.train.labels.length, pixels: task.train.pixels, labels: task.train.labels };
  if (registry === undefined || registry.dir !== task.dir) {
    registry = {
      dir: task.dir,
      reg: loadRegistry(task.dir, () => {
        if (train === undefined) throw new NumgradError('mnist-loss: the training set was not sent to this thread');
        return train;
      }),
    };
  }
  return registry.reg;
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new NumgradError(`did not return within ${ms} ms`)), ms);
  });
  return Promise.race([p, t]).finally(() => clearTimeout(timer));
}

export async function fnEval(task: FnTask): Promise<Float64Array> {
  const f = (await registryFor(task)).get(task.fn);
  if (f === undefined) throw new NumgradError(`function "${task.fn}" is not registered on this thread`);
  const E = task.coords.length;
  const n = task.n;
  let m = task.m ?? -1;
  let scalar = task.scalar ?? false;
  let out = m > 0 ? new Float64Array(E * m) : new Float64Array(0);
  let next = 0;
  let failed = false;
  const fail = (e: number, what: string): FunctionError => {
    failed = true;
    return new FunctionError(`${describeEval(task, e)}: ${what}`);
  };
  const store = (e: number, y: FnValue): void => {
    const isNum = typeof y === 'number';
    if (!isNum && (y === null || typeof y !== 'object' || typeof (y as ArrayLike<number>).length !== 'number')) throw fail(e, `returned ${y === null ? 'null' : typeof y}, not a number or a vector of numbers`);
    const len = isNum ? 1 : (y as ArrayLike<number>).length;
    if (len < 1) throw fail(e, 'returned an empty vector');
    if (m < 0) {
      m = len;
      scalar = isNum;
      out = new Float64Array(E * m);
    } else if (isNum !== scalar || len !== m) {
      throw fail(e, `returned ${isNum ? 'a number' : `a vector of ${len}`} where its other evaluations returned ${scalar ? 'a number' : `a vector of ${m}`}`);
    }
    if (isNum) out[e] = y;
    else out.set(y as ArrayLike<number>, e * m);
    for (let j = 0; j < m; j++) {
      const v = out[e * m + j];
      if (!Number.isFinite(v)) throw fail(e, `returned ${Number.isNaN(v) ? 'NaN' : v}${scalar ? '' : ` at output ${j}`}`);
    }
  };
  const slot = async (s: number): Promise<void> => {
    while (next < E && !failed) {
      const e = next++;
      const x = Float64Array.from(task.base.subarray(task.row[e] * n, (task.row[e] + 1) * n));
      if (task.coords[e] >= 0) x[task.coords[e]] = task.values[e];
      task.clock[2 * s + 1] = e;
      task.clock[2 * s] = Date.now();
      let y: FnValue;
      try {
        y = await withTimeout(Promise.resolve().then(() => f(x, task.args)), task.timeoutMs);
      } catch (err) {
        throw fail(e, err instanceof Error && err.message.startsWith('did not return within') ? err.message : `threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
      } finally {
        task.clock[2 * s] = 0;
      }
      store(e, y);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(task.inflight, E)) }, (_v, s) => slot(s)));
  return Piscina.move(encodeFnResult(out, m, scalar)) as unknown as Float64Array;
}
