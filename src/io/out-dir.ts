import { closeSync, openSync, rmSync, statSync, statfsSync, writeSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { OutputError } from '../core/errors.js';

/**
 * An output path is checked before any work is submitted, so a run that cannot be saved fails in
 * its first second, as one line, instead of after hours of training (the EACCES of a root-owned
 * `./out` seen by the uid-1000 Docker image came after the whole run, with a stack trace).
 *
 * Nothing is created: the check writes (and removes) a small probe file in the nearest folder that
 * exists, which is where the command's `mkdir -p` and its temporary files will write. A probe is the
 * only test that holds for every cause at once (mode bits, ACLs, a read-only mount, a full disk,
 * root bypassing permissions); `access()` answers for mode bits alone.
 */
export interface OutputTarget {
  /** The command (`numgrad train`). */
  readonly op: string;
  /** The option that named the path (`--out`). */
  readonly option: string;
  readonly path: string;
  /** A folder that will hold files (train, follow), or one file to be written (gradient). */
  readonly kind: 'folder' | 'file';
  /** About how many bytes the command will write there (its temporary copies included). */
  readonly bytes: number;
}

/** Bytes of a float64 .npy vector of `n` values (header included). */
export function npyBytes(n: number): number {
  return 8 * n + 128;
}

/**
 * About what a training run writes into its --out: params.npy, metrics.jsonl (~41 B an iteration)
 * and curves.svg (~15 B an iteration), each twice for a moment (temporary file, then rename).
 */
export function runOutputBytes(iters: number, hidden: number): number {
  return 2 * (npyBytes(795 * hidden + 10) + 60 * iters) + 16_384;
}

export function checkOutput(t: OutputTarget): void {
  const full = resolve(t.path);
  const fail = (detail: string): never => {
    throw new OutputError(t.op, t.option, t.path, detail);
  };
  const existing = statOrUndefined(full, fail);
  if (t.kind === 'folder' && existing !== undefined && !existing.isDirectory()) fail('is a file, not a folder: give a folder (it is created when missing)');
  if (t.kind === 'file' && existing?.isDirectory()) fail('is a folder: give the name of a file to write (e.g. gradient.npy)');
  // The folder the probe goes in: the target folder itself, or the nearest ancestor that exists.
  let base = t.kind === 'folder' ? full : dirname(full);
  for (;;) {
    const s = statOrUndefined(base, fail);
    if (s !== undefined) {
      if (!s.isDirectory()) fail(`cannot be created: ${base} is a file, not a folder`);
      break;
    }
    base = dirname(base);
  }
  probe(base, t, fail);
  const free = freeBytes(base);
  if (free !== undefined && free < t.bytes) {
    fail(`needs about ${mb(t.bytes)} but the file system of ${base} has ${mb(free)} free: free some space or give a folder on another disk`);
  }
}

function statOrUndefined(path: string, fail: (d: string) => never): ReturnType<typeof statSync> | undefined {
  try {
    return statSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return undefined;
    if (code === 'ENOTDIR') return fail(`cannot be created: ${fileAbove(path)} is a file, not a folder`);
    if (code === 'EACCES') return fail(`cannot be reached: a folder above it cannot be searched by uid ${uid()}: make it searchable (chmod o+x) or give another folder`);
    throw err;
  }
}

/** The nearest ancestor of `path` that exists: a file, when stat answered ENOTDIR. */
function fileAbove(path: string): string {
  let p = dirname(path);
  for (;;) {
    try {
      statSync(p);
      return p;
    } catch {
      if (dirname(p) === p) return p;
      p = dirname(p);
    }
  }
}

/** Writes 4 KB (so a full disk answers ENOSPC) into a new file in `dir`, then removes it. */
function probe(dir: string, t: OutputTarget, fail: (d: string) => never): void {
  const file = join(dir, `.numgrad-write-check.${process.pid}.${Math.random().toString(36).slice(2)}`);
  let fd: number | undefined;
  try {
    fd = openSync(file, 'wx', 0o600);
    writeSync(fd, new Uint8Array(4096));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const where = dir === resolve(t.path) ? 'it' : `the folder ${dir} (where it would be created)`;
    if (code === 'EACCES' || code === 'EPERM') {
      fail(`is not writable: ${where} cannot be written by uid ${uid()}${owner(dir)}: make it writable for that user (e.g. chown ${uid()} ${dir}, or chmod a+w ${dir}; in Docker, run as the folder's owner with --user or mount a writable volume), or give a folder you can write`);
    }
    if (code === 'EROFS') fail(`is on a read-only file system (${dir}): give a folder on a writable one`);
    if (code === 'ENOSPC' || code === 'EDQUOT') fail(`cannot be written: the file system of ${dir} is full (${code}): free some space or give a folder on another disk`);
    fail(`cannot be written in ${dir}: ${(err as Error).message}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
    rmSync(file, { force: true });
  }
}

function freeBytes(dir: string): number | undefined {
  try {
    const s = statfsSync(dir);
    return s.bavail * s.bsize;
  } catch {
    return undefined; // a file system that does not report its space: the probe above is all we know
  }
}

function uid(): string {
  return process.getuid === undefined ? 'this user' : String(process.getuid());
}

function owner(dir: string): string {
  try {
    const s = statSync(dir);
    return ` (owned by uid ${s.uid}, mode ${(s.mode & 0o777).toString(8).padStart(4, '0')})`;
  } catch {
    return '';
  }
}

function mb(bytes: number): string {
  return `${(bytes / 1e6).toFixed(bytes < 1e5 ? 3 : 1)} MB`;
}
