/**
 * `npm run bench:network`: what round trips between the workers and Redis cost a training step, and
 * whether the step model of docs/SCALING.md predicts it.
 *
 * Workers on other machines see Redis across a network. Here the workers (`numgrad worker`, W
 * processes of T threads) reach a redis-server of the bench's own through a delaying proxy
 * (bench/delay-proxy.ts: each chunk a worker sends is held `d` ms, as `tc netem delay d` on the
 * worker's interface would; this kernel has no netem), while `numgrad train --backend queue` (the
 * producer) talks to Redis directly. One seeded run of N iterations; from step 10 the delay rotates
 * through the settings in windows of 6 steps, so every setting sees the same stretch of machine
 * load, side by side in one run. A step is completed(t) − completed(t − 1) of the train-step jobs by
 * Redis's clock (the reduce events stream); a window is measured from its second step (its first may
 * have started under the previous delay). The round trip each setting really gave is measured too:
 * the median of 20 PINGs through the proxy.
 *
 * The model: step(RTT) = step(0) + n·ΔRTT, with n the round trips a step waits for in series, counted
 * from the code (docs/SCALING.md). The bench prints the table of measured steps beside the model's
 * predictions, and the n that the measurements themselves give.
 *
 *   npm run bench:network [-- --iters 100 --workers 2 --threads 1 --delays 0,1,5 --write]
 *     --write replaces the round-trip section of docs/SCALING.md with the result.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Command } from 'commander';
import { Redis } from 'ioredis';
import { intOption } from '../src/producer/options.js';
import { NODE_FLAGS } from '../src/producer/node-flags.js';
import { REPO, startRedis } from './contenders.js';
import { parseFlags, runIfEntry } from './entry.js';
import { median } from './stats.js';
import { completedStep, exited, stepCompletions, stepDurationsMs } from './step-events.js';

const CLI = join(REPO, 'dist/src/producer/cli.js');
const PROXY = join(REPO, 'dist/bench/delay-proxy.js');
/** Round trips a training step waits for in series, counted from the code (docs/SCALING.md). */
export const ROUND_TRIPS_IN_SERIES = 11;
/** Where docs/SCALING.md's round-trip section starts; `bench:scaling` keeps what follows it. */
export const ROUND_TRIP_MARKER = '<!-- round trips: measured by npm run bench:network, kept by bench:scaling -->';
const FIRST_WINDOW_STEP = 10;
const WINDOW = 6;


interface Row {
  readonly delayMs: number;
  /** Measured round trip through the proxy (median of 20 PINGs), ms. */
  readonly rttMs: number;
  readonly stepMs: number;
  readonly windows: number[];
}

export interface NetworkReport {
  readonly date: string;
  readonly workers: number;
  readonly threads: number;
  readonly iters: number;
  readonly directRttMs: number;
  readonly rows: Row[];
  readonly loadBefore: number;
  readonly loadAfter: number;
  readonly seconds: number;
}

/** The delay-proxy child: `set(ms)` changes its delay; `port` is where workers connect. */
class ProxyChild {
  private constructor(
    private readonly child: ChildProcess,
    readonly port: number,
  ) {}

  static async start(targetPort: number): Promise<ProxyChild> {
    const child = spawn(process.execPath, [PROXY, String(targetPort)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    for await (const line of lines) {
      const m = /^listening (\d+)$/.exec(line);
      if (m !== null) return new ProxyChild(child, Number(m[1]));
    }
    throw new Error('bench:network: the delay proxy exited before it listened');
  }

  set(ms: number): void {
    this.child.stdin?.write(`${ms}\n`);
  }

  stop(): void {
    this.child.stdin?.end();
    this.child.kill('SIGTERM');
  }
}

/** Median of 20 PING round trips on one connection to 127.0.0.1:port, ms. */
function pingRttMs(port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const times: number[] = [];
    let t0 = 0;
    const ping = (): void => {
      t0 = performance.now();
      s.write('PING\r\n');
    };
    s.setNoDelay(true);
    s.on('error', reject);
    s.on('connect', ping);
    s.on('data', () => {
      times.push(performance.now() - t0);
      if (times.length < 20) ping();
      else {
        s.destroy();
        resolve(median(times));
      }
    });
  });
}

