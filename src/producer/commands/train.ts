import type { Command } from 'commander';
import { type StepMetrics, type TrainConfig, trainConfig } from '../../core/training.js';
import { NumgradError, ValidationError } from '../../core/errors.js';
import type { Config } from '../../io/config.js';
import { checkOutput, runOutputBytes } from '../../io/out-dir.js';
import { type BackendChoice, resolveBackend } from '../backend.js';
import { OPTIONS, RECIPE } from '../cli-options.js';
import type { Output } from '../output.js';
import type { Progress } from '../progress.js';
import type { QueueClient } from '../queue-client.js';
import { checkMnistDir } from '../input-files.js';

const OP = 'numgrad train';

/** A training as its command's options gave it: parsed, checked, the recipe filled in. */
export interface TrainRequest {
  readonly backend: BackendChoice;
  readonly cfg: TrainConfig;
  /** Gradient shards per step through the queue. */
  readonly shards: number;
  /** Folder for params.npy, metrics.jsonl, curves.svg. */
  readonly out: string;
  readonly json?: boolean;
  /** Queue: submit the run and return (it advances on the workers). */
  readonly detach?: boolean;
  readonly runId?: string;
}

interface TrainFlags extends Omit<TrainRequest, 'cfg'> {
  readonly threads?: number;
  readonly iters: number;
  readonly batch: number;
  readonly lr: number;
  readonly hidden: number;
  readonly seed: number;
  readonly h: number;
  readonly evalEvery: number;
}

function addTrainOptions(cmd: Command): Command {
  return cmd
    .addOption(OPTIONS.backend('auto (queue when Redis answers, else local), local (worker threads here), queue (BullMQ workers)'))
    .addOption(OPTIONS.threads())
    .addOption(OPTIONS.iters())
    .addOption(OPTIONS.batch())
    .addOption(OPTIONS.lr())
    .addOption(OPTIONS.hidden())
    .addOption(OPTIONS.seed('seed of the initial net and of every mini-batch'))
    .addOption(OPTIONS.h())
    .addOption(OPTIONS.evalEvery())
    .option('--out <dir>', 'folder for params.npy, metrics.jsonl, curves.svg', RECIPE.out)
    .addOption(OPTIONS.shards('gradient shards per step through the queue'))
    .option('--run-id <id>', 'id of the run in Redis (default: random)')
    .option('--detach', 'queue: submit the run, print its id and exit (it advances on the workers)')
    .addOption(OPTIONS.json('print one JSON summary on the last line of stdout'));
}

