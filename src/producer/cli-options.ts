import { type Command, Option } from 'commander';
import { DEFAULT_FN_TIMEOUT_MS, MAX_FN_TIMEOUT_MS } from '../core/function-limits.js';
import { DIFF_METHODS } from '../core/numdiff.js';
import { TRAIN_DEFAULTS } from '../core/training.js';
import { WORKER_DEFAULTS } from '../workers/worker-options.js';
import { choiceOption, floatOption, intOption } from './options.js';

/**
 * The book's chapter-4 recipe (core's TRAIN_DEFAULTS: 10000 iterations, batch 100, lr 0.1, H 50,
 * seed 0, h 1e-4, an epoch of 600) with where a run goes: the defaults of `numgrad train`, and
 * everything of `numgrad start` but its --iters and --out.
 */
export const RECIPE = { ...TRAIN_DEFAULTS, shards: 4, out: './out/train' } as const;

/**
 * A value is checked while commander reads argv, so a command's action gets numbers and choices,
 * never strings to parse again. The parser cannot know which command it serves: its ValidationError
 * names this placeholder operation, which errorLine replaces with the running command
 * (`numgrad gradient: --batch must be an integer in [1, 60000], got "0"`).
 */
const EDGE = 'option';

function parsed<T>(flags: string, description: string, parse: (flag: string, raw: string) => T, defaultValue?: T): Option {
  const o = new Option(flags, description);
  o.argParser((raw: string) => parse(o.long ?? flags, raw));
  return defaultValue === undefined ? o : o.default(defaultValue);
}

const int = (flags: string, description: string, min: number, max?: number, defaultValue?: number): Option =>
  parsed(flags, description, (f, raw) => intOption(EDGE, f, raw, min, max), defaultValue);

const float = (flags: string, description: string, check: { gt?: number; max?: number }, defaultValue?: number): Option =>
  parsed(flags, description, (f, raw) => floatOption(EDGE, f, raw, check), defaultValue);

const choice = <T extends string>(flags: string, description: string, choices: readonly T[], defaultValue?: T): Option =>
  parsed(flags, description, (f, raw) => choiceOption(EDGE, f, raw, choices), defaultValue);

const BACKENDS = ['auto', 'local', 'queue'] as const;
type BackendFlag = (typeof BACKENDS)[number] | 'inline';

/**
 * Every option a numgrad command takes, declared once: its flag, range and default. A command adds
 * the ones it takes (`cmd.addOption(OPTIONS.batch())`); the description may be said in the
 * command's words, the range and the default may not.
 */
export const OPTIONS = {
  backend: (description: string, choices: readonly BackendFlag[] = BACKENDS) => choice('--backend <b>', description, choices, 'auto'),
  threads: (description = 'worker threads of the local backend or of an in-process worker (default: all cores)') => int('--threads <N>', description, 1, 256),
  iters: () => int('--iters <N>', 'iterations', 1, 10_000_000, RECIPE.iters),
  batch: (description = 'mini-batch size') => int('--batch <N>', description, 1, RECIPE.trainSize, RECIPE.batch),
  lr: () => float('--lr <lr>', 'learning rate', { gt: 0 }, RECIPE.lr),
  hidden: (description = 'hidden units') => int('--hidden <H>', description, 1, 4096, RECIPE.hidden),
  seed: (description: string) => int('--seed <S>', description, 0, undefined, RECIPE.seed),
  /** The central-difference step; `numgrad diff` has none by default (its methods choose their own). */
  h: (description = 'central-difference step', defaultValue: number | null = RECIPE.h) => float('--h <h>', description, { gt: 0, max: 1 }, defaultValue ?? undefined),
  evalEvery: () => int('--eval-every <N>', 'iterations per epoch (train/test accuracy)', 1, 10_000_000, RECIPE.evalEvery),
  shards: (description: string) => int('--shards <N>', description, 1, 4096, RECIPE.shards),
  split: () => choice('--split <split>', 'train or test', ['train', 'test'] as const, 'test'),
  params: (description: string) => new Option('--params <file>', description),
  json: (description = 'print one JSON object on the last line of stdout') => new Option('--json', description),
  functions: (description: string) => new Option('--functions <dir>', description),
  // diff and map
  concurrency: () => int('--concurrency <N>', 'evaluations in flight on the local backend (async functions; default: threads)', 1, 4096),
  timeout: () => int('--timeout <ms>', 'per-evaluation timeout', 1, MAX_FN_TIMEOUT_MS, DEFAULT_FN_TIMEOUT_MS),
  method: () => choice('--method <m>', "central (the notebook's numerical_gradient), 2-point or 3-point (SciPy's approx_derivative)", DIFF_METHODS, 'central'),
  relStep: () => float('--rel-step <r>', "2-point/3-point: SciPy's rel_step", {}),
  absStep: () => float('--abs-step <a>', "2-point/3-point: SciPy's abs_step", {}),
  // worker
  workerConcurrency: () => int('--concurrency <N>', 'shard jobs in flight, and function evaluations in flight (default: 2 × threads)', 1, 1024),
  lockDuration: () => int('--lock-duration <ms>', 'BullMQ lock duration', 1000, undefined, WORKER_DEFAULTS.lockDuration),
  stalledInterval: () => int('--stalled-interval <ms>', 'BullMQ stalled-job check interval', 1000, undefined, WORKER_DEFAULTS.stalledInterval),
  /** Seconds: 0 hands active jobs back at once. */
  workerGrace: () =>
    parsed('--grace <seconds>', 'on SIGTERM/SIGINT, how long active jobs may finish before they are handed back to the queue', (f, raw) => (raw.trim() !== '' && Number(raw.trim()) === 0 ? 0 : floatOption(EDGE, f, raw, { gt: 0, max: 86_400 })), 30),
  // up and dashboard
  workers: () => int('--workers <N>', 'worker processes', 1, 256, 2),
  upGrace: () => int('--grace <s>', 'seconds a child may take to finish its active jobs after SIGTERM before SIGKILL', 0, undefined, 60),
  dashboardPort: () => int('--dashboard-port <port>', 'dashboard port', 1, 65_535, 3000),
  port: () => int('--port <N>', 'TCP port', 0, 65_535, 3000),
};

/** The net a command is of: --params, else the seeded initial net (--hidden, --seed); read by netOf. */
export function addNetOptions(cmd: Command, paramsDescription: string, seedDescription: string): Command {
  return cmd.addOption(OPTIONS.params(paramsDescription)).addOption(OPTIONS.hidden('hidden units of the seeded initial net')).addOption(OPTIONS.seed(seedDescription));
}