export async function measure(opts: { iters: number; workers: number; threads: number; delays: number[] }): Promise<NetworkReport> {
  const t0 = performance.now();
  const loadBefore = loadavg()[0];
  const redis = await startRedis();
  if (redis === undefined) throw new Error('bench:network: redis-server is not installed');
  const redisPort = Number(new URL(redis.url).port);
  const proxy = await ProxyChild.start(redisPort);
  const prefix = `ngnet${process.pid}`;
  const dir = mkdtempSync(join(tmpdir(), 'numgrad-bench-network-'));
  const windows: { delayMs: number; from: number; to: number }[] = [];
  for (let from = FIRST_WINDOW_STEP, i = 0; from + WINDOW <= opts.iters; from += WINDOW, i++) windows.push({ delayMs: opts.delays[i % opts.delays.length], from, to: from + WINDOW });
  const env = (url: string): NodeJS.ProcessEnv => ({ ...process.env, REDIS_URL: url, NUMGRAD_PREFIX: prefix, NUMGRAD_THREADS: String(opts.threads), LOG_LEVEL: 'warn' });
  const workers: ChildProcess[] = [];
  const watch = new Redis(redis.url);
  const reader = new Redis(redis.url);
  try {
    const rtt = new Map<number, number>();
    for (const d of opts.delays) {
      proxy.set(d);
      await new Promise((r) => setTimeout(r, 50));
      rtt.set(d, await pingRttMs(proxy.port));
    }
    proxy.set(0);
    const directRttMs = await pingRttMs(redisPort);
    for (let w = 0; w < opts.workers; w++) {
      workers.push(spawn(process.execPath, [...NODE_FLAGS, CLI, 'worker', '--threads', String(opts.threads)], { env: env(`redis://127.0.0.1:${proxy.port}`), stdio: ['ignore', 'ignore', 'inherit'] }));
    }
    const train = spawn(process.execPath, [...NODE_FLAGS, CLI, 'train', '--backend', 'queue', '--iters', String(opts.iters), '--seed', '7', '--out', join(dir, 'train')], {
      env: env(redis.url),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    train.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
    // Switch the delay as the run reaches each window: on step t's completion, step t + 1 starts.
    let running = true;
    const switcher = (async () => {
      let last = '0';
      let current = -1;
      while (running) {
        const got = (await watch.xread('BLOCK', 200, 'STREAMS', `${prefix}:reduce:events`, last)) as [string, [string, string[]][]][] | null;
        for (const [, entries] of got ?? []) {
          for (const [id, fields] of entries) {
            last = id;
            const step = completedStep(fields);
            if (step === undefined) continue;
            const w = windows.findIndex((x) => step + 1 >= x.from && step + 1 < x.to);
            if (w >= 0 && w !== current) {
              current = w;
              proxy.set(windows[w].delayMs);
            }
          }
        }
      }
    })();
    const code = await exited(train);
    running = false;
    await switcher;
    if (code !== 0) throw new Error(`bench:network: numgrad train exited with ${code}: ${stderr.trim().slice(-2000)}`);
    const done = await stepCompletions(reader, prefix);
    const stepMs = (from: number, to: number): number => median(stepDurationsMs(done, from, to, 'bench:network'));
    const rows = opts.delays.map((delayMs) => {
      const per = windows.filter((w) => w.delayMs === delayMs).map((w) => stepMs(w.from + 1, w.to));
      return { delayMs, rttMs: rtt.get(delayMs) as number, stepMs: median(per), windows: per };
    });
    return { date: new Date().toISOString(), workers: opts.workers, threads: opts.threads, iters: opts.iters, directRttMs, rows, loadBefore, loadAfter: loadavg()[0], seconds: (performance.now() - t0) / 1000 };
  } finally {
    for (const w of workers) w.kill('SIGTERM');
    await Promise.all(workers.map(exited));
    watch.disconnect();
    reader.disconnect();
    proxy.stop();
    redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

const f1 = (x: number): string => x.toFixed(1);
const f2 = (x: number): string => x.toFixed(2);

/** The model's step at a row's round trip: the zero-delay step plus n round trips of the added RTT. */
export function predicted(r: NetworkReport, row: Row, n = ROUND_TRIPS_IN_SERIES): number {
  const base = r.rows[0];
  return base.stepMs + n * (row.rttMs - base.rttMs);
}

/** n from the measurements: the least-squares slope of step against added RTT, through the zero-delay row. */
export function fittedRoundTrips(r: NetworkReport): number {
  const base = r.rows[0];
  let num = 0;
  let den = 0;
  for (const row of r.rows.slice(1)) {
    const dx = row.rttMs - base.rttMs;
    num += dx * (row.stepMs - base.stepMs);
    den += dx * dx;
  }
  return den === 0 ? Number.NaN : num / den;
}

/** The round-trip section of docs/SCALING.md. */
export function networkLines(r: NetworkReport): string[] {
  const cpu = cpus()[0]?.model.split(' ').slice(0, 2).join(' ') ?? 'unknown CPU';
  const L = [
    ROUND_TRIP_MARKER,
    '## Round trips between machines',
    '',
    `Generated by \`bench/network.ts\` (\`npm run bench:network -- --write\`); rerun it rather than editing by hand.`,
    '',
    `Everything above ran against a Redis on loopback (~${f2(r.directRttMs)} ms a round trip). Workers on other machines`,
    'pay a network round trip (RTT) for every request they send, and some of those requests are in series',
    "on a step's critical path. Counted from the code (`src/workers/shard-processor.ts`, `src/workers/train-step.ts`,",
    "BullMQ's worker loop), one step of a training run waits for these, one after the other:",
    '',
    '| where | round trips in series | what |',
    '|---|---:|---|',
    "| shard jobs | 3 | `moveToActive` (the fetch after the wake-up; a worker's second shard is fetched while the first waits for θ), `GET` of the params snapshot (once per process and step), `moveToFinished` (the last one moves the reducer's job to wait) |",
    "| reducer job | 8 | `moveToActive`, `HGETALL` run, `HGETALL` children's results, `GET` θ_t, `EVAL` commit of θ_{t+1} with the step (COMMIT_STEP), `HGETALL` run read back, `HGET` state, `MULTI` of step t+1's flow (whose shard jobs then wake the workers) |",
    '',
    'So the model gains one term:',
    '',
    '```',
    `step(P, H, K, RTT) ≈ step(P, H, K) + n·RTT,   n = ${ROUND_TRIPS_IN_SERIES}`,
    '```',
    '',
    "(blocking fetches that return when a job arrives cost no extra round trip: the worker's request is",
    'already waiting in Redis).',
    '',
    '### Measured',
    '',
    `- date: ${r.date}; machine: ${cpus().length} cores (${cpu}), ${f1(totalmem() / 2 ** 30)} GiB, node ${process.version}; load average (1 min) before / after: ${f2(r.loadBefore)} / ${f2(r.loadAfter)}`,
    `- ${r.workers} \`numgrad worker --threads ${r.threads}\` process${r.workers > 1 ? 'es' : ''} and \`numgrad train --backend queue --iters ${r.iters} --seed 7\` (K = 4 shards, H = 50) on a redis-server of the bench's own;`,
    "  the workers reach it through a delaying proxy (`bench/delay-proxy.ts`: every chunk a worker sends is held for the delay,",
    "  as `tc netem delay` on the worker's interface would; this machine's kernel is built without netem, `CONFIG_NET_SCH_NETEM is not set`),",
    '  the producer directly. One run; from step 10 the delay rotates through the settings in windows of 6 steps; a window is',
    "  measured from its second step; a step is completed(t) − completed(t − 1) of the train-step jobs by Redis's clock.",
    '- RTT: the median of 20 PINGs through the proxy at each setting (timers round a held chunk up to the next millisecond, so the',
    '  round trip a setting gives is measured, not assumed). The model is anchored at the zero-delay row (the step through the',
    '  proxy with no delay) and predicts the others from their added RTT.',
    '',
    '| delay set | RTT measured | step measured (median of windows) | model: step(0) + n·ΔRTT | model error | windows (ms) |',
    '|---:|---:|---:|---:|---:|---|',
  ];
  for (const row of r.rows) {
    const p = predicted(r, row);
    const err = row === r.rows[0] ? '(anchor)' : `${((100 * (p - row.stepMs)) / row.stepMs).toFixed(1)}%`;
    L.push(`| ${row.delayMs} ms | ${f2(row.rttMs)} ms | ${f1(row.stepMs)} ms | ${f1(p)} ms | ${err} | ${row.windows.map((x) => x.toFixed(0)).join(', ')} |`);
  }
  L.push('');
  L.push(`The round trips in series that the measurements give (least squares through the zero-delay row): **n ≈ ${f1(fittedRoundTrips(r))}** (the count from the code: ${ROUND_TRIPS_IN_SERIES}). The bench took ${Math.round(r.seconds)} s.`);
  L.push('');
  return L;
}

function writeSection(lines: string[]): void {
  const path = join(REPO, 'docs/SCALING.md');
  const old = readFileSync(path, 'utf8');
  const at = old.indexOf('<!-- round trips:');
  writeFileSync(path, `${at < 0 ? `${old.trimEnd()}\n\n` : old.slice(0, at)}${lines.join('\n')}`);
}

export async function main(argv: string[]): Promise<number> {
  const OP = 'bench:network';
  const program = new Command('network')
    .option('--iters <n>', 'iterations of the run (windows of 6 steps from step 10)', '100')
    .option('--workers <n>', 'worker processes', '2')
    .option('--threads <n>', 'threads per worker', '1')
    .option('--delays <list>', 'delays added to the round trip, ms, comma-separated; the first anchors the model', '0,1,5')
    .option('--write', 'replace the round-trip section of docs/SCALING.md');
  const usage = parseFlags(program, argv);
  if (usage !== undefined) return usage;
  const f = program.opts<{ iters: string; workers: string; threads: string; delays: string; write?: boolean }>();
  const delays = f.delays.split(',').map((s) => Number(s.trim()));
  if (delays.length < 2 || delays.some((d) => !Number.isFinite(d) || d < 0 || d > 1000)) {
    console.error(`${OP}: --delays must list at least two delays in ms, 0–1000 (got "${f.delays}")`);
    return 2;
  }
  const report = await measure({ iters: intOption(OP, '--iters', f.iters, 10 + 6 * delays.length, 10_000), workers: intOption(OP, '--workers', f.workers, 1, 64), threads: intOption(OP, '--threads', f.threads, 1, 256), delays });
  const lines = networkLines(report);
  console.log(lines.join('\n'));
  if (f.write === true) writeSection(lines);
  return 0;
}

runIfEntry(import.meta.url, 'bench:network', main);
