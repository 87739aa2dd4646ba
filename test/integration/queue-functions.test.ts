/**
 * Registered functions through the queue, with `numgrad worker --functions DIR` processes and the
 * compiled CLI: `numgrad diff --backend queue` writes the same bytes as `--backend local` for any
 * shard count and with one or two workers (one of them with two threads); `numgrad map` likewise;
 * a module's Jacobian comes back k × m × n; an unknown name fails listing the workers' names; a
 * function that throws or hangs fails its job naming the function, the point and the coordinate,
 * and the same workers then run the next job.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Rng } from '../../src/core/prng.js';
import { writeNpyFile } from '../../src/io/npy-file.js';
import { ROOT, type WorkerProcess, cleanup, closeRedis, redisUrl, runCli, spawnWorker, uniquePrefix } from '../helpers/redis.js';

const FUNCTIONS = join(ROOT, 'test/fixtures/functions');
let url: string;
let dir: string;
const prefix = uniquePrefix();
const workers: WorkerProcess[] = [];
let X: string;
const local: Record<string, Buffer> = {};

const cli = (args: string[]) => runCli(args, { prefix, url });
const npyData = (file: string): Buffer => {
  const b = readFileSync(file);
  return b.subarray(10 + b.readUInt16LE(8));
};

beforeAll(async () => {
  url = await redisUrl();
  dir = mkdtempSync(join(tmpdir(), 'numgrad-queue-functions-'));
  const rng = new Rng(4242);
  X = join(dir, 'x.npy');
  writeNpyFile(X, Float64Array.from({ length: 3 * 23 }, () => Math.min(1.2, rng.normal())), [3, 23]);
  for (const [name, args] of [
    ['diff', ['diff', '--function', 'rosenbrock', '--x', X, '--method', '3-point', '--upper', '1.2']],
    ['map', ['map', '--function', 'rosenbrock', '--x', X]],
  ] as const) {
    const r = await cli([...args, '--backend', 'local', '--threads', '2', '--out', join(dir, `local-${name}.npy`)]);
    expect(r.code, r.stderr).toBe(0);
    local[name] = readFileSync(join(dir, `local-${name}.npy`));
  }
  workers.push(await spawnWorker(prefix, url, { threads: 1, extraArgs: ['--functions', FUNCTIONS] }));
}, 120_000);

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await cleanup(prefix, url);
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  await closeRedis();
});

describe('registered functions through the queue', () => {
  it('diff: the same bytes as the local backend with 1 and 5 shards per point on one worker, and 3 shards on two workers', async () => {
    const args = ['diff', '--function', 'rosenbrock', '--x', X, '--method', '3-point', '--upper', '1.2', '--backend', 'queue'];
    for (const shards of ['1', '5']) {
      const out = join(dir, `queue-diff-${shards}.npy`);
      const r = await cli([...args, '--shards', shards, '--out', out]);
      expect(r.code, r.stderr).toBe(0);
      expect(readFileSync(out).equals(local.diff)).toBe(true);
    }
    workers.push(await spawnWorker(prefix, url, { threads: 2, extraArgs: ['--functions', FUNCTIONS] }));
    const out = join(dir, 'queue-diff-2w.npy');
    const r = await cli([...args, '--shards', '3', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out).equals(local.diff)).toBe(true);
  }, 240_000); // three CLI runs and a worker start: slow on a loaded 2-core machine

  it('--backend auto takes the queue when Redis answers and a worker is online: the same bytes as the local backend', async () => {
    const out = join(dir, 'auto-map.npy');
    const r = await cli(['map', '--function', 'rosenbrock', '--x', X, '--backend', 'auto', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/map: rosenbrock at 3 point\(s\) of 23 coordinate\(s\), queue, /);
    expect(readFileSync(out).equals(local.map)).toBe(true);
  });

  it('a job longer than a second shows its progress (plain lines when stderr is not a terminal)', async () => {
    const Y = join(dir, 'y.npy');
    writeNpyFile(Y, new Float64Array(100), [100, 1]);
    const r = await cli(['map', '--function', 'sleepy', '--functions', FUNCTIONS, '--args', '{"ms":30}', '--x', Y, '--backend', 'local', '--threads', '1', '--concurrency', '1']);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toMatch(/^progress 16\/16 point shards [\d.]+ it\/s ETA /m);
  });

  it('map: the same bytes as the local backend', async () => {
    const out = join(dir, 'queue-map.npy');
    const r = await cli(['map', '--function', 'rosenbrock', '--x', X, '--backend', 'queue', '--shards', '2', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(readFileSync(out).equals(local.map)).toBe(true);
  });

  it("a module's 3-output Jacobian comes back k × 3 × 2, matching the analytic one", async () => {
    const P = join(dir, 'p2.npy');
    writeNpyFile(P, Float64Array.of(0.7, -1.3, 2.0, 0.5), [2, 2]);
    const out = join(dir, 'jac.npy');
    const r = await cli(['diff', '--function', 'spiral3', '--x', P, '--backend', 'queue', '--method', '3-point', '--out', out]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('result (2, 3, 2)');
    const J = new Float64Array(Uint8Array.from(npyData(out)).buffer);
    const pts = [[0.7, -1.3], [2.0, 0.5]];
    pts.forEach(([a, b], p) => [b, a, Math.cos(a), 0, 0, 3 * b * b].forEach((v, c) => expect(Math.abs(J[p * 6 + c] - v)).toBeLessThanOrEqual(1e-8)));
  });

  it('an unknown function fails at once, listing the names the workers have', async () => {
    const r = await cli(['diff', '--function', 'nope', '--x', X, '--backend', 'queue']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/fn-diff-shard: data\.fn must be one of the functions this worker has: faulty, function_1, function_2, mnist-loss, rosenbrock, sleepy, spiral3, got "nope"/);
  });

  it.each([
    ['throw', /function "faulty" at point 1, coordinate 4 \(x\[4\] = [-\d.e]+\): threw Error: the simulator diverged/],
    ['hang', /function "faulty" at point 1, coordinate 4 \(x\[4\] = [-\d.e]+\): did not return within 500 ms \(its thread was stopped\)/],
  ])('a function that %s fails its job naming function, point and coordinate; the workers run the next job', async (mode, msg) => {
    const P = join(dir, `faulty-${mode}.npy`);
    // Point 0 is all 0, point 1 all 1 but x[4] = 2: only point 1's coordinate 4 is perturbed near 2.
    writeNpyFile(P, Float64Array.of(0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 1), [2, 6]);
    const r = await cli(['diff', '--function', 'faulty', '--args', JSON.stringify({ mode, at: 4, near: 2 }), '--x', P, '--backend', 'queue', '--timeout', '500']);
    expect(r.code, r.stdout).toBe(2);
    expect(r.stderr).toMatch(msg);
    const ok = await cli(['diff', '--function', 'function_2', '--x', P, '--backend', 'queue', '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    expect(workers.every((w) => w.child.exitCode === null)).toBe(true);
  }, 180_000);

  it("examples/submit-function.mjs (plain BullMQ) gets the notebook's gradient of function_2 at (3, 4) and a Jacobian", () => {
    const env = { ...process.env, REDIS_URL: url, NUMGRAD_PREFIX: prefix };
    const a = spawnSync(process.execPath, [join(ROOT, 'examples/submit-function.mjs'), '--function', 'function_2', '--points', '3,4;0,2', '--shards', '2'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(a.status, a.stderr).toBe(0);
    expect(a.stdout).toBe('point 0: [6.00000000000378,7.999999999999119]\npoint 1: [0,4.000000000004]\n');
    const b = spawnSync(process.execPath, [join(ROOT, 'examples/submit-function.mjs'), '--function', 'spiral3', '--points', '0,2', '--method', '3-point'], { env, encoding: 'utf8', timeout: 60_000 });
    expect(b.status, b.stderr).toBe(0);
    const J = JSON.parse(b.stdout.replace('point 0: ', '')) as number[][];
    [[2, 0], [1, 0], [0, 12]].forEach((row, j) => row.forEach((v, c) => expect(Math.abs(J[j][c] - v)).toBeLessThanOrEqual(1e-8)));
  });
});
