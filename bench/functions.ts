/**
 * Registered functions beside their anchors, side by side in one run (issue 15, item 5):
 *  - CPU-bound: a ~1 ms function (bench/functions/burn.mjs), n = 1,000, central differences: the
 *    notebook's loop in JS on one thread, the local pool with 2 threads, the queue with 2 worker
 *    processes × 1 thread, and, in the same rounds, two independent copies of the loop at once (the
 *    parallelism the machine delivers); SciPy's approx_derivative on a ~1 ms Python function, in one
 *    process and with workers=Pool(2).map (bench/scipy_functions.py);
 *  - I/O-bound: an evaluation awaiting a local HTTP stub that answers in 20 ms, n = 500, central,
 *    2 worker processes with 32 evaluations in flight each, against the serial time;
 *  - Rosenbrock, n = 2,000, 3-point: SciPy in one process and with Pool(2), numgrad in one thread,
 *    local (2 threads) and queue (2 × 1).
 *
 *   npm run bench:functions [-- --rounds 3] [-- --write]     (also part of npm run bench)
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { Command } from 'commander';
import { PURE_BUILTINS } from '../src/core/functions.js';
import { approxDerivative } from '../src/core/numdiff.js';
import { numericalGradient } from '../src/core/numerical.js';
import { Rng } from '../src/core/prng.js';
import { intOption } from '../src/producer/options.js';
import { FunctionClient } from '../src/producer/function-client.js';
import { diffBatch } from '../src/workers/threads/function-batch.js';
import { FunctionPool } from '../src/workers/threads/function-pool.js';
import { REPO, startRedis } from './contenders.js';
import { parseFlags, runIfEntry } from './entry.js';
import { NODE_FLAGS } from '../src/producer/node-flags.js';

const CLI = join(REPO, 'dist/src/producer/cli.js');
const DIR = join(REPO, 'bench/functions');
const SCIPY = join(REPO, 'bench/scipy_functions.py');
const med = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const time = async (f: () => unknown): Promise<number> => {
  const t0 = performance.now();
  await f();
  return (performance.now() - t0) / 1000;
};

export interface FunctionsReport {
  load: number[];
  cpu: { evalMs: number; serial: number[]; local: number[]; queue: number[]; independent: number[]; scipy?: { one: number[]; two: number[]; evalMs: number } };
  io: { serialPerEval: number; queue: number[]; bare: number[]; evaluations: number };
  rosen: { serial: number[]; local: number[]; queue: number[]; scipy?: { one: number[]; two: number[] } };
}

/** `count` worker processes × 1 thread with `--functions bench/functions`, online under `prefix`. */
async function workers(url: string, prefix: string, count: number, concurrency: number): Promise<{ stop: () => Promise<void> }> {
  const kids: ChildProcess[] = [];
  for (let w = 0; w < count; w++) {
    kids.push(spawn(process.execPath, [...NODE_FLAGS, CLI, 'worker', '--threads', '1', '--concurrency', String(concurrency), '--functions', DIR], { env: { ...process.env, REDIS_URL: url, NUMGRAD_PREFIX: prefix, LOG_LEVEL: 'warn' }, stdio: 'ignore' }));
  }
  const conn = new Redis(url, { maxRetriesPerRequest: null });
  const q = new Queue('shards', { connection: conn, prefix });
  for (let i = 0; i < 600 && (await q.getWorkersCount()) < count; i++) await new Promise((r) => setTimeout(r, 100));
  await q.close();
  conn.disconnect();
  return {
    stop: async () => {
      for (const c of kids) c.kill('SIGTERM');
      await Promise.all(kids.map((c) => new Promise((r) => (c.exitCode !== null ? r(null) : c.once('exit', r)))));
    },
  };
}

/** Two copies of the notebook's loop at once, each on a thread of its own: the wall time of both. */
function independentLoops(x: Float64Array, iters: number): Promise<number> {
  const code = `
    const { workerData, parentPort } = require('node:worker_threads');
    import(workerData.burn).then(({ f }) => import(workerData.numerical).then(({ numericalGradient }) => {
      numericalGradient((x) => f(x, { iters: workerData.iters }), Float64Array.from(workerData.x));
      parentPort.postMessage('done');
    }));`;
  const data = { burn: pathToFileURL(join(DIR, 'burn.mjs')).href, numerical: pathToFileURL(join(REPO, 'dist/src/core/numerical.js')).href, iters, x };
  return time(() => Promise.all([0, 1].map(() => new Promise((resolve, reject) => {
    const w = new Worker(code, { eval: true, workerData: data });
    w.once('message', () => void w.terminate().then(resolve));
    w.once('error', reject);
  }))));
}

