/** What every bench script does at its edges: parse its flags, and run when it is the entry point. */
import { resolve } from 'node:path';
import { type Command, CommanderError } from 'commander';
import { NumgradError } from '../src/core/errors.js';

/** Parses `argv` (flags only); a usage error or --help gives the exit code instead of exiting. */
export function parseFlags(program: Command, argv: string[]): number | undefined {
  try {
    program.exitOverride().parse(argv, { from: 'user' });
    return undefined;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
}

/**
 * Runs `main` with the process's arguments when `moduleUrl` is the entry point. A bad flag value
 * (a NumgradError: it names the flag) prints its message and exits 2; anything else exits 1 with
 * its stack, under `name`.
 */
export function runIfEntry(moduleUrl: string, name: string, main: (argv: string[]) => Promise<number>): void {
  const entry = process.argv[1];
  if (entry === undefined || moduleUrl !== new URL(`file://${resolve(entry)}`).href) return;
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      if (err instanceof NumgradError) {
        console.error(err.message);
        process.exitCode = 2;
        return;
      }
      console.error(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      process.exitCode = 1;
    },
  );
}
