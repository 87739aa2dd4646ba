import { ValidationError } from '../core/errors.js';
import { TRAIN_DEFAULTS, trainConfig } from '../core/training.js';
import type { RunSummary } from './store.js';

/**
 * A run whose summary hash cannot be read as a run (a crash half-way through an older createRun, a
 * hand edit, a key of another type): listed as `corrupt` with what is wrong, so one bad hash does not
 * hide the other runs or turn a listing into an error. `numgrad runs rm` removes it.
 */
export interface CorruptRun {
  readonly id: string;
  readonly state: 'corrupt';
  /** What is wrong, e.g. `run R: field step must be an integer ≥ 0 (it is missing)`. */
  readonly problem: string;
}

/** An entry of a listing: a run, or a hash that should be one and is not. */
export type ListedRun = RunSummary | CorruptRun;

export const RUN_STATES: readonly RunSummary['state'][] = ['running', 'done', 'cancelled', 'failed'];

/**
 * A run's summary hash, checked field by field; the first problem is a ValidationError naming the
 * run and the field (`run R: field config must be JSON of the run's settings, got "{"`).
 */
export function parseRunHash(id: string, h: Record<string, string>): RunSummary {
  const op = `run ${id}`;
  const need = (field: string): string => {
    const v = h[field];
    if (v === undefined) throw new ValidationError(op, `field ${field}`, 'present (the hash lacks it)');
    return v;
  };
  const int = (field: string, min: number): number => {
    const text = need(field);
    const v = Number(text);
    if (text === '' || !Number.isSafeInteger(v) || v < min) throw new ValidationError(op, `field ${field}`, `an integer ≥ ${min}`, text);
    return v;
  };
  const time = (field: string): number => {
    const text = need(field);
    const v = Number(text);
    if (text === '' || !Number.isFinite(v)) throw new ValidationError(op, `field ${field}`, 'a time in ms since 1970', text);
    return v;
  };
  const optNum = (field: string): number | null => {
    const text = h[field];
    if (text === undefined || text === '') return null;
    const v = Number(text);
    if (Number.isNaN(v) && text !== 'NaN') throw new ValidationError(op, `field ${field}`, 'a number', text);
    return v;
  };
  if (need('id') !== id) throw new ValidationError(op, 'field id', `"${id}" (the run's key)`, h.id);
  const state = need('state');
  if (!(RUN_STATES as readonly string[]).includes(state)) throw new ValidationError(op, 'field state', `one of ${RUN_STATES.join(', ')}`, state);
  const step = int('step', 0);
  const iters = int('iters', 1);
  if (step > iters) throw new ValidationError(op, 'field step', `≤ iters (${iters})`, step);
  let config: RunSummary['config'];
  const text = need('config');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new ValidationError(op, 'field config', "JSON of the run's settings", text);
  }
  const badConfig = (why: string): ValidationError => new ValidationError(op, 'field config', "JSON of the run's settings", why);
  try {
    if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw badConfig('not an object');
    const absent = Object.keys(TRAIN_DEFAULTS).find((k) => typeof raw[k] !== 'number');
    if (absent !== undefined) throw badConfig(`${absent} is not a number`);
    const shards = raw.shards;
    if (!Number.isSafeInteger(shards) || (shards as number) < 1) throw badConfig(`shards ${JSON.stringify(shards)}`);
    config = { ...trainConfig(raw), shards: shards as number };
  } catch (err) {
    if (err instanceof ValidationError && err.op === op) throw err;
    throw new ValidationError(op, 'field config', "JSON of the run's settings", err instanceof Error ? err.message : String(err));
  }
  if (config.iters !== iters) throw new ValidationError(op, 'field iters', `${config.iters} (config.iters)`, iters);
  const params = h.params ?? '';
  if (params !== '' && !/^[0-9a-f]{64}$/.test(params)) throw new ValidationError(op, 'field params', 'a params version (64 lowercase hex digits)', params);
  if (state === 'running' && params === '') throw new ValidationError(op, 'field params', 'present while the run is running (the hash lacks it)');
  return {
    id,
    state: state as RunSummary['state'],
    step,
    iters,
    config,
    params,
    loss: optNum('loss'),
    trainAcc: optNum('trainAcc'),
    testAcc: optNum('testAcc'),
    createdAt: time('createdAt'),
    updatedAt: time('updatedAt'),
    error: h.error,
  };
}

/** The listing entry of one run's hash: the run, or `corrupt` with the parser's message. */
export function listedRun(id: string, h: Record<string, string>): ListedRun {
  try {
    return parseRunHash(id, h);
  } catch (err) {
    if (err instanceof ValidationError) return { id, state: 'corrupt', problem: err.message };
    throw err;
  }
}