function scipy(args: string[]): { one: number[]; two: number[]; evalSeconds: number | null } | undefined {
  const r = spawnSync('python3', [SCIPY, ...args], { encoding: 'utf8', env: { ...process.env, OPENBLAS_NUM_THREADS: '1', OMP_NUM_THREADS: '1' } });
  if (r.status !== 0) return undefined;
  return JSON.parse(r.stdout.trim().split('\n').pop() as string) as { one: number[]; two: number[]; evalSeconds: number | null };
}

export async function benchFunctions(opts: { rounds: number; redisUrl: string }, log: (l: string) => void = () => undefined): Promise<FunctionsReport> {
  const { f: burnF } = (await import(pathToFileURL(join(DIR, 'burn.mjs')).href)) as { f: (x: Float64Array, a: { iters: number }) => number };
  const rng = new Rng(15);
  const x = Float64Array.from({ length: 1000 }, () => 2 * rng.nextFloat() - 1);
  // Calibrate: iterations for ~1 ms per evaluation on this machine, now.
  // The fastest of 5 batches of 10: what an evaluation costs when the machine lets it run.
  const perEval = async (iters: number): Promise<number> => {
    let best = Infinity;
    for (let b = 0; b < 5; b++) best = Math.min(best, (await time(() => { for (let k = 0; k < 10; k++) burnF(x, { iters }); })) / 10);
    return best;
  };
  // Warm up first, so the calibration measures the optimized function the rows will run.
  for (let k = 0; k < 300; k++) burnF(x, { iters: 20_000 });
  let iters = 20_000;
  for (let c = 0; c < 4; c++) iters = Math.max(1000, Math.round((iters * 1e-3) / (await perEval(iters))));
  const evalMs = (await perEval(iters)) * 1000;
  log(`functions: CPU-bound, ${iters} iterations ≈ ${evalMs.toFixed(2)} ms per evaluation, n = 1000, ${opts.rounds} rounds…`);
  const pool = new FunctionPool({ threads: 2, functionsDir: DIR });
  const cpuWorkers = await workers(opts.redisUrl, 'ngbenchfn-cpu', 2, 2);
  const ioWorkers = await workers(opts.redisUrl, 'ngbenchfn-io', 2, 32);
  const cpuClient = new FunctionClient({ redisUrl: opts.redisUrl, prefix: 'ngbenchfn-cpu' });
  const ioClient = new FunctionClient({ redisUrl: opts.redisUrl, prefix: 'ngbenchfn-io' });
  const stub = createServer((_req, res) => void setTimeout(() => res.end('1'), 20)).listen(0, '127.0.0.1');
  await new Promise((r) => stub.once('listening', r));
  const port = (stub.address() as AddressInfo).port;
  const rep: FunctionsReport = { load: [loadavg()[0]], cpu: { evalMs, serial: [], local: [], queue: [], independent: [] }, io: { serialPerEval: NaN, queue: [], bare: [], evaluations: 1000 }, rosen: { serial: [], local: [], queue: [] } };
  try {
    const call = { fn: 'burn', args: { iters } };
    await diffBatch(pool, call, x.subarray(0, 10), 1, 10, { method: 'central' });
    await cpuClient.diff(call, x.subarray(0, 10), 1, 10, { method: 'central' }, 2);
    for (let r = 0; r < opts.rounds; r++) {
      rep.cpu.serial.push(await time(() => numericalGradient((v) => burnF(v, { iters }), Float64Array.from(x))));
      rep.cpu.local.push(await time(() => diffBatch(pool, call, x, 1, 1000, { method: 'central' })));
      rep.cpu.queue.push(await time(() => cpuClient.diff(call, x, 1, 1000, { method: 'central' }, 32)));
      rep.cpu.independent.push(await independentLoops(x, iters));
      log(`  round ${r + 1}: serial ${rep.cpu.serial[r].toFixed(2)} s, local 2 threads ${rep.cpu.local[r].toFixed(2)} s, queue 2 × 1 ${rep.cpu.queue[r].toFixed(2)} s, 2 independent loops ${rep.cpu.independent[r].toFixed(2)} s`);
    }
    const sc = scipy(['cpu', '1000', '1', String(opts.rounds)]);
    if (sc) rep.cpu.scipy = { one: sc.one, two: sc.two, evalMs: (sc.evalSeconds ?? NaN) * 1000 };
    log('functions: I/O-bound, a 20 ms HTTP stub, n = 500…');
    const { f: stubF } = (await import(pathToFileURL(join(DIR, 'http-stub.mjs')).href)) as { f: (x: Float64Array, a: { port: number }) => Promise<number> };
    const xs = x.slice(0, 500);
    const SERIAL = 100;
    rep.io.serialPerEval = (await time(async () => { for (let e = 0; e < SERIAL; e++) await stubF(xs, { port }); })) / SERIAL;
    await ioClient.diff({ fn: 'http-stub', args: { port } }, xs.subarray(0, 4), 1, 4, { method: 'central' }, 2);
    for (let r = 0; r < opts.rounds; r++) {
      rep.io.queue.push(await time(() => ioClient.diff({ fn: 'http-stub', args: { port } }, xs, 1, 500, { method: 'central' }, 16)));
      // What this machine gives the same 1,000 requests with no numgrad at all: one process, 64 in flight.
      let next = 0;
      rep.io.bare.push(await time(() => Promise.all(Array.from({ length: 64 }, async () => {
        while (next < 1000) {
          next++;
          await stubF(xs, { port });
        }
      }))));
    }
    log('functions: Rosenbrock, n = 2000, 3-point…');
    const xr = Float64Array.from({ length: 2000 }, () => 4 * rng.nextFloat() - 2);
    const rcall = { fn: 'rosenbrock' };
    await diffBatch(pool, rcall, xr, 1, 2000, { method: '3-point' });
    for (let r = 0; r < opts.rounds; r++) {
      rep.rosen.serial.push(await time(() => approxDerivative(PURE_BUILTINS.rosenbrock, xr, { method: '3-point' })));
      rep.rosen.local.push(await time(() => diffBatch(pool, rcall, xr, 1, 2000, { method: '3-point' })));
      rep.rosen.queue.push(await time(() => cpuClient.diff(rcall, xr, 1, 2000, { method: '3-point' }, 8)));
    }
    const sr = scipy(['rosen', '2000', String(opts.rounds)]);
    if (sr) rep.rosen.scipy = { one: sr.one, two: sr.two };
    rep.load.push(loadavg()[0]);
  } finally {
    stub.close();
    await Promise.all([cpuClient.close(), ioClient.close(), pool.close()]);
    await Promise.all([cpuWorkers.stop(), ioWorkers.stop()]);
  }
  return rep;
}

