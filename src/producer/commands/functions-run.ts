/**
 * What `numgrad diff` and `numgrad map` do once parsed (functions.ts registers them): read the
 * points, check them, run them on local threads or through the queue, write the result. Loaded on
 * the first use of either command, so the other commands start without it.
 */
import { FnArgs, MAX_FN_DIM, MAX_FN_POINTS, parsePayload } from '../../core/contract.js';
import { ValidationError } from '../../core/errors.js';
import { type DiffMethod, type DiffSpec, planDiff } from '../../core/numdiff.js';
import type { Config } from '../../io/config.js';
import { readNpyFile, writeNpyFile } from '../../io/npy-file.js';
import { diffBatch, mapBatch, type BatchResult } from '../../workers/threads/function-batch.js';
import { FunctionPool } from '../../workers/threads/function-pool.js';
import { type BackendChoice, resolveBackend } from '../backend.js';
import type { Output } from '../output.js';
import { Progress } from '../progress.js';

export interface FnFlags {
  function: string;
  x: string;
  args?: string;
  out?: string;
  backend: BackendChoice;
  threads?: number;
  concurrency?: number;
  timeout: number;
  shards: number;
  functions?: string;
  json?: boolean;
  method: DiffMethod;
  h?: number;
  relStep?: number;
  absStep?: number;
  lower?: string;
  upper?: string;
}

/** The points of --x: one point (n) or k points (k × n). */
function readPoints(op: string, path: string): { X: Float64Array; k: number; n: number; batched: boolean } {
  const a = readNpyFile(path);
  if (a.dtype !== 'float64') throw new ValidationError(op, '--x', 'a float64 .npy', a.dtype);
  if (a.shape.length !== 1 && a.shape.length !== 2) throw new ValidationError(op, '--x', 'one point (n) or k points (k × n)', `shape (${a.shape.join(', ')})`);
  const [k, n] = a.shape.length === 1 ? [1, a.shape[0]] : a.shape;
  if (n < 1 || n > MAX_FN_DIM) throw new ValidationError(op, '--x', `points of 1..${MAX_FN_DIM} coordinates`, n);
  if (k < 1 || k > MAX_FN_POINTS) throw new ValidationError(op, '--x', `1..${MAX_FN_POINTS} points`, k);
  return { X: a.data, k, n, batched: a.shape.length === 2 };
}

/** A bound: a number for every coordinate, or a .npy of n values. */
function readBound(op: string, name: string, raw: string | undefined, n: number): Float64Array | undefined {
  if (raw === undefined) return undefined;
  const v = Number(raw);
  if (raw.trim() !== '' && !Number.isNaN(v)) return new Float64Array(n).fill(v);
  const a = readNpyFile(raw);
  if (a.dtype !== 'float64' || a.data.length !== n) throw new ValidationError(op, name, `a number or a float64 .npy of ${n} values`, raw);
  return a.data as Float64Array;
}

function parseArgs(op: string, raw: string | undefined): Record<string, unknown> | undefined {
  if (raw === undefined) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch {
    throw new ValidationError(op, '--args', 'a JSON object', raw);
  }
  try {
    return parsePayload(FnArgs, op, v);
  } catch (err) {
    if (err instanceof ValidationError) throw new ValidationError(op, '--args', err.expected, err.got ?? raw);
    throw err;
  }
}

export async function run(kind: 'diff' | 'map', flags: FnFlags, out: Output, config: () => Config): Promise<void> {
  const op = `numgrad ${kind}`;
  const { backend: choice, threads, concurrency, timeout: timeoutMs, shards } = flags;
  const { X, k, n, batched } = readPoints(op, flags.x);
  const args = parseArgs(op, flags.args);
  const call = { fn: flags.function, args, timeoutMs };
  let spec: DiffSpec = { method: 'central' };
  if (kind === 'diff') {
    spec = {
      method: flags.method,
      ...(flags.h !== undefined ? { h: flags.h } : {}),
      ...(flags.relStep !== undefined ? { relStep: flags.relStep } : {}),
      ...(flags.absStep !== undefined ? { absStep: flags.absStep } : {}),
      lower: readBound(op, '--lower', flags.lower, n),
      upper: readBound(op, '--upper', flags.upper, n),
    };
    // Every point is checked here, before anything is submitted (steps, bounds, finite values).
    for (let p = 0; p < k; p++) {
      try {
        planDiff(X.subarray(p * n, (p + 1) * n), spec);
      } catch (err) {
        if (err instanceof ValidationError) throw new ValidationError(op, err.field.startsWith('x[') ? `--x (point ${p}) ${err.field}` : `--${err.field}`, err.expected, err.got);
        throw err;
      }
    }
  }
  const cfg = config();
  const functionsDir = flags.functions ?? cfg.functionsDir;
  const t0 = performance.now();
  let bar: Progress | undefined;
  const progress = (done: number, total: number): void => {
    // A bar only for long jobs: from the first second on.
    if (bar === undefined && performance.now() - t0 > 1_000 && done < total) bar = new Progress(total);
    bar?.update(done, kind === 'diff' ? 'shards' : 'point shards');
  };
  let r: BatchResult;
  let where: string;
  const backend = await resolveBackend(choice, { ...cfg, functionsDir, ...(threads !== undefined ? { threads } : {}) }, out);
  try {
    if (backend.kind === 'queue') {
      const { FunctionClient } = await import('../function-client.js');
      const client = new FunctionClient({ redisUrl: cfg.redisUrl, prefix: cfg.prefix });
      try {
        const s = kind === 'diff' ? await client.diff(call, X, k, n, spec, shards, progress) : await client.map(call, X, k, n, shards, progress);
        r = { values: s.values, m: s.result.m, scalar: s.result.scalar };
        where = `queue, ${kind === 'diff' ? `${Math.min(shards, n)} shard(s) per point` : `${shards} shard(s)`}`;
      } finally {
        await client.close();
      }
    } else {
      const pool = new FunctionPool({ threads, functionsDir, mnistDir: cfg.mnistDir, concurrency });
      try {
        await pool.check(call.fn, op, '--function');
        r = kind === 'diff' ? await diffBatch(pool, call, X, k, n, spec, progress) : await mapBatch(pool, call, X, k, n, progress);
        where = `local, ${pool.threads} thread(s), ${pool.inflight} in flight per thread`;
      } finally {
        await pool.close();
      }
    }
  } finally {
    bar?.end();
    await backend.close();
  }
  const seconds = (performance.now() - t0) / 1000;
  const inner = kind === 'diff' ? (r.scalar ? [n] : [r.m, n]) : r.scalar ? [] : [r.m];
  const shape = batched ? [k, ...inner] : inner.length ? inner : [1];
  out.line(`${kind}: ${flags.function} at ${k} point(s) of ${n} coordinate(s)${kind === 'diff' ? `, ${spec.method}` : ''}, ${where}: ${seconds.toFixed(3)} s, result (${shape.join(', ')})`);
  if (flags.out !== undefined) {
    writeNpyFile(flags.out, r.values, shape);
    out.line(`wrote ${flags.out}`);
  } else if (r.values.length <= 64) {
    out.line(JSON.stringify(Array.from(r.values)));
  }
  if (flags.json) out.json({ command: kind, function: flags.function, backend: backend.kind, k, n, m: r.m, scalar: r.scalar, shape, seconds, out: flags.out ?? null, ...(r.values.length <= 64 ? { values: Array.from(r.values) } : {}) });
}
