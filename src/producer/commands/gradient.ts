import { availableParallelism } from 'node:os';
import type { Command } from 'commander';
import { fdGradient } from '../../core/fd-engine.js';
import { coordName } from '../../core/layout.js';
import { analyticGradient, loss } from '../../core/network.js';
import { ValidationError } from '../../core/errors.js';
import type { Batch } from '../../core/dataset.js';
import { miniBatchIndices } from '../../core/prng.js';
import { openMnistRows } from '../../io/mnist.js';
import { writeNpyFile } from '../../io/npy-file.js';
import { checkMnistDir, indicesOption, netOf } from '../input-files.js';
import { checkOutput, npyBytes } from '../../io/out-dir.js';
import { type OneOffResult, OneOffGradients, START_THREADS_AFTER_MS } from '../../workers/threads/one-off-gradient.js';
import { OPTIONS, addNetOptions } from '../cli-options.js';
import type { Output } from '../output.js';
import type { Config } from '../../io/config.js';
import { resolveBackend } from '../backend.js';

const OP = 'numgrad gradient';
/** What the JSON's two times measure (it says so itself). */
const TIMING = {
  seconds: 'compute: the gradient alone, from its plan (forward pass at θ) to the last coordinate, on started threads',
  wallSeconds: 'wall: from the start of this process (module loading, inputs, thread start-up, JIT warm-up included) to the written .npy (or the gradient, without --out)',
};

export interface GradientFlags {
  params?: string;
  indices?: string;
  hidden: number;
  seed: number;
  batch: number;
  h: number;
  out?: string;
  check?: boolean;
  json?: boolean;
  backend: 'auto' | 'inline' | 'local' | 'queue';
  threads?: number;
  shards: number;
}

/**
 * Params from --params, else the seeded initial net (--hidden, --seed); the batch from --indices, else
 * seeded. The batch's images are read on first use (`batch()`): a queued gradient needs only the
 * indices, unless --check asks for the exact gradient here.
 */
export function resolveInputs(op: string, flags: { params?: string; indices?: string; hidden: number; seed: number; batch: number }, mnistDir?: string): { params: Float64Array; indices: Int32Array; batch: () => Batch } {
  // Files are checked at the edge (input-files.ts), so a bad one is reported against this command and
  // its option (`numgrad gradient: --params P.npy must be ...`), not against the core function that would trip on it.
  const params = netOf(op, flags);
  checkMnistDir(op, mnistDir);
  // Only the batch's images are read (openMnistRows), not the 47 MB training set.
  const train = openMnistRows('train', mnistDir);
  // --batch was checked against MNIST's 60000; a training set in --mnist-dir may hold fewer.
  if (flags.indices === undefined && flags.batch > train.count) throw new ValidationError(op, '--batch', `an integer in [1, ${train.count}]`, String(flags.batch));
  const indices = flags.indices !== undefined ? indicesOption(op, flags.indices, train.count) : miniBatchIndices(flags.seed, 0, flags.batch, train.count);
  let batch: Batch | undefined;
  return { params, indices, batch: () => (batch ??= train.gather(op, indices, flags.indices !== undefined ? '--indices' : 'indices')) };
}

export function registerGradient(program: Command, out: Output, config: () => Config): void {
  const mnistDir = (): string | undefined => config().mnistDir;
  addNetOptions(
    program.command('gradient').description('the full gradient of the chapter-4 net by central differences, one coordinate at a time'),
    'parameters (.npy, float64, length 795·H+10); default: the seeded initial net',
    'seed of the initial net and of the batch',
  )
    .option('--indices <file>', 'training-set indices of the batch (.npy, int32/int64)')
    .addOption(OPTIONS.batch('size of the seeded batch'))
    .addOption(OPTIONS.h())
    .option('--out <file>', 'write the gradient as a float64 .npy')
    .option('--check', 'also compute the exact (backprop) gradient and report the max relative error')
    .addOption(OPTIONS.json())
    .addOption(OPTIONS.backend('auto (queue when Redis answers, else local), local (worker threads), queue (BullMQ workers), inline (this thread)', ['auto', 'inline', 'local', 'queue']))
    .addOption(OPTIONS.threads())
    .addOption(OPTIONS.shards('shards per gradient through the queue'))
    .action(async (flags: GradientFlags) => {
      // The local backend's threads (this process's main thread first, worker threads if the work is
      // long enough to pay for them: none start unless a local gradient asks), stopped after the
      // output is written.
      const local = new OneOffGradients({ threads: flags.threads ?? availableParallelism(), mnistDir: mnistDir() });
      try {
        await gradientCommand(flags, local, out, config);
      } finally {
        await local.close();
      }
    });
}

