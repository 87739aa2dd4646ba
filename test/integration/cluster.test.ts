import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLI, ROOT, cleanup, closeRedis, freePort, redisUrl, sleep, uniquePrefix, workersOnline } from '../helpers/redis.js';

/**
 * `numgrad up` is the docker-compose topology on one machine: a run trained through its worker
 * processes ends on the same parameters, bit for bit, as the local backend; SIGTERM stops every
 * child it started.
 */

let url = '';
let prefix = '';
const dirs: string[] = [];
let up: ChildProcess | undefined;

beforeAll(async () => {
  expect(existsSync(CLI), 'run `npm run build` first').toBe(true);
  url = await redisUrl();
  prefix = uniquePrefix();
});

afterAll(async () => {
  if (up !== undefined && up.exitCode === null && up.signalCode === null) up.kill('SIGKILL');
  await cleanup(prefix, url);
  await closeRedis();
  dirs.forEach((d) => rmSync(d, { recursive: true, force: true }));
});

const env = (): NodeJS.ProcessEnv => ({ ...process.env, REDIS_URL: url, NUMGRAD_PREFIX: prefix, LOG_LEVEL: 'warn', DASHBOARD_TOKEN: 'cluster-test-token' });

/** Runs the CLI to completion; resolves with its exit code and output. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until(what: string, cond: () => boolean | Promise<boolean>, timeoutMs: number, log: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms\n${log().slice(-3000)}`);
    await sleep(100);
  }
}

describe('numgrad up (workers and dashboard as child processes)', () => {
  it('trains 200 iterations through 2 workers to the local backend’s params bitwise; a lost worker is reported; SIGTERM stops every child', async () => {
    const port = await freePort();
    const proc = spawn(process.execPath, [CLI, 'up', '--workers', '2', '--threads', '1', '--dashboard-port', String(port)], { cwd: ROOT, env: env(), stdio: ['ignore', 'pipe', 'pipe'] });
    up = proc;
    let stdout = '';
    let stderr = '';
    proc.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    const log = (): string => `--- stdout\n${stdout}\n--- stderr\n${stderr}`;
    const exited = new Promise<number | null>((res) => proc.on('exit', (code) => res(code)));

    await until('2 workers online', () => /up: 2 worker\(s\) online/.test(stdout), 60_000, log);
    expect(await workersOnline(prefix, url)).toBe(2);
    const pids = [...stdout.matchAll(/up: (worker-\d|dashboard) pid (\d+)/g)].map((m) => ({ name: m[1], pid: Number(m[2]) }));
    expect(pids.map((p) => p.name)).toEqual(['worker-1', 'worker-2', 'dashboard']);
    expect(stdout).toContain(`up: dashboard pid ${pids[2].pid} at http://127.0.0.1:${port}/`);
    // The dashboard child serves on the port `up` gave it.
    await until('dashboard /healthz answers 200', async () => (await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined))?.status === 200, 30_000, log);

    const flags = ['--iters', '200', '--eval-every', '100'];
    const qDir = mkdtempSync(join(tmpdir(), 'numgrad-cluster-q-'));
    const lDir = mkdtempSync(join(tmpdir(), 'numgrad-cluster-l-'));
    dirs.push(qDir, lDir);
    const q = await cli(['train', '--backend', 'queue', ...flags, '--out', qDir]);
    expect(q.code, q.stdout + q.stderr).toBe(0);
    expect(q.stdout).toMatch(/: done, 200\/200 iterations/);
    const l = await cli(['train', '--backend', 'local', '--threads', '2', ...flags, '--out', lDir]);
    expect(l.code, l.stdout + l.stderr).toBe(0);
    const qParams = readFileSync(join(qDir, 'params.npy'));
    const lParams = readFileSync(join(lDir, 'params.npy'));
    expect(qParams.length).toBe(lParams.length);
    expect(qParams.equals(lParams), 'final params through `numgrad up` differ from the local backend').toBe(true);

    // A worker killed behind up's back is reported; the other goes on.
    process.kill(pids[1].pid, 'SIGKILL');
    await until('the lost worker reported', () => new RegExp(`up: worker-2 \\(pid ${pids[1].pid}\\) exited unexpectedly \\(SIGKILL\\)`).test(stderr), 10_000, log);
    expect(alive(pids[0].pid)).toBe(true);

    proc.kill('SIGTERM');
    expect(await exited, log()).toBe(0);
    expect(stdout).toMatch(/up: stopped 3 processes/);
    for (const p of pids) expect(alive(p.pid), `${p.name} (pid ${p.pid}) still runs after up stopped`).toBe(false);
    expect(await workersOnline(prefix, url)).toBe(0);
  }, 300_000);

  it('says so and starts nothing when Redis does not answer', async () => {
    const port = await freePort();
    const r = await cli(['--redis', `redis://127.0.0.1:${port}`, 'up', '--workers', '1', '--no-dashboard']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`numgrad up: Redis at redis://127.0.0.1:${port} does not answer`));
    expect(r.stdout).not.toMatch(/worker-1 pid/);
  });

  it('rejects a bad --workers naming the option', async () => {
    const r = await cli(['up', '--workers', '0']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--workers must be an integer in \[1, 256\], got "0"/);
  });
});