const s = (v: number): string => `${v.toFixed(3)} s`;
const list = (xs: number[]): string => xs.map((v) => v.toFixed(3)).join(', ');

/** The section of docs/BENCHMARKS.md. */
export function functionLines(r: FunctionsReport): string[] {
  const c = r.cpu;
  const serial = med(c.serial);
  const P = (2 * serial) / med(c.independent);
  const bound = (nominal: number): number => (P < 2 ? Math.max(nominal, 1.06 / P) : nominal);
  const local = med(c.local) / serial;
  const queue = med(c.queue) / serial;
  const L = ['## Registered functions (issue 15)', ''];
  L.push(`Measured with a 1-minute load average of ${r.load.map((v) => v.toFixed(1)).join(' → ')} on this ${cpus().length}-core machine (other sessions' work included); every ratio is between rows of this same run.`, '');
  L.push(`CPU-bound: \`burn\` (bench/functions/burn.mjs) at ${c.evalMs.toFixed(2)} ms per evaluation, n = 1,000, central differences (2,000 evaluations); medians of ${c.serial.length} rounds, each round running every row once, one after another:`, '');
  L.push('| | median | runs | / serial |', '|---|---:|---|---:|');
  L.push(`| the notebook's loop in JS, 1 thread | ${s(serial)} | ${list(c.serial)} | 1 |`);
  L.push(`| numgrad local pool, 2 threads | ${s(med(c.local))} | ${list(c.local)} | **${local.toFixed(3)}×** |`);
  L.push(`| numgrad queue, 2 worker processes × 1 thread, 32 shards | ${s(med(c.queue))} | ${list(c.queue)} | **${queue.toFixed(3)}×** |`);
  L.push(`| two independent copies of the loop at once (wall) | ${s(med(c.independent))} | ${list(c.independent)} | machine delivers ${P.toFixed(2)}× |`);
  if (c.scipy) {
    const so = med(c.scipy.one);
    L.push(`| SciPy approx_derivative (3-point, 2,000 evaluations) of a ${c.scipy.evalMs.toFixed(2)} ms Python function, 1 process | ${s(so)} | ${list(c.scipy.one)} | 1 |`);
    L.push(`| SciPy, workers=Pool(2).map | ${s(med(c.scipy.two))} | ${list(c.scipy.two)} | **${(med(c.scipy.two) / so).toFixed(3)}×** |`);
  }
  L.push('');
  L.push(`Bounds: local ≤ 0.53×, queue ≤ 0.56× (with the machine delivering ${P.toFixed(2)}× to two independent loops${P < 2 ? `, within 6% of 1/${P.toFixed(2)}: ≤ ${bound(0.53).toFixed(3)}× and ≤ ${bound(0.56).toFixed(3)}×` : ''}): local ${local <= bound(0.53) ? 'holds' : 'does NOT hold'}, queue ${queue <= bound(0.56) ? 'holds' : 'does NOT hold'}.`);
  if (c.scipy) {
    const sr = med(c.scipy.two) / med(c.scipy.one);
    L.push(`Overhead against SciPy's: SciPy's 2 processes take ${sr.toFixed(3)}× its 1; numgrad's 2 threads ${local.toFixed(3)}× and 2 workers ${queue.toFixed(3)}× (${local < sr && queue < sr ? 'both smaller' : local < sr ? 'local smaller, queue not' : 'NOT smaller'}).`);
  }
  const io = r.io;
  const ioSerial = io.serialPerEval * io.evaluations;
  L.push('', `I/O-bound: \`http-stub\` (bench/functions/http-stub.mjs) awaiting a local HTTP stub that answers in 20 ms, n = 500, central (1,000 evaluations). Serial: ${(io.serialPerEval * 1000).toFixed(1)} ms per evaluation over 100 sequential evaluations, so ${s(ioSerial)} for 1,000. Through the queue, 2 worker processes × 1 thread, \`--concurrency 32\`, 16 shards: ${s(med(io.queue))} (runs ${list(io.queue)}), **${(med(io.queue) / ioSerial).toFixed(3)}×** the serial time (bound 0.05×: ${med(io.queue) / ioSerial <= 0.05 ? 'holds' : 'does NOT hold'}). The same 1,000 requests from one plain loop with 64 in flight and no numgrad (the machine's own limit in this window): ${s(med(io.bare))} (runs ${list(io.bare)}), ${(med(io.bare) / ioSerial).toFixed(3)}× the serial time.`);
  const ro = r.rosen;
  L.push('', 'Rosenbrock, n = 2,000, 3-point (4,000 evaluations):', '', '| | median | runs |', '|---|---:|---|');
  if (ro.scipy) {
    L.push(`| SciPy approx_derivative, 1 process | ${s(med(ro.scipy.one))} | ${list(ro.scipy.one)} |`);
    L.push(`| SciPy, workers=Pool(2).map | ${s(med(ro.scipy.two))} | ${list(ro.scipy.two)} |`);
  }
  L.push(`| numgrad approxDerivative, 1 thread in-process | ${s(med(ro.serial))} | ${list(ro.serial)} |`);
  L.push(`| numgrad local pool, 2 threads | ${s(med(ro.local))} | ${list(ro.local)} |`);
  L.push(`| numgrad queue, 2 worker processes × 1 thread, 8 shards | ${s(med(ro.queue))} | ${list(ro.queue)} |`);
  L.push('');
  return L;
}