/** Installs Ctrl-C/SIGTERM handling: the first asks to stop, the second aborts. */
function stopSignal(progress: Progress, what: string): { stop: () => boolean; dispose: () => void } {
  let stop = false;
  const onSignal = (): void => {
    if (stop) process.exit(130);
    stop = true;
    progress.note(`stopping ${what} (Ctrl-C again to abort at once)…`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return {
    stop: () => stop,
    dispose: () => {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    },
  };
}

function epochLine(m: StepMetrics): string {
  return `iter ${m.iter} loss ${m.loss.toFixed(4)} train_acc ${m.trainAcc?.toFixed(4)} test_acc ${m.testAcc?.toFixed(4)}${m.seconds !== undefined ? ` (${m.seconds.toFixed(1)} s)` : ''}`;
}

/** Runs the chapter-4 training on the local pool with progress, Ctrl-C handling and the output files. */
export async function runLocalTraining(req: TrainRequest, out: Output, config: Config, op = OP): Promise<void> {
  const { cfg } = req;
  checkMnistDir(op, config.mnistDir);
  // The thread runtime and the local loop load with the local backend only (the queue needs neither).
  const [{ LocalPool }, { trainLocal }, { Progress }] = await Promise.all([import('../../workers/threads/pool.js'), import('../train-local.js'), import('../progress.js')]);
  const pool = new LocalPool({ threads: config.threads, mnistDir: config.mnistDir });
  out.line(`train: backend local, ${pool.threads} thread(s); ${cfg.iters} iterations, batch ${cfg.batch}, lr ${cfg.lr}, H ${cfg.hidden}, seed ${cfg.seed}, h ${cfg.h}; output in ${req.out}`);
  const progress = new Progress(cfg.iters);
  const signal = stopSignal(progress, 'after the current iteration');
  try {
    let lastTest = NaN;
    const r = await trainLocal({
      cfg,
      pool,
      out: req.out,
      shouldStop: signal.stop,
      onStep: (m) => {
        if (m.testAcc !== undefined) {
          lastTest = m.testAcc;
          progress.note(epochLine(m));
        }
        progress.update(m.iter + 1, `loss ${m.loss.toFixed(4)} test_acc ${Number.isNaN(lastTest) ? '-' : lastTest.toFixed(4)}`);
      },
    });
    progress.end();
    const last = r.metrics.filter((m) => m.testAcc !== undefined).at(-1);
    out.line(`${r.stopped ? 'stopped' : 'done'}: ${r.steps} iterations in ${r.seconds.toFixed(1)} s; final test accuracy ${last?.testAcc ?? 'n/a'}; wrote ${r.files.join(', ')}`);
    if (req.json) out.json({ command: 'train', backend: 'local', threads: pool.threads, steps: r.steps, stopped: r.stopped, seconds: r.seconds, trainAcc: last?.trainAcc ?? null, testAcc: last?.testAcc ?? null, files: r.files });
    if (r.stopped) process.exitCode = 130;
  } finally {
    signal.dispose();
    await pool.close();
  }
}

/**
 * Follows a run in Redis with a progress bar until it ends (or Ctrl-C, which leaves the run going),
 * then writes the same files as the local backend.
 */
export async function followRun(client: QueueClient, id: string, outDir: string | undefined, out: Output, json = false, op = 'numgrad follow'): Promise<void> {
  const t0 = performance.now();
  const first = await client.run(id);
  if (outDir !== undefined) checkOutput({ op, option: '--out', path: outDir, kind: 'folder', bytes: runOutputBytes(first.iters, first.config.hidden) });
  // The progress line and the output files load with a training only (a one-off command needs neither).
  const [{ Progress }, { RunOutput }] = await Promise.all([import('../progress.js'), import('../run-output.js')]);
  const progress = new Progress(first.iters);
  progress.from(first.step); // steps done before we watched are not part of the rate
  const signal = stopSignal(progress, 'following (the run goes on in Redis)');
  let lastLoss = NaN;
  try {
    const run = await client.follow(
      id,
      (m, r) => {
        lastLoss = m.loss;
        progress.update(m.iter + 1, `loss ${lastLoss.toFixed(4)} test_acc ${r.testAcc === null ? '-' : r.testAcc.toFixed(4)}`);
      },
      200,
      signal.stop,
    );
    progress.end();
    const metrics = await client.runMetrics(id);
    for (const m of metrics) if (m.testAcc !== undefined) out.line(epochLine(m));
    let files: string[] = [];
    if (outDir !== undefined) {
      const params = await client.runParams(id);
      if (params !== null) {
        const o = new RunOutput(outDir);
        for (const m of metrics) o.add(m);
        files = o.save(params, `numgrad run ${id}`);
      }
    }
    const last = metrics.filter((m) => m.testAcc !== undefined).at(-1);
    const seconds = (performance.now() - t0) / 1000;
    out.line(`run ${id}: ${run.state}${run.error ? ` (${run.error})` : ''}, ${run.step}/${run.iters} iterations; followed for ${seconds.toFixed(1)} s; final test accuracy ${last?.testAcc ?? 'n/a'}${files.length ? `; wrote ${files.join(', ')}` : ''}`);
    if (json) out.json({ command: 'train', backend: 'queue', run: id, state: run.state, steps: run.step, seconds, trainAcc: last?.trainAcc ?? null, testAcc: last?.testAcc ?? null, files });
    if (run.state === 'failed') process.exitCode = 1;
    else if (signal.stop() && run.state === 'running') process.exitCode = 130;
  } finally {
    signal.dispose();
  }
}

/** `alongside`: started once the queue backend is chosen (npm start's dashboard), closed at the end. */
export async function runTraining(req: TrainRequest, out: Output, config: Config, opts: { op?: string; inProcessWorker?: boolean; alongside?: (config: Config) => Promise<{ close(): Promise<void> }> } = {}): Promise<void> {
  const { backend: choice, cfg, shards } = req;
  const op = opts.op ?? OP;
  // Before anything is submitted or computed: a run that cannot be saved fails now, not at its end.
  if (!req.detach) checkOutput({ op, option: '--out', path: req.out, kind: 'folder', bytes: runOutputBytes(cfg.iters, cfg.hidden) });
  if (req.detach && choice === 'local') throw new ValidationError(op, '--detach', 'used with --backend queue or auto (it submits the run to Redis and exits)', '--backend local');
  // A detached run lives on the queue: auto then means the queue (no in-process worker that would
  // leave with this process), and a Redis that does not answer is the error, not a fall-back.
  const backend = await resolveBackend(req.detach ? 'queue' : choice, config, out, { inProcessWorker: opts.inProcessWorker && !req.detach }).catch((err: unknown) => {
    if (req.detach && err instanceof NumgradError) throw new NumgradError(`${op}: --detach needs the queue: ${err.message}`);
    throw err;
  });
  if (backend.kind === 'local') return runLocalTraining(req, out, config, op);
  const extra = opts.alongside === undefined || req.detach ? undefined : await opts.alongside(config);
  try {
    const id = await backend.client.startRun(cfg, shards, req.runId);
    out.line(`train: run ${id} submitted (${cfg.iters} iterations, batch ${cfg.batch}, lr ${cfg.lr}, H ${cfg.hidden}, seed ${cfg.seed}, h ${cfg.h}, ${shards} shards per step)`);
    if (req.detach) {
      if (req.json) out.json({ command: 'train', backend: 'queue', run: id, detached: true });
      return;
    }
    out.line(`train: following run ${id}; Ctrl-C stops following, the run goes on (\`numgrad follow ${id}\`)`);
    await followRun(backend.client, id, req.out, out, req.json, op);
  } finally {
    await extra?.close();
    await backend.close();
  }
}

export function registerTrain(program: Command, out: Output, config: () => Config): void {
  addTrainOptions(program.command('train').description('the chapter-4 training recipe with finite-difference gradients')).action(async (flags: TrainFlags) => {
    const { threads, iters, batch, lr, hidden, seed, h, evalEvery, ...req } = flags;
    await runTraining({ ...req, cfg: trainConfig({ iters, batch, lr, hidden, seed, h, evalEvery }) }, out, threads === undefined ? config() : { ...config(), threads });
  });
}
