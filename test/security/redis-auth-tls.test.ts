/**
 * Security of the Redis link and of the job edge:
 *  - a password-protected Redis (`redis-server --requirepass`, `redis://:pw@host:port`): a worker
 *    process and the CLI compute a gradient through it, at LOG_LEVEL=debug, and the password appears
 *    nowhere in anything either prints — nor when the password is wrong or missing (exit codes and
 *    messages say what is wrong, redacted);
 *  - TLS (`rediss://`) with a throwaway CA made here with openssl: the CA reaches Node through
 *    NODE_EXTRA_CA_CERTS (no numgrad option needed); without it the CLI refuses the certificate and
 *    says so instead of hanging. Skipped, with the reason, when openssl or Redis' TLS is missing;
 *  - payload size limits: what MAX_HIDDEN, MAX_BATCH, MAX_BATCH_TIMES_HIDDEN,
 *    MAX_CE_SAMPLES_TIMES_HIDDEN and the base64 length bounds let one job make a worker allocate,
 *    each bound met exactly and refused one past it; and a 20 MB payload fails naming its field on a
 *    worker that goes on serving.
 * The dashboard's token and basic auth are tested in test/integration/dashboard.test.ts
 * ("dashboard authentication").
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis, type RedisOptions } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CeShardData, FdShardData, GradientData, MAX_BATCH, MAX_BATCH_TIMES_HIDDEN, MAX_CE_SAMPLES_TIMES_HIDDEN, MAX_HIDDEN, parsePayload,
} from '../../src/core/contract.js';
import { ValidationError } from '../../src/core/errors.js';
import { paramCount } from '../../src/core/layout.js';
import { gatherBatch } from '../../src/core/dataset.js';
import { fdGradient } from '../../src/core/fd-engine.js';
import { initParams } from '../../src/core/network.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { loadMnist } from '../../src/io/mnist.js';
import { readParamsFile } from '../../src/io/npy-file.js';
import { redisAnswers } from '../../src/io/redis.js';
import { bytesOf } from '../helpers/data.js';
import { CLI, ROOT, type RedisServer, freePort, sleep, startRedisServer, uniquePrefix, workersOnline } from '../helpers/redis.js';

/** A password with characters a URL must encode, so both its raw and its encoded form are searched for. */
const PASSWORD = `Np-${randomBytes(6).toString('hex')}!*~`;
const ENCODED = encodeURIComponent(PASSWORD);
const WRONG = `Wrong-${randomBytes(6).toString('hex')}`;