async function main(argv: string[]): Promise<number> {
  const program = new Command('bench:functions')
    .option('--rounds <n>', 'rounds (every row once per round)', '3')
    .option('--write', "replace this section of docs/BENCHMARKS.md (the other sections are left as they are)");
  const usage = parseFlags(program, argv);
  if (usage !== undefined) return usage;
  const rounds = intOption('bench:functions', '--rounds', program.opts<{ rounds: string }>().rounds, 1, 100);
  const redis = await startRedis();
  const url = redis?.url ?? process.env.REDIS_URL;
  if (url === undefined) throw new Error('bench:functions needs redis-server on PATH or REDIS_URL');
  try {
    const lines = functionLines(await benchFunctions({ rounds, redisUrl: url }, (l) => console.log(l)));
    console.log(lines.join('\n'));
    if (program.opts<{ write?: boolean }>().write) {
      const path = join(REPO, 'docs/BENCHMARKS.md');
      const doc = readFileSync(path, 'utf8');
      const at = doc.indexOf(lines[0]);
      const end = at < 0 ? -1 : doc.indexOf('\n## ', at + lines[0].length);
      const section = `${lines.join('\n')}\n`;
      writeFileSync(path, at < 0 ? `${doc.trimEnd()}\n\n${section}` : `${doc.slice(0, at)}${section}${end < 0 ? '' : doc.slice(end + 1)}`);
      console.log(`wrote ${path}`);
    }
  } finally {
    redis?.stop();
  }
  return 0;
}

runIfEntry(import.meta.url, 'bench:functions', main);
