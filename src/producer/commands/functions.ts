/**
 * `numgrad diff` and `numgrad map`: derivatives (or values) of a registered function at one point
 * or k points of a .npy file, on local threads or through the queue (functions-run.ts, loaded when
 * one of them runs).
 */
import type { Command } from 'commander';
import type { Config } from '../../io/config.js';
import { OPTIONS } from '../cli-options.js';
import type { Output } from '../output.js';
import type { FnFlags } from './functions-run.js';

function common(cmd: Command): Command {
  return cmd
    .requiredOption('--function <name>', 'a registered function: function_1, function_2, rosenbrock, mnist-loss, or one of --functions')
    .requiredOption('--x <file>', 'the point (.npy, float64, n) or k points (k × n)')
    .option('--args <json>', 'a small JSON object passed to the function as its second argument')
    .option('--out <file>', 'write the result as a float64 .npy')
    .addOption(OPTIONS.backend('auto (queue when Redis answers, else local), local (worker threads), queue (BullMQ workers)'))
    .addOption(OPTIONS.threads('threads of the local backend or of an in-process worker (default: all cores)'))
    .addOption(OPTIONS.concurrency())
    .addOption(OPTIONS.timeout())
    .addOption(OPTIONS.shards('through the queue: shards per point (diff) or in all (map)'))
    .addOption(OPTIONS.functions('folder of function modules for the local backend (default: NUMGRAD_FUNCTIONS)'))
    .addOption(OPTIONS.json());
}

export function registerFunctions(program: Command, out: Output, config: () => Config): void {
  common(program.command('diff').description('numerical gradients or Jacobians of a registered function at one or k points'))
    .addOption(OPTIONS.method())
    .addOption(OPTIONS.h('central: the step (default 1e-4)', null))
    .addOption(OPTIONS.relStep())
    .addOption(OPTIONS.absStep())
    .option('--lower <b>', '2-point/3-point: lower bound, a number or a .npy of n values')
    .option('--upper <b>', '2-point/3-point: upper bound, a number or a .npy of n values')
    .action(async (flags: FnFlags) => (await import('./functions-run.js')).run('diff', flags, out, config));
  common(program.command('map').description('the values of a registered function at k points (sharded over points)')).action(async (flags: FnFlags) => (await import('./functions-run.js')).run('map', flags, out, config));
}
