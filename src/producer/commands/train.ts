import type { Command } from 'commander';
import { trainConfig } from '../../core/training.js';
import { LocalPool } from '../../workers/pool.js';
import { choiceOption, floatOption, intOption } from '../options.js';
import type { Output } from '../output.js';
import { Progress } from '../progress.js';
import { trainLocal } from '../train-local.js';

const OP = 'numgrad train';

export interface TrainFlags {
  backend: string;
  threads?: string;
  iters: string;
  batch: string;
  lr: string;
  hidden: string;
  seed: string;
  h: string;
  evalEvery: string;
  out: string;
  json?: boolean;
}

export function trainFlagsToConfig(flags: TrainFlags) {
  return trainConfig({
    iters: intOption(OP, '--iters', flags.iters, 1, 10_000_000),
    batch: intOption(OP, '--batch', flags.batch, 1, 60_000),
    lr: floatOption(OP, '--lr', flags.lr, { gt: 0 }),
    hidden: intOption(OP, '--hidden', flags.hidden, 1, 4096),
    seed: intOption(OP, '--seed', flags.seed, 0),
    h: floatOption(OP, '--h', flags.h, { gt: 0, max: 1 }),
    evalEvery: intOption(OP, '--eval-every', flags.evalEvery, 1),
  });
}

export function addTrainOptions(cmd: Command): Command {
  return cmd
    .option('--backend <b>', 'local (worker threads on this machine)', 'local')
    .option('--threads <N>', 'worker threads of the local backend (default: all cores)')
    .option('--iters <N>', 'iterations', '10000')
    .option('--batch <N>', 'mini-batch size', '100')
    .option('--lr <lr>', 'learning rate', '0.1')
    .option('--hidden <H>', 'hidden units', '50')
    .option('--seed <S>', 'seed of the initial net and of every mini-batch', '0')
    .option('--h <h>', 'central-difference step', '0.0001')
    .option('--eval-every <N>', 'iterations per epoch (train/test accuracy)', '600')
    .option('--out <dir>', 'folder for params.npy, metrics.jsonl, curves.svg', './out/train')
    .option('--json', 'print one JSON summary on the last line of stdout');
}

/** Runs the chapter-4 training on the local pool with progress, Ctrl-C handling and the output files. */
export async function runLocalTraining(flags: TrainFlags, out: Output, mnistDir: string | undefined): Promise<void> {
  const cfg = trainFlagsToConfig(flags);
  const threads = flags.threads === undefined ? undefined : intOption(OP, '--threads', flags.threads, 1, 256);
  const pool = new LocalPool({ threads, mnistDir });
  out.line(`train: backend local, ${pool.threads} thread(s); ${cfg.iters} iterations, batch ${cfg.batch}, lr ${cfg.lr}, H ${cfg.hidden}, seed ${cfg.seed}, h ${cfg.h}; output in ${flags.out}`);
  const progress = new Progress(cfg.iters);
  let stop = false;
  const onSignal = (): void => {
    if (stop) process.exit(130);
    stop = true;
    progress.note('stopping after the current iteration (Ctrl-C again to abort at once)…');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    let lastLoss = NaN;
    let lastTest = NaN;
    const r = await trainLocal({
      cfg,
      pool,
      out: flags.out,
      shouldStop: () => stop,
      onStep: (m) => {
        lastLoss = m.loss;
        if (m.testAcc !== undefined) {
          lastTest = m.testAcc;
          progress.note(`iter ${m.iter} loss ${m.loss.toFixed(4)} train_acc ${m.trainAcc?.toFixed(4)} test_acc ${m.testAcc.toFixed(4)} (${m.seconds?.toFixed(1)} s)`);
        }
        progress.update(m.iter + 1, `loss ${lastLoss.toFixed(4)} test_acc ${Number.isNaN(lastTest) ? '-' : lastTest.toFixed(4)}`);
      },
    });
    progress.end();
    const last = r.metrics.filter((m) => m.testAcc !== undefined).at(-1);
    out.line(`${r.stopped ? 'stopped' : 'done'}: ${r.steps} iterations in ${r.seconds.toFixed(1)} s; final test accuracy ${last?.testAcc ?? 'n/a'}; wrote ${r.files.join(', ')}`);
    if (flags.json) out.json({ command: 'train', backend: 'local', threads: pool.threads, steps: r.steps, stopped: r.stopped, seconds: r.seconds, trainAcc: last?.trainAcc ?? null, testAcc: last?.testAcc ?? null, files: r.files });
    if (r.stopped) process.exitCode = 130;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await pool.close();
  }
}

export function registerTrain(program: Command, out: Output, mnistDir: () => string | undefined): void {
  addTrainOptions(program.command('train').description('the chapter-4 training recipe with finite-difference gradients')).action(async (flags: TrainFlags) => {
    choiceOption(OP, '--backend', flags.backend, ['local'] as const);
    await runLocalTraining(flags, out, mnistDir());
  });
}
