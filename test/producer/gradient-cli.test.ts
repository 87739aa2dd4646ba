/**
 * `numgrad gradient` as a user runs it: the compiled CLI in a subprocess (the suite runs after
 * `npm run build`). Its JSON, its --check report, its --out file (read back by numpy, and bitwise
 * our own fdGradient), and a non-zero exit with a message naming the argument for each bad input.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatherBatch } from '../../src/core/dataset.js';
import { fdGradient } from '../../src/core/fd-engine.js';
import { initParams } from '../../src/core/network.js';
import { encodeNpy } from '../../src/core/npy.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { loadMnist } from '../../src/io/mnist.js';
import { writeNpyFile } from '../../src/io/npy-file.js';
import { seededCase } from '../helpers/data.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'dist/src/producer/cli.js');
const HAS_NUMPY = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;
const COORDS = 795 * 50 + 10;
/** Any coordinate name the CLI may print: W1[i][j], b1[j], W2[j][k], b2[k]. */
const COORD_NAME = /W1\[\d+\]\[\d+\]|b1\[\d+\]|W2\[\d+\]\[\d+\]|b2\[\d+\]/;

// The local backend unless a test names one (the default, auto, would use a Redis that answers).
function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const withBackend = args.includes('--backend') ? args : ['--backend', 'local', ...args];
  const r = spawnSync(process.execPath, [CLI, 'gradient', ...withBackend], { cwd: ROOT, encoding: 'utf8' });
  if (r.error !== undefined) throw r.error;
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function lastLine(text: string): string {
  return text.trimEnd().split('\n').pop() ?? '';
}

/** An int64 ('<i8') index vector, as numpy saves one by default (encodeNpy writes int32 only). */
function int64Npy(values: number[]): Uint8Array {
  const shape = `(${values.length},)`;
  let header = `{'descr': '<i8', 'fortran_order': False, 'shape': ${shape}, }`;
  header += ' '.repeat(64 - ((10 + header.length + 1) % 64)) + '\n';
  const out = new Uint8Array(10 + header.length + 8 * values.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]);
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  values.forEach((v, i) => view.setBigInt64(10 + header.length + 8 * i, BigInt(v), true));
  return out;
}

