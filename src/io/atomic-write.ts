import { renameSync, rmSync, writeFileSync } from 'node:fs';

/**
 * Writes `data` to `path` through a temporary file beside it and a rename, so a concurrent reader
 * (another worker, numpy, a browser) sees the old file or the new one, never a half-written one.
 * A failed write or rename removes the temporary file before the error is rethrown.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  // pid + random: unique across processes and across worker threads of one process.
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    writeFileSync(tmp, data);
    renameSync(tmp, path);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}
