import { statSync } from 'node:fs';
import { join } from 'node:path';
import { checkIndices } from '../core/dataset.js';
import { FormatError, ValidationError } from '../core/errors.js';
import { hiddenFromLength } from '../core/layout.js';
import { MNIST_FILES } from '../io/mnist.js';
import { readIndicesFile, readParamsFile } from '../io/npy-file.js';
import { checkFinite, initParams } from '../core/network.js';
import { Rng } from '../core/prng.js';

/**
 * Files named on the command line are read and checked here, at the edge, so a bad one is reported
 * against the command and its option (`numgrad evaluate: --params P.npy: …`), as one line, before
 * any work starts; never from inside a worker thread, and never as a loss computed from a NaN.
 */

/** A parameter vector: a float64 .npy of length 795·H + 10, every value finite. */
export function paramsOption(op: string, path: string, option = '--params'): Float64Array {
  const params = relabel(op, option, path, () => readParamsFile(path));
  relabel(op, option, path, () => hiddenFromLength(params.length, option));
  relabel(op, option, path, () => checkFinite(op, params, option));
  return params;
}

/** A batch: an int32/int64 .npy of training-set indices, each in [0, count). */
export function indicesOption(op: string, path: string, count: number, option = '--indices'): Int32Array {
  const indices = relabel(op, option, path, () => readIndicesFile(path));
  relabel(op, option, path, () => checkIndices(op, indices, count, option));
  return indices;
}

/**
 * --mnist-dir / MNIST_DIR, when given: a folder holding the four uncompressed IDX files. Checked
 * before the files are read, so a wrong folder is named as the option, not as a missing file deep
 * in a load. (Their contents are checked when parsed; a bad one is named with its path.)
 */
export function checkMnistDir(op: string, dir: string | undefined): void {
  if (dir === undefined || dir === '') return;
  const option = '--mnist-dir / MNIST_DIR';
  const names = Object.values(MNIST_FILES).flatMap((f) => [f.images, f.labels]);
  const expected = `a folder with the four uncompressed MNIST IDX files (${names.join(', ')})`;
  const kind = statKind(dir);
  const at = `${op}: ${option} ${dir}`;
  if (kind !== 'folder') throw new FormatError(at, `${kind === 'missing' ? 'does not exist' : 'is not a folder'}: expected ${expected}`);
  const missing = names.filter((n) => statKind(join(dir, n)) !== 'file');
  if (missing.length > 0) throw new FormatError(at, `has no ${missing.join(', ')}: expected ${expected}`);
}

function statKind(path: string): 'missing' | 'folder' | 'file' | 'other' {
  try {
    const s = statSync(path);
    return s.isDirectory() ? 'folder' : s.isFile() ? 'file' : 'other';
  } catch {
    return 'missing';
  }
}

/** Runs a read or a check and names the command, the option and the file in what it throws. */
function relabel<T>(op: string, option: string, path: string, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (err instanceof ValidationError) {
      // `layout: --params must be of length …` → `numgrad evaluate: --params P.npy must be of length …`
      const field = err.field.startsWith(option) ? `${option} ${path}${err.field.slice(option.length)}` : `${option} ${path}: ${err.field}`;
      throw new ValidationError(op, field, err.expected, err.got);
    }
    if (err instanceof FormatError) throw new FormatError(`${op}: ${option} ${path}`, err.source === path ? err.detail : `${err.source}: ${err.detail}`);
    throw err;
  }
}

/** The net of addNetOptions: the --params file (checked here, named in the error), else the seeded initial net. */
export function netOf(op: string, flags: { params?: string; hidden: number; seed: number }): Float64Array {
  return flags.params !== undefined ? paramsOption(op, flags.params) : initParams(flags.hidden, new Rng(flags.seed));
}