let dir: string;
beforeAll(() => {
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run \`npm run build\` before the tests (npm test does)`);
  dir = mkdtempSync(join(tmpdir(), 'numgrad-gradient-cli-'));
});
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('numgrad gradient (compiled CLI)', () => {
  it('--json: the last line is one JSON object with 39760 coordinates, a finite loss and a positive time', () => {
    const r = cli('--json');
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const j = JSON.parse(lastLine(r.stdout)) as { coordinates: number; loss: number; seconds: number; hidden: number; batch: number };
    expect(j.coordinates).toBe(COORDS);
    expect(j.hidden).toBe(50);
    expect(j.batch).toBe(100);
    expect(Number.isFinite(j.loss)).toBe(true);
    expect(j.seconds).toBeGreaterThan(0);
  });

  it('says what its times measure: the human line gives compute and wall time, the JSON names both', () => {
    for (const threads of ['1', '2']) {
      const out = join(dir, `timed-${threads}.npy`);
      const r = cli('--threads', threads, '--out', out, '--json');
      expect(r.status).toBe(0);
      const line = r.stdout.split('\n').find((l) => l.startsWith('gradient:')) ?? '';
      expect(line).toMatch(/: (\d+\.\d{3}) s compute, (\d+\.\d{3}) s wall \(process start to the written \.npy\), loss /);
      // Who ran the units, as it happened: the main thread alone (a gradient this small is done before
      // worker threads would start), or shared with a worker thread started once the work proved long.
      if (threads === '2') expect(line).toMatch(/local, 2 threads (asked \(this process's main thread ran all 160 units in \d+\.\d{3} s; worker threads start only for work left after \d+ ms\)|\(this process's main thread and 1 worker thread, started at \d+\.\d{3} s; the main thread ran \d+ of 160 units\)|asked \(1 worker thread started at \d+\.\d{3} s found no unit left: the main thread ran all 160 units\)):/);
      const j = JSON.parse(lastLine(r.stdout)) as { seconds: number; wallSeconds: number; timing: Record<string, string>; threads: { units: number; mainThreadUnits: number; threadsStartedAt: number | null } };
      expect(j.threads.units).toBe(threads === '1' ? 3 : 160);
      if (threads === '1') expect(j.threads).toEqual({ units: 3, mainThreadUnits: 3, threadsStartedAt: null });
      else expect(j.threads.mainThreadUnits === 160).toBe(!line.includes('; the main thread ran'));
      expect(j.wallSeconds).toBeGreaterThan(j.seconds);
      expect(Object.keys(j.timing).sort()).toEqual(['seconds', 'wallSeconds']);
      expect(j.timing.seconds).toMatch(/^compute: /);
      expect(j.timing.wallSeconds).toMatch(/^wall: from the start of this process .* to the written \.npy/);
      const { params, batch } = seededCase(0, 50);
      const g = fdGradient(params, batch);
      expect(readFileSync(out).subarray(-g.byteLength).equals(Buffer.from(g.buffer))).toBe(true);
    }
  });

  it('piped into a reader that goes away (`| head -1`): stops quietly, as on SIGPIPE (status 141, no stack trace)', async () => {
    const child = spawn(process.execPath, [CLI, 'gradient', '--backend', 'local', '--threads', '1', '--batch', '10'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy(); // the reader closes before the first line
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const status = await new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    expect(stderr).toBe('');
    expect(status).toBe(141);
  });

  it('--check: reports the max relative error against backprop and names the worst coordinate', () => {
    const r = cli('--check');
    expect(r.status).toBe(0);
    const line = r.stdout.split('\n').find((l) => l.startsWith('check:'));
    expect(line).toBeDefined();
    expect(line).toMatch(/max\|g − g_exact\| \/ max\|g_exact\| = \d\.\d+e-\d+/);
    expect(line).toMatch(new RegExp(`worst (${COORD_NAME.source})`));
  });

  it.each(['inline', 'local'])('--out from the seeded inputs (--seed 1, --backend %s): bitwise our fdGradient', (backend) => {
    const out = join(dir, `seeded-${backend}.npy`);
    const r = cli('--seed', '1', '--backend', backend, '--out', out);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    expect(r.stdout).toContain(`wrote ${out}`);
    const { params, batch } = seededCase(1, 50);
    expect(Buffer.from(readFileSync(out)).equals(Buffer.from(encodeNpy(fdGradient(params, batch))))).toBe(true);
  });

  it('--out from --params/--indices files: bitwise our fdGradient of the same inputs', () => {
    const train = loadMnist('train');
    const params = initParams(50, new Rng(7));
    const indices = miniBatchIndices(7, 3, 100, train.count);
    const p = join(dir, 'p7.npy');
    const i = join(dir, 'i7.npy');
    const out = join(dir, 'g7.npy');
    writeNpyFile(p, params);
    writeNpyFile(i, indices);
    const r = cli('--params', p, '--indices', i, '--out', out);
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const ours = fdGradient(params, gatherBatch(train, indices));
    expect(Buffer.from(readFileSync(out)).equals(Buffer.from(encodeNpy(ours)))).toBe(true);
  });

  it.skipIf(!HAS_NUMPY)('--out: numpy loads the file as float64 of shape (39760,)', () => {
    const out = join(dir, 'for-numpy.npy');
    expect(cli('--out', out).status).toBe(0);
    const env = { ...process.env, OPENBLAS_NUM_THREADS: '1' };
    const r = spawnSync('python3', ['-c', 'import sys, numpy; a = numpy.load(sys.argv[1]); print(a.dtype, a.shape)', out], { encoding: 'utf8', env });
    expect(r.stderr).toBe('');
    expect(r.stdout.trim()).toBe(`float64 (${COORDS},)`);
  });
});

describe('numgrad gradient rejects bad input with a message naming the argument', () => {
  const params = (name: string, p: Float64Array): string => {
    const path = join(dir, name);
    writeNpyFile(path, p);
    return path;
  };
  const indices = (name: string, values: number[]): string => {
    const path = join(dir, name);
    writeFileSync(path, int64Npy(values));
    return path;
  };
  const rejects = (args: string[], message: RegExp): void => {
    const r = cli(...args);
    expect(r.status).not.toBe(0);
    expect(r.stdout).not.toMatch(/^gradient:/m);
    expect(r.stderr).toMatch(message);
  };
  const withBad = (c: number, v: number): Float64Array => {
    const p = initParams(50, new Rng(0));
    p[c] = v;
    return p;
  };

  it('params of a length that fits no H', () => {
    rejects(['--params', params('len1000.npy', new Float64Array(1000))], /--params \S*len1000\.npy must be of length 795·H \+ 10 .*got "length 1000"/);
  });
  it('an index = 60000 (one past the training set)', () => {
    rejects(['--indices', indices('i60000.npy', [60000])], /--indices \S*i60000\.npy\[0\] must be an integer in \[0, 60000\), got 60000/);
  });
  it('an index of −1, not at position 0', () => {
    rejects(['--indices', indices('im1.npy', [5, -1])], /--indices \S*im1\.npy\[1\] must be an integer in \[0, 60000\), got -1/);
  });
  it('NaN in params', () => {
    rejects(['--params', params('nan.npy', withBad(123, NaN))], /--params \S*nan\.npy\[123\] must be a finite number, got NaN/);
  });
  it('Inf in params', () => {
    rejects(['--params', params('inf.npy', withBad(39759, -Infinity))], /--params \S*inf\.npy\[39759\] must be a finite number, got -Infinity/);
  });
  it('an empty batch (a .npy of zero indices)', () => {
    rejects(['--indices', indices('empty.npy', [])], /--indices \S*empty\.npy must be a non-empty list of training-set indices/);
  });
  it('--h 0 and --h -1', () => {
    rejects(['--h', '0'], /--h must be a number in \(0, 1\], got "0"/);
    rejects(['--h', '-1'], /--h must be a number in \(0, 1\], got "-1"/);
  });
  it('--batch 0', () => {
    rejects(['--batch', '0'], /--batch must be an integer in \[1, 60000\], got "0"/);
  });
});
