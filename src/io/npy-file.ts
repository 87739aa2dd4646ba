import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { FormatError } from '../core/errors.js';
import { encodeNpy, parseFloatVector, parseIndexVector, parseNpy, type NpyArray } from '../core/npy.js';

/** The file's bytes; a missing, unreadable or folder path becomes a FormatError naming it, like every other bad input. */
function readBytes(path: string): Uint8Array {
  try {
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new FormatError(path, 'file not found: expected a .npy file');
    if (code === 'EISDIR') throw new FormatError(path, 'is a folder: expected a .npy file');
    if (code === 'EACCES' || code === 'EPERM') throw new FormatError(path, 'cannot be read (permission denied): expected a readable .npy file');
    throw err;
  }
}

export function readNpyFile(path: string): NpyArray {
  return parseNpy(readBytes(path), path);
}

/** A flat float64 parameter vector (the shared W1, b1, W2, b2 layout). */
export function readParamsFile(path: string): Float64Array {
  return parseFloatVector(readBytes(path), path);
}

/** A vector of sample indices, stored as int32 or int64. */
export function readIndicesFile(path: string): Int32Array {
  return parseIndexVector(readBytes(path), path);
}

/**
 * Writes via a temporary file and rename, so a concurrent reader (another worker, numpy) never sees
 * a half-written file.
 */
export function writeNpyFile(path: string, data: Float64Array | Int32Array, shape?: number[]): void {
  const bytes = encodeNpy(data, shape);
  mkdirSync(dirname(path), { recursive: true });
  // pid + random: unique across processes and across worker threads of one process.
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    writeFileSync(tmp, bytes);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
