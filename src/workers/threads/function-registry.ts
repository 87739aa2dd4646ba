/**
 * The functions a worker can evaluate, by name: the built-ins (function_1, function_2, rosenbrock,
 * mnist-loss) and the ES modules of a folder (`numgrad worker --functions DIR`, NUMGRAD_FUNCTIONS).
 * A module exports `name` and `f(x, args)` (or a default export `{ name, f }`); f returns a number
 * (a gradient), a vector (a Jacobian) or a promise of either. Jobs name functions; code never
 * travels in a job.
 */
import { readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FnName } from '../../core/contract-functions.js';
import { type Dataset, gatherBatch } from '../../core/dataset.js';
import { ValidationError } from '../../core/errors.js';
import { PURE_BUILTINS } from '../../core/functions.js';
import { loss } from '../../core/network.js';
import { miniBatchIndices } from '../../core/prng.js';

export type FnValue = number | Float64Array | ArrayLike<number>;
export type RegisteredFn = (x: Float64Array, args?: Record<string, unknown>) => FnValue | Promise<FnValue>;

export const BUILTIN_NAMES = [...Object.keys(PURE_BUILTINS), 'mnist-loss'] as const;

/**
 * mnist-loss: the chapter-4 net's mean cross-entropy at parameters x (795·H + 10 values) on the batch
 * the job's args name: `{ "indices": [...] }` (training-set indices) or `{ "seed": S, "size": B,
 * "step": t }` (the seeded batch of step t, as training draws it). The textbook's path (full forward
 * passes), an oracle for the fast engine.
 */
function mnistLoss(train: () => Dataset): RegisteredFn {
  const batches = new Map<string, ReturnType<typeof gatherBatch>>();
  return (x, args = {}) => {
    const key = JSON.stringify(args);
    let batch = batches.get(key);
    if (batch === undefined) {
      const data = train();
      let idx: ArrayLike<number>;
      if (Array.isArray(args.indices)) {
        idx = args.indices as number[];
        for (const [k, v] of (args.indices as unknown[]).entries()) {
          if (!Number.isInteger(v) || (v as number) < 0 || (v as number) >= data.count) throw new ValidationError('mnist-loss', `args.indices[${k}]`, `an integer in [0, ${data.count})`, v);
        }
      } else if (Number.isInteger(args.seed) && Number.isInteger(args.size) && (args.size as number) >= 1 && (args.size as number) <= data.count) {
        idx = miniBatchIndices(args.seed as number, Number.isInteger(args.step) ? (args.step as number) : 0, args.size as number, data.count);
      } else {
        throw new ValidationError('mnist-loss', 'args', `{ "indices": [...] } or { "seed": S, "size": 1..${data.count}, "step"?: t }`, key);
      }
      batch = gatherBatch(data, idx);
      if (batches.size > 8) batches.clear();
      batches.set(key, batch);
    }
    if (x.length < 805 || (x.length - 10) % 795 !== 0) throw new ValidationError('mnist-loss', 'x', 'parameters of 795·H + 10 values', `${x.length} values`);
    return loss(x, batch);
  };
}

/** Built-ins plus the modules of `dir`; a bad module or a name given twice is an error naming the file. */
export async function loadRegistry(dir: string | undefined, train: () => Dataset): Promise<Map<string, RegisteredFn>> {
  const reg = new Map<string, RegisteredFn>(Object.entries(PURE_BUILTINS));
  reg.set('mnist-loss', mnistLoss(train));
  if (dir === undefined) return reg;
  const abs = resolve(dir);
  let files: string[];
  try {
    files = readdirSync(abs).filter((f) => /\.(mjs|js)$/.test(f)).sort();
  } catch (err) {
    throw new ValidationError('functions', '--functions / NUMGRAD_FUNCTIONS', 'a readable folder of ES modules', `${abs} (${(err as Error).message})`);
  }
  const from = new Map<string, string>();
  for (const file of files) {
    const path = join(abs, file);
    const mod = (await import(pathToFileURL(path).href)) as { name?: unknown; f?: unknown; default?: { name?: unknown; f?: unknown } };
    const name = mod.name ?? mod.default?.name;
    const f = mod.f ?? mod.default?.f;
    if (typeof name !== 'string' || !FnName.safeParse(name).success) throw new ValidationError('functions', `${path}: export name`, 'a function name (letters, digits, _ . -, 1–64 characters)', name);
    if (typeof f !== 'function') throw new ValidationError('functions', `${path}: export f`, 'a function f(x: Float64Array, args) => number | Float64Array | Promise<…>', typeof f);
    if (reg.has(name)) throw new ValidationError('functions', `${path}: export name`, `a name not taken already (by ${from.get(name) ?? 'a built-in'})`, name);
    reg.set(name, f as RegisteredFn);
    from.set(name, path);
  }
  return reg;
}

/** The registered function `name`, or an error listing the names this worker has. */
export function lookup(reg: Map<string, RegisteredFn>, name: string, op: string, field = 'data.fn'): RegisteredFn {
  const f = reg.get(name);
  if (f === undefined) throw new ValidationError(op, field, `one of the functions this worker has: ${[...reg.keys()].sort().join(', ')}`, name);
  return f;
}