/** `local`: the threads of --backend local or of auto resolved to it (closed by the caller). */
async function gradientCommand(flags: GradientFlags, local: OneOffGradients, out: Output, config: () => Config): Promise<void> {
  const { h, backend: choice, threads, shards } = flags;
  const { params, batch, indices } = resolveInputs(OP, flags, config().mnistDir);
  if (flags.out !== undefined) checkOutput({ op: OP, option: '--out', path: flags.out, kind: 'file', bytes: 2 * npyBytes(params.length) });
  let g: Float64Array;
  let seconds: number;
  let L: number | undefined;
  let where = 'inline, 1 thread';
  let backend: string = choice;
  /** Who ran the units of a local gradient (the JSON's `threads`). */
  let split: { units: number; mainThreadUnits: number; threadsStartedAt: number | null } | null = null;
  const resolved = choice === 'inline' || choice === 'local' ? undefined : await resolveBackend(choice, threads === undefined ? config() : { ...config(), threads }, out);
  if (choice === 'inline') {
    const t0 = performance.now();
    g = fdGradient(params, batch(), h);
    seconds = (performance.now() - t0) / 1000;
  } else if (resolved?.kind === 'queue') {
    backend = 'queue';
    try {
      // The reducer's result carries the batch loss (from the shard at coordinate 0): not recomputed here.
      ({ gradient: g, seconds, loss: L } = await resolved.client.gradient(params, Int32Array.from(indices), h, shards));
      where = `queue, ${shards} shards`;
    } finally {
      await resolved.close();
    }
  } else {
    backend = 'local';
    // The loss comes from the plan's forward pass: bitwise loss(params, batch) (planLoss).
    const r = await local.gradient(params, batch(), h);
    ({ gradient: g, seconds, loss: L } = r);
    split = { units: r.units, mainThreadUnits: r.callerUnits, threadsStartedAt: r.threadsStartedAt };
    where = localWhere(local.threads, r);
  }
  L ??= loss(params, batch());
  const H = (params.length - 10) / 795;
  if (flags.out !== undefined) writeNpyFile(flags.out, g);
  // Wall time from the process's start (performance's time origin) to the written .npy.
  const wallSeconds = performance.now() / 1000;
  const until = flags.out !== undefined ? 'the written .npy' : 'the gradient';
  out.line(`gradient: ${g.length} coordinates (784-${H}-10 net), batch ${indices.length}, h ${h}, ${where}: ${seconds.toFixed(3)} s compute, ${wallSeconds.toFixed(3)} s wall (process start to ${until}), loss ${L}`);
  if (flags.out !== undefined) out.line(`wrote ${flags.out}`);
  let check: { maxRelErr: number; worst: string; worstIndex: number; analyticSeconds: number } | undefined;
  if (flags.check) {
    const t1 = performance.now();
    const exact = analyticGradient(params, batch());
    const analyticSeconds = (performance.now() - t1) / 1000;
    let num = 0;
    let den = 0;
    let worstIndex = 0;
    for (let c = 0; c < g.length; c++) {
      const e = Math.abs(g[c] - exact[c]);
      if (e > num) {
        num = e;
        worstIndex = c;
      }
      den = Math.max(den, Math.abs(exact[c]));
    }
    check = { maxRelErr: num / Math.max(den, 1e-300), worst: coordName(worstIndex, H), worstIndex, analyticSeconds };
    out.line(`check: max|g − g_exact| / max|g_exact| = ${check.maxRelErr.toExponential(3)} (worst ${check.worst}); analytic ${analyticSeconds.toFixed(4)} s`);
  }
  if (flags.json) {
    out.json({
      command: 'gradient', backend, coordinates: g.length, hidden: H, batch: indices.length, h,
      seconds, wallSeconds, timing: TIMING, loss: L, threads: split, out: flags.out ?? null, check: check ?? null,
    });
  }
}

/** The local backend's threads, said as it happened: who ran the units, and whether worker threads started. */
function localWhere(threads: number, r: OneOffResult): string {
  if (threads === 1) return 'local, 1 thread (this process\'s main thread)';
  const workers = `${threads - 1} worker thread${threads > 2 ? 's' : ''}`;
  if (r.threadsStartedAt === null) {
    return `local, ${threads} threads asked (this process's main thread ran all ${r.units} units in ${r.seconds.toFixed(3)} s; worker threads start only for work left after ${START_THREADS_AFTER_MS} ms)`;
  }
  const started = `started at ${r.threadsStartedAt.toFixed(3)} s`;
  return r.callerUnits < r.units
    ? `local, ${threads} threads (this process's main thread and ${workers}, ${started}; the main thread ran ${r.callerUnits} of ${r.units} units)`
    : `local, ${threads} threads asked (${workers} ${started} found no unit left: the main thread ran all ${r.units} units)`;
}
