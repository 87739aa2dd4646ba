import { mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { FormatError } from '../core/errors.js';
import { writeFileAtomic } from './atomic-write.js';
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

/** Writes through a temporary file and a rename (writeFileAtomic), creating the folder if needed. */
export function writeNpyFile(path: string, data: Float64Array | Int32Array, shape?: number[]): void {
  const bytes = encodeNpy(data, shape);
  mkdirSync(dirname(path), { recursive: true });
  writeFileAtomic(path, bytes);
}
