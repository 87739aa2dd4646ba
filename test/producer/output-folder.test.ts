/**
 * An output path that cannot be written is reported before any work is submitted or computed: one
 * line naming the command, the option, the folder and what to do; exit 2; no stack trace.
 *
 * The Docker case is reproduced as it happens there: the image runs as uid 1000 and `./out` belongs
 * to root. When these tests run as root, the CLI is started as uid 1000 against a root-owned folder;
 * otherwise the folder is made read-only for its owner (chmod 0555). A full disk is a 64 KB tmpfs
 * (mounting needs root: those two tests are skipped without it, and say so).
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanup, keysUnder, redisUrl, runCli, uniquePrefix } from '../helpers/redis.js';

const isRoot = process.getuid?.() === 0;
const USER = 1000;
const STACK_FRAME = /^\s+at .+/m;

let base: string;
let locked: string;
beforeAll(() => {
  base = mkdtempSync(join(tmpdir(), 'numgrad-outdir-'));
  chmodSync(base, 0o755); // uid 1000 may search it, as it may search the host's project folder
  locked = join(base, 'out');
  mkdirSync(locked);
  // Root-owned 0755 when we are root (the Docker case: uid 1000 cannot write it); read-only otherwise.
  chmodSync(locked, isRoot ? 0o755 : 0o555);
});
afterAll(() => {
  chmodSync(locked, 0o755);
  rmSync(base, { recursive: true, force: true });
});

/**
 * The CLI as uid 1000 when we are root (so root's bypass of permissions does not hide the case),
 * against a Redis that does not answer unless the test names its own.
 */
const run = (args: string[], redis: { url: string; prefix: string } = { url: 'redis://127.0.0.1:1', prefix: uniquePrefix() }, asUser = isRoot) =>
  runCli(args, { ...redis, ...(asUser ? { uid: USER } : {}) }, 60_000);

/** Exit 2, one line on stderr naming the command, the option and the path; nothing started. */
function expectOneLine(r: { code: number | null; stdout: string; stderr: string }, op: string, path: string, what: RegExp): void {
  expect(r.code, r.stderr).toBe(2);
  expect(r.stderr, 'no stack frame').not.toMatch(STACK_FRAME);
  const lines = r.stderr.trim().split('\n');
  expect(lines, r.stderr).toHaveLength(1);
  expect(lines[0]).toContain(`error: ${op}: --out ${path} `);
  expect(lines[0]).toMatch(what);
  expect(r.stdout, 'no work started').toBe('');
}

const NOT_WRITABLE = isRoot ? new RegExp(`is not writable: .*uid ${USER} \\(owned by uid 0, mode 0755\\): make it writable.*or give a folder you can write`) : /is not writable: .*make it writable/;

describe('an unwritable output folder is reported before any work', () => {
  it('numgrad train --backend local: the Docker case (root-owned folder, uid 1000), one line, exit 2', async () => {
    const r = await run(['train', '--backend', 'local', '--iters', '1', '--threads', '1', '--out', join(locked, 'train')]);
    expectOneLine(r, 'numgrad train', join(locked, 'train'), NOT_WRITABLE);
    expect(readdirSync(locked)).toEqual([]);
  });

  it('numgrad start names itself', async () => {
    const r = await run(['start', '--iters', '1', '--out', join(locked, 'train')]);
    expectOneLine(r, 'numgrad start', join(locked, 'train'), NOT_WRITABLE);
  });

  it('numgrad gradient --out G.npy in an unwritable folder, and --out naming a folder', async () => {
    const r = await run(['gradient', '--backend', 'inline', '--batch', '2', '--out', join(locked, 'g.npy')]);
    expectOneLine(r, 'numgrad gradient', join(locked, 'g.npy'), NOT_WRITABLE);
    const d = await run(['gradient', '--backend', 'inline', '--batch', '2', '--out', base], undefined, false);
    expectOneLine(d, 'numgrad gradient', base, /is a folder: give the name of a file to write/);
  });

  it('numgrad train --out naming a file, or a path under a file', async () => {
    const file = join(base, 'a-file');
    writeFileSync(file, 'x');
    const r = await run(['train', '--backend', 'local', '--iters', '1', '--out', file], undefined, false);
    expectOneLine(r, 'numgrad train', file, /is a file, not a folder/);
    const under = await run(['train', '--backend', 'local', '--iters', '1', '--out', join(file, 'train')], undefined, false);
    expectOneLine(under, 'numgrad train', join(file, 'train'), /cannot be created: .*a-file is a file, not a folder/);
  });
});

describe('on the queue: nothing is submitted', () => {
  let url: string;
  const prefix = uniquePrefix();
  beforeAll(async () => {
    url = await redisUrl();
  });
  afterAll(async () => {
    await cleanup(prefix, url);
  });

  it('numgrad train --backend queue leaves no key in Redis', async () => {
    const r = await run(['train', '--backend', 'queue', '--iters', '2', '--run-id', 'nope', '--out', join(locked, 'train')], { url, prefix });
    expectOneLine(r, 'numgrad train', join(locked, 'train'), NOT_WRITABLE);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it('numgrad follow RUN --out refuses before following', async () => {
    // A detached run with no worker online: it waits in Redis, so following it would never end.
    const sub = await run(['train', '--backend', 'queue', '--iters', '2', '--detach', '--run-id', 'waits'], { url, prefix }, false);
    expect(sub.code, sub.stderr).toBe(0);
    const r = await run(['follow', 'waits', '--out', join(locked, 'run')], { url, prefix });
    expectOneLine(r, 'numgrad follow', join(locked, 'run'), NOT_WRITABLE);
  });
});

describe.skipIf(!isRoot)('a full output disk (a 64 KB tmpfs; needs root to mount)', () => {
  let mnt: string;
  beforeAll(() => {
    mnt = join(base, 'tmpfs');
    mkdirSync(mnt);
    const m = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=64k,mode=0777', 'tmpfs', mnt], { encoding: 'utf8' });
    expect(m.status, m.stderr).toBe(0);
  });
  afterAll(() => {
    spawnSync('umount', [mnt]);
  });

  it('numgrad train: too little room for params.npy, metrics.jsonl and curves.svg', async () => {
    const r = await run(['train', '--backend', 'local', '--iters', '1', '--out', join(mnt, 'train')], undefined, false);
    expectOneLine(r, 'numgrad train', join(mnt, 'train'), /needs about 0\.7 MB but the file system of .* has 0\.066 MB free: free some space/);
  });

  it('numgrad gradient: a disk with no byte left', async () => {
    // Fill it: the write that does not fit ends the loop.
    try {
      writeFileSync(join(mnt, 'filler'), new Uint8Array(1 << 20));
    } catch (err) {
      expect((err as NodeJS.ErrnoException).code).toBe('ENOSPC');
    }
    const r = await run(['gradient', '--backend', 'inline', '--batch', '2', '--out', join(mnt, 'g.npy')], undefined, false);
    expectOneLine(r, 'numgrad gradient', join(mnt, 'g.npy'), /cannot be written: the file system of .* is full \(ENOSPC\)/);
  });
});
