/**
 * The local pool's speed-up from 1 to N threads, measured so that a noisy machine shows as noise and
 * not as a result: in each of several windows, full gradients on a 1-thread pool and an N-thread
 * pool alternate run by run (the same params and batch), and the window's ratio is the ratio of the
 * medians. Beside it, in the same window, the parallelism the machine delivered to this very kernel
 * with nothing shared: N one-thread pools each computing the same gradient at the same time, whose
 * throughput over one alone is the ceiling any N-thread split of the work can reach on the machine
 * at that moment.
 *
 *   node dist/bench/pool-scaling.js [--windows 3] [--pairs 11] [--threads 2]
 */
import { availableParallelism, loadavg } from 'node:os';
import { Command } from 'commander';
import { gatherBatch } from '../src/core/dataset.js';
import { initParams } from '../src/core/network.js';
import { Rng, miniBatchIndices } from '../src/core/prng.js';
import { loadMnist } from '../src/io/mnist.js';
import { intOption } from '../src/producer/options.js';
import { LocalPool } from '../src/workers/threads/pool.js';
import { parseFlags, runIfEntry } from './entry.js';
import { median } from './stats.js';

export interface ScalingWindow {
  /** Seconds per gradient: 1-thread pool, N-thread pool, and N one-thread pools at once (wall). */
  readonly one: number[];
  readonly many: number[];
  readonly independent: number[];
  /** median(one) / median(many). */
  readonly ratio: number;
  /** N · median(one) / median(independent): the parallelism the machine delivered. */
  readonly parallelism: number;
  readonly load: number;
}

export interface ScalingReport {
  readonly threads: number;
  readonly windows: ScalingWindow[];
  /** Median of the windows' ratios, and of their delivered parallelism. */
  readonly ratio: number;
  readonly parallelism: number;
}


export async function benchPoolScaling(opts: { windows: number; pairs: number; threads: number; seed?: number }, log: (l: string) => void = () => undefined): Promise<ScalingReport> {
  const { windows, pairs, threads } = opts;
  const seed = opts.seed ?? 0;
  const params = initParams(50, new Rng(seed));
  const indices = miniBatchIndices(seed, 0, 100, 60_000);
  gatherBatch(loadMnist('train'), indices);
  const one = new LocalPool({ threads: 1 });
  const many = new LocalPool({ threads });
  const singles = Array.from({ length: threads }, () => new LocalPool({ threads: 1 }));
  const time = async (f: () => Promise<unknown>): Promise<number> => {
    const t0 = performance.now();
    await f();
    return (performance.now() - t0) / 1000;
  };
  const gradientOn = (p: LocalPool) => () => p.gradient(params, indices);
  const independent = () => Promise.all(singles.map((p) => p.gradient(params, indices)));
  try {
    for (let w = 0; w < 5; w++) {
      await gradientOn(one)();
      await gradientOn(many)();
      await independent();
    }
    const out: ScalingWindow[] = [];
    for (let w = 0; w < windows; w++) {
      const a: number[] = [];
      const b: number[] = [];
      const c: number[] = [];
      for (let k = 0; k < pairs; k++) {
        a.push(await time(gradientOn(one)));
        b.push(await time(gradientOn(many)));
        c.push(await time(independent));
      }
      const win: ScalingWindow = { one: a, many: b, independent: c, ratio: median(a) / median(b), parallelism: (threads * median(a)) / median(c), load: loadavg()[0] };
      out.push(win);
      log(`window ${w + 1}/${windows}: 1 thread ${ms(median(a))}, ${threads} threads ${ms(median(b))} → ${win.ratio.toFixed(2)}×; machine delivered ${win.parallelism.toFixed(2)}× parallelism (${threads} independent 1-thread gradients at once: ${ms(median(c))}); load ${win.load.toFixed(2)}`);
      if (w + 1 < windows) await new Promise((r) => setTimeout(r, 2000));
    }
    return { threads, windows: out, ratio: median(out.map((x) => x.ratio)), parallelism: median(out.map((x) => x.parallelism)) };
  } finally {
    await Promise.all([one.close(), many.close(), ...singles.map((p) => p.close())]);
  }
}

const ms = (s: number): string => `${(s * 1000).toFixed(1)} ms`;

/** Markdown lines for docs/BENCHMARKS.md. */
export function scalingLines(r: ScalingReport): string[] {
  const L = [
    `## Local pool: ${r.threads} threads vs 1 thread`,
    '',
    `Full gradients on a 1-thread pool and a ${r.threads}-thread pool, alternating run by run, in ${r.windows.length} windows of ${r.windows[0]?.one.length ?? 0} pairs; each window's ratio is the ratio of its medians. "Machine" is the parallelism the machine delivered to this kernel in the same window: ${r.threads} one-thread pools computing the same gradient at once, their throughput over one alone (the ceiling for any split of the work).`,
    '',
    `| window | 1 thread (median) | ${r.threads} threads (median) | speed-up | machine | load |`,
    '|---|---:|---:|---:|---:|---:|',
  ];
  r.windows.forEach((w, k) => {
    L.push(`| ${k + 1} | ${ms(median(w.one))} | ${ms(median(w.many))} | ${w.ratio.toFixed(2)}× | ${w.parallelism.toFixed(2)}× | ${w.load.toFixed(2)} |`);
  });
  L.push('');
  L.push(`Median of the windows: **${r.ratio.toFixed(2)}×** faster with ${r.threads} threads; the machine delivered ${r.parallelism.toFixed(2)}× (${((100 * (r.ratio - 1)) / Math.max(1e-9, r.parallelism - 1)).toFixed(0)}% of the possible gain).`);
  const starved = r.windows.map((w, k) => ({ w, k })).filter(({ w }) => w.parallelism < 0.75 * r.threads);
  if (starved.length > 0) {
    L.push('');
    L.push(`In window${starved.length > 1 ? 's' : ''} ${starved.map(({ k }) => k + 1).join(', ')} the machine itself delivered under ${(0.75 * r.threads).toFixed(1)}×: ${r.threads} fully independent one-thread gradients, sharing nothing, got only ${starved.map(({ w }) => `${w.parallelism.toFixed(2)}×`).join(', ')} the throughput of one, while one thread alone ran fast (${starved.map(({ w }) => ms(median(w.one))).join(', ')}). On this virtual machine the two vCPUs are not always two free cores; no split of the work can beat that ceiling, and the speed-up follows it.`);
  }
  L.push('');
  return L;
}

export async function main(argv: string[]): Promise<number> {
  const OP = 'bench:pool';
  const program = new Command('pool-scaling')
    .option('--windows <n>', 'windows (each gives one ratio of medians)', '3')
    .option('--pairs <n>', 'alternating 1-thread / N-thread gradients per window', '11')
    .option('--threads <n>', 'threads of the larger pool', String(Math.max(2, availableParallelism())));
  const usage = parseFlags(program, argv);
  if (usage !== undefined) return usage;
  const f = program.opts<{ windows: string; pairs: string; threads: string }>();
  const r = await benchPoolScaling(
    { windows: intOption(OP, '--windows', f.windows, 1, 100), pairs: intOption(OP, '--pairs', f.pairs, 1, 1000), threads: intOption(OP, '--threads', f.threads, 2, 256) },
    (l) => console.log(l),
  );
  console.log(scalingLines(r).join('\n'));
  return 0;
}

runIfEntry(import.meta.url, 'bench:pool', main);
