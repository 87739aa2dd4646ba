import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseFloatVector } from '../../src/core/npy.js';

const CLI = join(process.cwd(), 'dist/src/producer/cli.js');
const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('numgrad train (local) as a process', () => {
  it('Ctrl-C stops cleanly, exit 130, and leaves the last completed state in --out', async () => {
    expect(existsSync(CLI), 'run `npm run build` first').toBe(true);
    const dir = mkdtempSync(join(tmpdir(), 'numgrad-sigint-'));
    dirs.push(dir);
    const child = spawn(process.execPath, [CLI, 'train', '--backend', 'local', '--iters', '5000', '--eval-every', '5', '--threads', '2', '--out', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const interrupted = new Promise<void>((resolve) => {
      child.stderr.on('data', (d) => {
        stderr += d;
        // After the epoch at iteration 5 has been written, interrupt.
        if (/iter 5 loss/.test(stderr) && !child.killed) {
          child.kill('SIGINT');
          resolve();
        }
      });
    });
    await interrupted;
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code).toBe(130);
    expect(stdout).toMatch(/stopped: \d+ iterations/);
    const steps = Number(/stopped: (\d+) iterations/.exec(stdout)?.[1]);
    const metrics = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n');
    expect(metrics).toHaveLength(steps);
    const params = parseFloatVector(readFileSync(join(dir, 'params.npy')), 'params.npy');
    expect(params.length).toBe(39_760);
    expect(params.every(Number.isFinite)).toBe(true);
  });
});

describe('numgrad start without Redis', () => {
  it('says so, trains on local threads and writes the run', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'numgrad-start-local-'));
    dirs.push(dir);
    const child = spawn(process.execPath, [CLI, 'start', '--iters', '3', '--out', dir], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, REDIS_URL: 'redis://127.0.0.1:1', NUMGRAD_PREFIX: 'ngtest-start-local', LOG_LEVEL: 'warn' },
    });
    let stderr = '';
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    expect(code, stderr).toBe(0);
    expect(stderr).toMatch(/backend: local \(Redis at redis:\/\/127\.0\.0\.1:1 does not answer/);
    expect(stdout + stderr).toMatch(/done: 3 iterations/);
    expect(readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n')).toHaveLength(3);
    expect(existsSync(join(dir, 'params.npy')) && existsSync(join(dir, 'curves.svg'))).toBe(true);
  }, 60_000);
});