interface Proc {
  readonly child: ChildProcess;
  output(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** The compiled CLI with our environment (URL, prefix, debug logs, extra CA); stdout and stderr together. */
function startCli(args: string[], env: Record<string, string | undefined>): Proc {
  const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'debug', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('close', (code, signal) => res({ code, signal })));
  return { child, output: () => out, exited };
}

async function runCli(args: string[], env: Record<string, string | undefined>, timeoutMs = 60_000): Promise<{ code: number | null; signal: NodeJS.Signals | null; output: string }> {
  const p = startCli(args, env);
  const timer = setTimeout(() => p.child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await p.exited;
  clearTimeout(timer);
  return { code, signal, output: p.output() };
}

/** `numgrad worker` with our environment; resolves once it is online (asked over `opts`). */
async function startWorker(url: string, prefix: string, env: Record<string, string | undefined>, opts: RedisOptions = {}): Promise<Proc> {
  const p = startCli(['worker', '--threads', '1'], { REDIS_URL: url, NUMGRAD_PREFIX: prefix, ...env });
  const deadline = Date.now() + 30_000;
  while ((await workersOnline(prefix, url, opts).catch(() => 0)) < 1) {
    if (p.child.exitCode !== null || Date.now() > deadline) {
      p.child.kill('SIGKILL');
      throw new Error(`the worker did not come online:\n${p.output().slice(-2000)}`);
    }
    await sleep(100);
  }
  return p;
}

async function stop(p: Proc | undefined): Promise<number | null> {
  if (p === undefined) return null;
  if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGTERM');
  return (await p.exited).code;
}

async function cleanupKeys(url: string, prefix: string, opts: RedisOptions = {}): Promise<number> {
  const conn = new Redis(url, { maxRetriesPerRequest: 1, ...opts });
  try {
    const keys = await conn.keys(`${prefix}:*`); // a server of this test's own: KEYS is fine
    if (keys.length > 0) await conn.del(...keys);
    return (await conn.keys(`${prefix}:*`)).length;
  } finally {
    conn.disconnect();
  }
}

/** Throws when `text` carries the password in any form a URL or a log could hold it. */
function expectNoPassword(text: string, what: string): void {
  for (const secret of [PASSWORD, ENCODED, WRONG]) {
    if (text.includes(secret)) throw new Error(`${what} printed a password (${secret === WRONG ? 'the wrong one' : 'the real one'}):\n${text.slice(Math.max(0, text.indexOf(secret) - 300), text.indexOf(secret) + 100)}`);
  }
}

/** The gradient the CLI's defaults here describe (hidden 10, seed 0, batch 20), computed in this thread. */
function expectedGradient(): Float64Array {
  const train = loadMnist('train');
  return fdGradient(initParams(10, new Rng(0)), gatherBatch(train, miniBatchIndices(0, 0, 20, train.count)), 1e-4);
}

describe('a password-protected Redis (requirepass)', () => {
  let server: RedisServer;
  let url: string;
  let worker: Proc | undefined;
  const prefix = uniquePrefix();
  const outDir = mkdtempSync(join(tmpdir(), 'numgrad-sec-'));

  beforeAll(async () => {
    server = await startRedisServer({ requirepass: PASSWORD });
    url = server.url;
    expect(url).toContain(`:${ENCODED}@`);
  });
  afterAll(async () => {
    await stop(worker);
    expect(await cleanupKeys(url, prefix)).toBe(0);
    await server?.stop();
    rmSync(outDir, { recursive: true, force: true });
  });

  it('a worker and the CLI compute a gradient through it at LOG_LEVEL=debug; neither prints the password', async () => {
    worker = await startWorker(url, prefix, {});
    const out = join(outDir, 'g.npy');
    const r = await runCli(['gradient', '--backend', 'queue', '--hidden', '10', '--batch', '20', '--out', out, '--json'], { REDIS_URL: url, NUMGRAD_PREFIX: prefix });
    expect(r.code, r.output).toBe(0);
    expect(bytesOf(readParamsFile(out)).equals(bytesOf(expectedGradient()))).toBe(true);
    // The URL is shown, redacted.
    expect(r.output).toMatch(/backend: queue at redis:\/\/\*\*\*@127\.0\.0\.1:\d+/);
    expect(worker.output()).toMatch(/"redis":"redis:\/\/\*\*\*@127\.0\.0\.1:\d+"/);
    expectNoPassword(r.output, 'numgrad gradient');
    // A short training run too: the worker logs each step at debug level, the CLI follows the run.
    const t = await runCli(['train', '--backend', 'queue', '--iters', '3', '--hidden', '5', '--batch', '10', '--eval-every', '2', '--out', join(outDir, 'train'), '--run-id', 'sec-run'], { REDIS_URL: url, NUMGRAD_PREFIX: prefix });
    expect(t.code, t.output).toBe(0);
    expect(worker.output()).toMatch(/"level":20,.*"msg":"step"/); // debug lines were written, so there was something to leak
    expectNoPassword(t.output, 'numgrad train');
    expectNoPassword(worker.output(), 'numgrad worker');
  }, 120_000);

  it('the same with --redis on the command line instead of REDIS_URL', async () => {
    const r = await runCli(['--redis', url, 'evaluate', '--backend', 'queue', '--hidden', '10', '--split', 'test', '--json'], { REDIS_URL: undefined, NUMGRAD_PREFIX: prefix });
    expect(r.code, r.output).toBe(0);
    expectNoPassword(r.output, 'numgrad evaluate');
  });

  it('a wrong or missing password: the CLI exits non-zero saying so, redacted; a worker exits 2; neither prints a password', async () => {
    const wrongUrl = url.replace(ENCODED, WRONG);
    const noPass = url.replace(`:${ENCODED}@`, '');
    for (const u of [wrongUrl, noPass]) {
      const r = await runCli(['gradient', '--backend', 'queue', '--hidden', '10', '--batch', '20'], { REDIS_URL: u, NUMGRAD_PREFIX: prefix }, 30_000);
      expect(r.signal).toBeNull();
      expect(r.code).not.toBe(0);
      expect(r.output).toMatch(/WRONGPASS|NOAUTH|credentials|password|auth/i);
      expect(r.output).not.toMatch(/\n\s+at /);
      expectNoPassword(r.output, `numgrad gradient with ${u === noPass ? 'no' : 'a wrong'} password`);
      const w = await runCli(['worker', '--threads', '1'], { REDIS_URL: u, NUMGRAD_PREFIX: prefix }, 30_000);
      expect(w.signal, w.output).toBeNull();
      expect(w.code, w.output).toBe(2);
      expectNoPassword(w.output, `numgrad worker with ${u === noPass ? 'no' : 'a wrong'} password`);
    }
    // The real worker is untouched by all that.
    expect(worker?.child.exitCode).toBeNull();
  }, 120_000);

  it('a 20 MB payload fails at once naming its field; the worker goes on serving', async () => {
    const conn = new Redis(url, { maxRetriesPerRequest: null });
    const q = new Queue('shards', { connection: conn, prefix });
    try {
      const huge = 'A'.repeat(20 * 1024 * 1024);
      const job = await q.add('fd-shard', { v: 1, params: 'f'.repeat(64), hidden: 10, batch: { kind: 'indices', count: 20, indices: huge }, h: 1e-4, start: 0, end: 10 }, { attempts: 3 });
      for (let k = 0; k < 300 && !(await job.isFailed()) && !(await job.isCompleted()); k++) await sleep(100);
      const done = await q.getJob(String(job.id));
      expect(done?.failedReason).toBe('fd-shard: data.batch.indices must be of length ≤ 320000, got "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA..."');
      expect(done?.attemptsMade).toBe(1);
      await done?.remove();
    } finally {
      await q.close();
      conn.disconnect();
    }
    const r = await runCli(['gradient', '--backend', 'queue', '--hidden', '10', '--batch', '20', '--json'], { REDIS_URL: url, NUMGRAD_PREFIX: prefix });
    expect(r.code, r.output).toBe(0);
    expect(worker?.child.exitCode).toBeNull();
    expectNoPassword(worker?.output() ?? '', 'numgrad worker');
  }, 60_000);
});

// ---- TLS ------------------------------------------------------------------------------------------

/** Why TLS cannot be tested here, or undefined when it can. */
function tlsUnavailable(): string | undefined {
  const ossl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  if (ossl.status !== 0) return `openssl is not available (${(ossl.error?.message ?? ossl.stderr).trim()})`;
  // A build without TLS rejects the option itself; one with it complains about the missing files instead.
  const probe = spawnSync('redis-server', ['--port', '0', '--tls-port', '1', '--tls-cert-file', '/nonexistent', '--tls-key-file', '/nonexistent'], { encoding: 'utf8', timeout: 10_000 });
  const text = `${probe.stdout}${probe.stderr}`;
  if (probe.error !== undefined) return `redis-server does not run (${probe.error.message})`;
  if (/Bad directive|unknown|not supported|without TLS|BUILD_TLS/i.test(text)) return `redis-server was built without TLS (${text.trim().split('\n').pop()})`;
  return undefined;
}

/** A CA and a server certificate for 127.0.0.1 and localhost (EC P-256, valid one day) in `dir`. */
function makeCerts(dir: string): { ca: string; cert: string; key: string } {
  const run = (args: string[]): void => {
    const r = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run(['req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=numgrad test CA']);
  run(['req', ...ec, '-keyout', 'server.key', '-out', 'server.csr', '-subj', '/CN=127.0.0.1']);
  writeFileSync(join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  run(['x509', '-req', '-in', 'server.csr', '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'server.crt', '-days', '1', '-extfile', 'ext.cnf']);
  return { ca: join(dir, 'ca.crt'), cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

const TLS_SKIP = tlsUnavailable();

describe.skipIf(TLS_SKIP !== undefined)(`TLS (rediss://) with a CA of the test's own${TLS_SKIP ? ` — skipped: ${TLS_SKIP}` : ''}`, () => {
  const dir = mkdtempSync(join(tmpdir(), 'numgrad-tls-'));
  const prefix = uniquePrefix();
  let server: ChildProcess;
  let serverLog = '';
  let url: string;
  let certs: { ca: string; cert: string; key: string };
  let tlsOpts: RedisOptions;
  let worker: Proc | undefined;

  beforeAll(async () => {
    certs = makeCerts(dir);
    const port = await freePort();
    // TLS only (the plain port off), and a password too: rediss://:pw@ is what a deployment would use.
    server = spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', certs.cert, '--tls-key-file', certs.key, '--tls-ca-cert-file', certs.ca, '--tls-auth-clients', 'no', '--requirepass', PASSWORD, '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    server.stdout?.on('data', (d: Buffer) => (serverLog += d.toString()));
    server.stderr?.on('data', (d: Buffer) => (serverLog += d.toString()));
    url = `rediss://:${ENCODED}@127.0.0.1:${port}`;
    tlsOpts = { tls: { ca: readFileSync(certs.ca) } };
    const deadline = Date.now() + 10_000;
    for (;;) {
      const c = new Redis(url, { ...tlsOpts, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
      c.on('error', () => undefined);
      const ok = await c.connect().then(() => c.ping()).then((p) => p === 'PONG', () => false);
      c.disconnect();
      if (ok) break;
      if (server.exitCode !== null || Date.now() > deadline) throw new Error(`redis-server with TLS did not start:\n${serverLog.slice(-2000)}`);
      await sleep(100);
    }
  }, 30_000);

  afterAll(async () => {
    await stop(worker);
    if (url !== undefined) expect(await cleanupKeys(url, prefix, tlsOpts)).toBe(0);
    if (server !== undefined && server.exitCode === null) {
      const gone = new Promise((r) => server.once('exit', r));
      server.kill('SIGTERM');
      await gone;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it('a worker and the CLI compute a gradient through rediss:// with the CA given by NODE_EXTRA_CA_CERTS; no password printed', async () => {
    worker = await startWorker(url, prefix, { NODE_EXTRA_CA_CERTS: certs.ca }, tlsOpts);
    const out = join(dir, 'g.npy');
    const r = await runCli(['gradient', '--backend', 'queue', '--hidden', '10', '--batch', '20', '--out', out, '--json'], { REDIS_URL: url, NUMGRAD_PREFIX: prefix, NODE_EXTRA_CA_CERTS: certs.ca });
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/backend: queue at rediss:\/\/\*\*\*@127\.0\.0\.1:\d+/);
    expect(bytesOf(readParamsFile(out)).equals(bytesOf(expectedGradient()))).toBe(true);
    expectNoPassword(r.output, 'numgrad gradient over TLS');
    expectNoPassword(worker.output(), 'numgrad worker over TLS');
    // The port speaks TLS only: a plain connection to it gets no answer.
    expect((await redisAnswers(url.replace('rediss://', 'redis://'), 1_000)).ok).toBe(false);
  }, 90_000);

  it('without the CA the CLI refuses the self-signed chain and says so (exit non-zero, no hang, no password)', async () => {
    const r = await runCli(['gradient', '--backend', 'queue', '--hidden', '10', '--batch', '20'], { REDIS_URL: url, NUMGRAD_PREFIX: prefix, NODE_EXTRA_CA_CERTS: undefined }, 30_000);
    expect(r.signal).toBeNull();
    expect(r.code).not.toBe(0);
    expect(r.output).toMatch(/certificate|self[- ]signed|UNABLE_TO_VERIFY|unable to verify/i);
    expectNoPassword(r.output, 'numgrad gradient with an untrusted certificate');
  }, 60_000);
});

// ---- payload size limits ----------------------------------------------------------------------------

/** Bytes of base64 text for `n` bytes of data. */
const b64 = (n: number): number => 4 * Math.ceil(n / 3);
const refused = (fn: () => unknown, field: RegExp): void => {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(ValidationError);
  expect((err as Error).message).toMatch(field);
};

describe('payload size limits: what one job can make a worker allocate', () => {
  const version = 'a'.repeat(64);
  const fd = (o: Record<string, unknown>) => ({ v: 1, params: version, hidden: 10, batch: { kind: 'seeded', seed: 0, step: 0, size: 20 }, h: 1e-4, start: 0, end: 10, ...o });
  const ce = (o: Record<string, unknown>) => ({ v: 1, params: version, hidden: 10, split: 'train', start: 0, end: 10, ...o });

  it('the bounds, as figures: params ≤ 26 MB, a gradient plan ≤ ~560 MB, a ce-shard forward pass ≤ ~330 MB, decoded indices ≤ 240 kB', () => {
    expect(MAX_HIDDEN).toBe(4096);
    expect(8 * paramCount(MAX_HIDDEN)).toBe(26_050_640);
    expect(MAX_BATCH).toBe(60_000);
    expect(MAX_BATCH_TIMES_HIDDEN).toBe(1_000_000);
    // The plan's memo: ~70 rows of H float64 per sample (see contract.ts), at most 1e6 sample·units.
    expect(70 * 8 * MAX_BATCH_TIMES_HIDDEN).toBe(560_000_000);
    // A ce-shard's forward pass: a1 and z, each samples × H float64.
    expect(2 * 8 * MAX_CE_SAMPLES_TIMES_HIDDEN).toBe(327_680_000);
    expect(4 * MAX_BATCH).toBe(240_000);
  });

  it('hidden: 4096 accepted, 4097 refused; an explicit batch: 60000 accepted, 60001 refused', () => {
    expect(parsePayload(FdShardData, 'fd-shard', fd({ hidden: MAX_HIDDEN })).hidden).toBe(MAX_HIDDEN);
    refused(() => parsePayload(FdShardData, 'fd-shard', fd({ hidden: MAX_HIDDEN + 1 })), /^fd-shard: data\.hidden must be ≤ 4096, got 4097$/);
    const full = { kind: 'indices', count: MAX_BATCH, indices: 'A'.repeat(b64(4 * MAX_BATCH)) };
    expect(parsePayload(FdShardData, 'fd-shard', fd({ hidden: 16, batch: full })).batch).toEqual(full);
    refused(() => parsePayload(FdShardData, 'fd-shard', fd({ batch: { ...full, count: MAX_BATCH + 1 } })), /^fd-shard: data\.batch\.count must be ≤ 60000, got 60001$/);
  });

  it('a gradient: batch size × hidden ≤ 1e6 (100 × 10000 refused at H = 4096: one job would ask for ~2 GB of plan)', () => {
    expect(parsePayload(FdShardData, 'fd-shard', fd({ hidden: 4000, batch: { kind: 'seeded', seed: 0, step: 0, size: 250 } })).hidden).toBe(4000);
    refused(() => parsePayload(FdShardData, 'fd-shard', fd({ hidden: 4000, batch: { kind: 'seeded', seed: 0, step: 0, size: 251 } })), /^fd-shard: data\.batch must be a batch with size × hidden ≤ 1000000 \(here 251 × 4000\)/);
  });

  it("a ce-shard: samples × hidden ≤ 5000 × 4096 (numgrad's own evaluation shards fit at any H; 60000 samples at H = 4096 would need 4 GB)", () => {
    expect(parsePayload(CeShardData, 'ce-shard', ce({ hidden: MAX_HIDDEN, end: 5000 })).end).toBe(5000);
    refused(() => parsePayload(CeShardData, 'ce-shard', ce({ hidden: MAX_HIDDEN, end: 5001 })), /^ce-shard: data\.end must be ≤ start \+ 5000 \(a shard's samples × hidden ≤ 20480000, here 5001 × 4096\)/);
    refused(() => parsePayload(CeShardData, 'ce-shard', ce({ hidden: MAX_HIDDEN, end: 60_000 })), /^ce-shard: data\.end must be ≤ start \+ 5000/);
    expect(parsePayload(CeShardData, 'ce-shard', ce({ hidden: 341, end: 60_000 })).end).toBe(60_000);
  });

  it('base64 strings are bounded before they are decoded: indices ≤ 320000 characters (60000 int32), a parent holder ≤ 200', () => {
    const at = (n: number) => ({ kind: 'indices', count: 20, indices: 'A'.repeat(n) });
    // At the bound the schema lets it through (the count check on decoding then refuses 240000 bytes for 20 indices).
    expect(() => parsePayload(FdShardData, 'fd-shard', fd({ batch: at(b64(4 * MAX_BATCH)) }))).not.toThrow();
    refused(() => parsePayload(FdShardData, 'fd-shard', fd({ batch: at(b64(4 * MAX_BATCH) + 1) })), /^fd-shard: data\.batch\.indices must be of length ≤ 320000, got "A{57}\.\.\."$/);
    refused(() => parsePayload(GradientData, 'gradient', { v: 1, params: version, hidden: 10, batch: { kind: 'seeded', seed: 0, step: 0, size: 20 }, h: 1e-4, holder: 'h'.repeat(201) }), /^gradient: data\.holder must be of length ≤ 200/);
  });
});
