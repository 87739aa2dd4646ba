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
import { NumgradError } from '../../src/core/errors.js';
import { buildProgram } from '../../src/producer/cli.js';
import type { Output } from '../../src/producer/output.js';
import { type CliProcess, type RedisServer, freePort, runCli, startCli, startRedisServer, uniquePrefix, workersOnline } from '../helpers/redis.js';
import { FAST_LOCKS, until } from './faults.js';

/**
 * How soon a command must fail once it asks Redis, measured in-process (Node's own start-up is seconds
 * on a busy 2-core box, and says nothing about numgrad); as processes the commands must merely exit.
 */
const FAIL_FAST_MS = 3_000;
/** A process that has not exited by then hangs. */
const HANG_MS = 20_000;
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

/** The command in this process (buildProgram, as `numgrad` runs it): the error it fails with and how soon. */
async function failsIn(args: string[], url: string): Promise<{ message: string; ms: number }> {
  const quiet: Output = { line: () => undefined, json: () => undefined, error: () => undefined };
  const program = buildProgram(quiet, { REDIS_URL: url, NUMGRAD_PREFIX: uniquePrefix() });
  const t0 = Date.now();
  try {
    await program.parseAsync(args, { from: 'user' });
  } catch (err) {
    expect(err, 'a NumgradError: printed as one line, exit 2').toBeInstanceOf(NumgradError);
    return { message: (err as Error).message, ms: Date.now() - t0 };
  }
  throw new Error(`numgrad ${args.join(' ')} succeeded against ${url}`);
}

/** The commands in turn, as processes, and in-process for the timing. */
async function failures(cmds: string[][], url: string): Promise<{ code: number | null; stderr: string; message: string; ms: number }[]> {
  const out: { code: number | null; stderr: string; message: string; ms: number }[] = [];
  for (const args of cmds) {
    const r = await runCli(args, { prefix: uniquePrefix(), url }, HANG_MS);
    out.push({ code: r.code, stderr: r.stderr, ...(await failsIn(args, url)) });
  }
  return out;
}

/** A failure that is one clear line: exit 2, the message, no stack trace, nothing secret; and fast. */
function expectClearFailure(r: { code: number | null; stderr: string; message: string; ms: number }, must: (string | RegExp)[], secret?: string): void {
  expect(r.code, `killed after ${HANG_MS} ms, it hung:\n${r.stderr}`).not.toBeNull();
  expect(r.code, r.stderr).toBe(2);
  expect(r.ms, `failed after ${r.ms} ms`).toBeLessThan(FAIL_FAST_MS);
  for (const m of must) {
    expect(r.stderr).toMatch(m);
    expect(r.message).toMatch(m);
  }
  expect(r.stderr.trim().split('\n'), 'one line').toHaveLength(1);
  expect(r.stderr, 'no stack trace').not.toMatch(/^\s+at /m);
  if (secret !== undefined) expect(r.stderr + r.message).not.toContain(secret);
}

const COMMANDS = [['runs'], ['gradient', '--backend', 'queue']];

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
    const results = [...(await failures(COMMANDS, plain)), ...(await failures(COMMANDS, withPassword))];
    for (const r of results.slice(0, 2)) expectClearFailure(r, [`Redis at ${plain} does not answer`, 'ECONNREFUSED']);
    for (const r of results.slice(2)) expectClearFailure(r, [`Redis at redis://***@127.0.0.1:${port} does not answer`, 'ECONNREFUSED'], PASSWORD);
    console.log(`[fault] Redis not listening: ${results.length} commands exited 2, failing ${results.map((r) => r.ms).join(', ')} ms after they started (in-process)`);
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
    const results = [...(await failures(COMMANDS, wrong)), ...(await failures(COMMANDS, none))];
    for (const r of results.slice(0, 2)) expectClearFailure(r, [`Redis at redis://***@127.0.0.1:${port} refused the credentials`, /WRONGPASS/], WRONG);
    for (const r of results.slice(2)) expectClearFailure(r, [`Redis at ${none} refused the credentials`, /NOAUTH/]);
    for (const r of results) expect(r.stderr + r.message).not.toContain(PASSWORD);
    // The right password works (the same commands, the same server).
    const ok = await runCli(['runs', '--json'], { prefix: uniquePrefix(), url: server.url }, 30_000);
    expect(ok.code, ok.stderr).toBe(0);
    expect(JSON.parse(ok.stdout)).toEqual([]);
    console.log(`[fault] wrong/no password: ${results.length} commands exited 2, failing ${results.map((r) => r.ms).join(', ')} ms after they started (in-process)`);
  }, 60_000);

  it('a worker with a wrong password exits 2 with the redacted URL and WRONGPASS, not retrying forever', async () => {
    const url = `redis://:${WRONG}@127.0.0.1:${port}`;
    const t0 = Date.now();
    const worker = startCli(['worker', '--threads', '1'], { prefix: uniquePrefix(), url });
    procs.push(worker);
    const timer = setTimeout(() => worker.child.kill('SIGKILL'), HANG_MS);
    const { code } = await worker.exited;
    clearTimeout(timer);
    const ms = Date.now() - t0;
    const err = worker.stderr() + worker.stdout();
    expect(code, err).toBe(2);
    expect(err).toContain(`error: numgrad worker: Redis at redis://***@127.0.0.1:${port} refused the credentials (check the password in --redis / REDIS_URL): WRONGPASS`);
    expect(err).not.toContain(WRONG);
    expect(err, 'no stack trace').not.toMatch(/^\s+at /m);
    console.log(`[fault] worker with a wrong password: exit ${code} ${ms} ms after it was started (Node start-up included)`);
  }, 60_000);
});
