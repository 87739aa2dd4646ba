/**
 * Redis not there, or refusing the credentials, is an answer, never a silent hang:
 *  - a worker started before Redis says it is retrying, comes online when redis-server starts on
 *    that port, and computes a gradient byte-identical to the local one;
 *  - `numgrad runs` and `numgrad gradient --backend queue` against a port with nothing listening
 *    exit non-zero within seconds with one line naming the (redacted) URL;
 *  - with `requirepass` set, a wrong password (WRONGPASS) or none (NOAUTH) is reported as such by
 *    those commands, and a worker exits 2 with the same message — the password never printed.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CliProcess, type RedisServer, freePort, runCli, startCli, startRedisServer, uniquePrefix, workersOnline } from '../helpers/redis.js';
import { FAST_LOCKS, until } from './faults.js';

/**
 * A command that fails because of Redis must say so within this much more than `numgrad --help`
 * takes on the same machine at the same time (Node's start-up alone is seconds on a busy 2-core box).
 */
const FAIL_FAST_MS = 5_000;
const PASSWORD = 'fault-test-secret-9f2c';
const WRONG = 'not-the-password-41d7';

let dir: string;
/** `gradient --backend local` of the seeded 784-50-10 net, the reference of the late worker's gradient. */
let local: Buffer;
const servers: RedisServer[] = [];
const procs: CliProcess[] = [];

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'numgrad-fault-unreachable-'));
  const r = await runCli(['gradient', '--backend', 'local', '--threads', '2', '--out', join(dir, 'local.npy')], { prefix: uniquePrefix(), url: 'redis://127.0.0.1:1' }, 60_000);
  expect(r.code, r.stderr).toBe(0);
  local = readFileSync(join(dir, 'local.npy'));
}, 60_000);

afterAll(async () => {
  for (const p of procs) if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
  await Promise.all(servers.map((s) => s.stop()));
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI and measures how long it took to exit, beyond what `numgrad --help` takes right before. */
async function timed(args: string[], env: { prefix: string; url: string }): Promise<{ code: number | null; stderr: string; stdout: string; ms: number }> {
  let t0 = Date.now();
  await runCli(['--help'], env, 30_000);
  const startup = Date.now() - t0;
  t0 = Date.now();
  const r = await runCli(args, env, 30_000);
  return { ...r, ms: Date.now() - t0 - startup };
}

/** The commands one after another (at once they would measure the machine, not the commands). */
async function inTurn(runs: [string[], { prefix: string; url: string }][]): Promise<Awaited<ReturnType<typeof timed>>[]> {
  const out: Awaited<ReturnType<typeof timed>>[] = [];
  for (const [args, env] of runs) out.push(await timed(args, env));
  return out;
}

/** A failure that is one clear line: the message, no stack trace, nothing secret. */
function expectClearFailure(r: { code: number | null; stderr: string; ms: number }, must: (string | RegExp)[], secret?: string): void {
  expect(r.code, r.stderr).not.toBe(0);
  expect(r.code, 'killed by the timeout: it hung').not.toBeNull();
  expect(r.ms, `exited ${r.ms} ms later than --help`).toBeLessThan(FAIL_FAST_MS);
  for (const m of must) expect(r.stderr).toMatch(m);
  expect(r.stderr, 'no stack trace').not.toMatch(/^\s+at /m);
  if (secret !== undefined) expect(r.stderr).not.toContain(secret);
}

describe('Redis not listening', () => {
  it('a worker started first retries, comes online when redis-server starts on that port, and computes a gradient', async () => {
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    const prefix = uniquePrefix();
    const worker = startCli(['worker', '--threads', '1', ...FAST_LOCKS], { prefix, url });
    procs.push(worker);
    await until('the retry message', () => worker.stderr().includes('Redis unreachable; retrying'), 20_000);
    expect(worker.child.exitCode, 'the worker waits, it does not exit').toBeNull();
    const server = await startRedisServer({ port, appendonly: true });
    servers.push(server);
    await until('the worker online', async () => (await workersOnline(prefix, url)) >= 1, 30_000, 100);
    const g = await runCli(['gradient', '--backend', 'queue', '--out', join(dir, 'queue.npy'), '--json'], { prefix, url }, 60_000);
    expect(g.code, g.stderr).toBe(0);
    expect(g.stderr).toContain('1 worker process(es) online');
    expect(readFileSync(join(dir, 'queue.npy')).equals(local), 'gradient byte-identical to --backend local').toBe(true);
    worker.child.kill('SIGTERM');
    expect((await worker.exited).code).toBe(0);
  }, 120_000);

  it('runs and gradient --backend queue fail fast, naming the redacted URL', async () => {
    const port = await freePort();
    const plain = `redis://127.0.0.1:${port}`;
    const withPassword = `redis://:${PASSWORD}@127.0.0.1:${port}`;
    const prefix = uniquePrefix();
    const results = await inTurn([
      [['runs'], { prefix, url: plain }],
      [['gradient', '--backend', 'queue'], { prefix, url: plain }],
      [['runs'], { prefix, url: withPassword }],
      [['gradient', '--backend', 'queue'], { prefix, url: withPassword }],
    ]);
    for (const r of results.slice(0, 2)) expectClearFailure(r, [`Redis at ${plain} does not answer`, 'ECONNREFUSED']);
    for (const r of results.slice(2)) expectClearFailure(r, [`Redis at redis://***@127.0.0.1:${port} does not answer`, 'ECONNREFUSED'], PASSWORD);
    console.log(`[fault] Redis not listening: ${results.length} commands failed, ${results.map((r) => r.ms).join(', ')} ms beyond --help`);
  }, 60_000);
});

describe('Redis with requirepass', () => {
  let server: RedisServer;
  let port: number;

  beforeAll(async () => {
    server = await startRedisServer({ requirepass: PASSWORD });
    servers.push(server);
    port = server.port;
  }, 30_000);

  it('a wrong password or none: runs and gradient --backend queue say WRONGPASS / NOAUTH, fast, without the password', async () => {
    const wrong = `redis://:${WRONG}@127.0.0.1:${port}`;
    const none = `redis://127.0.0.1:${port}`;
    const prefix = uniquePrefix();
    const results = await inTurn([
      [['runs'], { prefix, url: wrong }],
      [['gradient', '--backend', 'queue'], { prefix, url: wrong }],
      [['runs'], { prefix, url: none }],
      [['gradient', '--backend', 'queue'], { prefix, url: none }],
    ]);
    for (const r of results.slice(0, 2)) expectClearFailure(r, [`Redis at redis://***@127.0.0.1:${port} refused the credentials`, /WRONGPASS/], WRONG);
    for (const r of results.slice(2)) expectClearFailure(r, [`Redis at ${none} refused the credentials`, /NOAUTH/]);
    for (const r of results) expect(r.stderr).not.toContain(PASSWORD);
    // The right password works (the same commands, the same server).
    const ok = await runCli(['runs', '--json'], { prefix, url: server.url }, 30_000);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual([]);
    console.log(`[fault] wrong/no password: ${results.length} commands failed, ${results.map((r) => r.ms).join(', ')} ms beyond --help`);
  }, 60_000);

  it('a worker with a wrong password exits 2 with the redacted URL and WRONGPASS, not retrying forever', async () => {
    const url = `redis://:${WRONG}@127.0.0.1:${port}`;
    let t0 = Date.now();
    await runCli(['--help'], { prefix: uniquePrefix(), url }, 30_000);
    const startup = Date.now() - t0;
    t0 = Date.now();
    const worker = startCli(['worker', '--threads', '1'], { prefix: uniquePrefix(), url });
    procs.push(worker);
    const timer = setTimeout(() => worker.child.kill('SIGKILL'), 30_000);
    const { code } = await worker.exited;
    clearTimeout(timer);
    const ms = Date.now() - t0 - startup;
    const err = worker.stderr() + worker.stdout();
    expect(code, err).toBe(2);
    expect(ms).toBeLessThan(FAIL_FAST_MS);
    expect(err).toContain(`error: Redis at redis://***@127.0.0.1:${port} refused the credentials (check the password in --redis / REDIS_URL): WRONGPASS`);
    expect(err).not.toContain(WRONG);
    expect(err, 'no stack trace').not.toMatch(/^\s+at /m);
    console.log(`[fault] worker with a wrong password: exit ${code}, ${ms} ms beyond --help`);
  }, 60_000);
});
