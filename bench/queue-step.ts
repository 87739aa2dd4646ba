/**
 * A training step through the queue against the local step, in alternating windows. Each window
 * runs, one after the other (the order rotates from window to window), M steps of the seeded
 * chapter-4 training three ways, every one from its own fresh start:
 *
 *  - local: `LocalPool` with N threads in this process (`pool.gradient` + `sgdStep`, what
 *    `numgrad train --backend local` does per iteration);
 *  - all-in-one: a `numgrad start --iters …` process (in-process worker with N threads, dashboard);
 *  - two processes: `numgrad worker --threads N` and `numgrad train --backend queue --iters …`;
 *
 * and, beside them, the parallelism the machine delivered (N one-thread gradients at once against
 * one alone). A queue step is read from Redis's own clock: the entry ids of the train-step jobs'
 * `completed` events and the train-drive jobs' `progress` events in the reduce queue's events
 * stream (bench/step-events.ts), completed(t) − completed(t − 1), for
 * steps past a warm-up (the epoch evaluation of step 0 and the JIT). Every figure is the median of
 * the window's steps; the ratios are taken window by window and their median reported.
 *
 *   npm run bench:step [-- --windows 5 --steps 40]     these windows alone (npm run bench has them as rows)
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { Redis } from 'ioredis';
import { initParams } from '../src/core/network.js';
import { DEFAULT_H } from '../src/core/numerical.js';
import { Rng, miniBatchIndices } from '../src/core/prng.js';
import { batchFor, initialParams, sgdStep, trainConfig } from '../src/core/training.js';
import { intOption } from '../src/producer/options.js';
import { LocalPool } from '../src/workers/threads/pool.js';
import { REPO, allThreads, startRedis } from './contenders.js';
import { parseFlags, runIfEntry } from './entry.js';
import type { BenchContext, Contender, RunResult } from './run.js';
import { NODE_FLAGS } from '../src/producer/node-flags.js';
import { median } from './stats.js';
import { exited, stepCompletions, stepDurationsMs } from './step-events.js';

const CLI = join(REPO, 'dist/src/producer/cli.js');
/** Steps before a window's measured steps: step 0's epoch evaluation (70,000 images) and the JIT. */
export const STEP_WARMUP = 20;

export interface StepWindow {
  /** Median seconds per step: local, all-in-one (`numgrad start`), worker + `train --backend queue`. */
  readonly local: number;
  readonly start: number;
  readonly twoProcess: number;
  /** N · one alone / N at once: the parallelism the machine delivered in this window. */
  readonly machine: number;
  readonly load: number;
}

export interface StepReport {
  readonly threads: number;
  readonly steps: number;
  readonly windows: StepWindow[];
  /** Medians over the windows of start / local and twoProcess / local. */
  readonly startRatio: number;
  readonly twoProcessRatio: number;
}


/** Median step (s) of the run under `prefix`, over steps [from, to), from the reduce events stream. */
async function queueStepSeconds(url: string, prefix: string, from: number, to: number): Promise<number> {
  const r = new Redis(url);
  try {
    return median(stepDurationsMs(await stepCompletions(r, prefix), from, to, `bench:step (${prefix})`)) / 1000;
  } finally {
    r.disconnect();
  }
}

/** The alternating windows; `window()` runs the next one. */
export class StepBench {
  readonly windows: StepWindow[] = [];
  private pool: LocalPool | undefined;
  private singles: LocalPool[] = [];
  private count = 0;

  constructor(
    private readonly redisUrl: () => string | undefined,
    readonly threads: number,
    readonly steps: number,
  ) {}

  private env(prefix: string, url: string): NodeJS.ProcessEnv {
    return { ...process.env, REDIS_URL: url, NUMGRAD_PREFIX: prefix, NUMGRAD_THREADS: String(this.threads), LOG_LEVEL: 'warn' };
  }

  private async local(): Promise<number> {
    this.pool ??= new LocalPool({ threads: this.threads });
    const cfg = trainConfig({ iters: STEP_WARMUP + this.steps });
    let params = initialParams(cfg);
    const times: number[] = [];
    for (let t = 0; t < cfg.iters; t++) {
      const t0 = performance.now();
      const { gradient } = await this.pool.gradient(params, batchFor(cfg, t), cfg.h);
      params = sgdStep(params, gradient, cfg.lr);
      if (t >= STEP_WARMUP) times.push((performance.now() - t0) / 1000);
    }
    return median(times);
  }

  /** `numgrad start`, or `numgrad worker` + `numgrad train --backend queue`, for warm-up + M + 1 steps. */
  private async queue(kind: 'start' | 'two', url: string): Promise<number> {
    const prefix = `ngstep${kind}${this.count}`;
    const dir = mkdtempSync(join(tmpdir(), 'numgrad-bench-step-'));
    const iters = String(STEP_WARMUP + this.steps + 1);
    const env = this.env(prefix, url);
    const worker = kind === 'two' ? spawn(process.execPath, [...NODE_FLAGS, CLI, 'worker', '--threads', String(this.threads)], { env, stdio: 'ignore' }) : undefined;
    try {
      const args = kind === 'start' ? ['start', '--iters', iters, '--out', dir] : ['train', '--backend', 'queue', '--iters', iters, '--out', dir];
      const main = spawn(process.execPath, [...NODE_FLAGS, CLI, ...args], { env, stdio: ['ignore', 'ignore', 'pipe'] });
      let stderr = '';
      main.stderr?.on('data', (b: Buffer) => (stderr += b.toString()));
      const code = await exited(main);
      if (code !== 0) throw new Error(`bench:step: numgrad ${args.join(' ')} exited with ${code}: ${stderr.trim()}`);
      return await queueStepSeconds(url, prefix, STEP_WARMUP, STEP_WARMUP + this.steps);
    } finally {
      if (worker !== undefined) {
        worker.kill('SIGTERM');
        await exited(worker);
      }
      rmSync(dir, { recursive: true, force: true });
    }
  }

  /** N one-thread gradients at once against one alone (medians of 3), on the bench's inputs. */
  private async machine(ctx: BenchContext): Promise<number> {
    while (this.singles.length < this.threads) this.singles.push(new LocalPool({ threads: 1 }));
    const one: number[] = [];
    const all: number[] = [];
    for (let k = 0; k < 3; k++) {
      let t0 = performance.now();
      await this.singles[0].gradient(ctx.params, ctx.indices, ctx.h);
      one.push(performance.now() - t0);
      t0 = performance.now();
      await Promise.all(this.singles.map((p) => p.gradient(ctx.params, ctx.indices, ctx.h)));
      all.push(performance.now() - t0);
    }
    return (this.threads * median(one)) / median(all);
  }

  async window(ctx: BenchContext): Promise<StepWindow> {
    const url = this.redisUrl();
    if (url === undefined) throw new Error('bench:step: no Redis for the queue step rows');
    const k = this.count++;
    const got: Partial<Record<'local' | 'start' | 'two', number>> = {};
    const order = (['local', 'start', 'two'] as const).map((_, i, a) => a[(i + k) % a.length]);
    for (const what of order) got[what] = what === 'local' ? await this.local() : await this.queue(what, url);
    const w: StepWindow = { local: got.local as number, start: got.start as number, twoProcess: got.two as number, machine: await this.machine(ctx), load: loadavg()[0] };
    this.windows.push(w);
    return w;
  }

  report(): StepReport {
    const ws = this.windows.slice(1); // the first is the warm-up run
    return {
      threads: this.threads,
      steps: this.steps,
      windows: ws,
      startRatio: median(ws.map((w) => w.start / w.local)),
      twoProcessRatio: median(ws.map((w) => w.twoProcess / w.local)),
    };
  }

  async close(): Promise<void> {
    await Promise.all([this.pool?.close(), ...this.singles.map((p) => p.close())]);
  }
}

/**
 * The three rows of the bench table. The first runs a whole window (all three setups) per run; the
 * other two report that same window's figures, so the rows' runs are the windows, side by side.
 */
export function stepContenders(bench: StepBench): Contender[] {
  const nth = (): (() => StepWindow) => {
    let k = 0;
    return () => bench.windows[k++];
  };
  const startWindow = nth();
  const twoWindow = nth();
  const tag = `${bench.steps} steps per window after ${STEP_WARMUP}, median step`;
  return [
    {
      name: `training step, local: ${bench.threads}-thread pool, gradient + SGD (${tag})`,
      async run(ctx): Promise<RunResult> {
        const w = await bench.window(ctx);
        return { seconds: w.local, info: { machine: w.machine } };
      },
      close: () => bench.close(),
    },
    {
      name: `training step, all-in-one: \`numgrad start\` (in-process worker, ${bench.threads} threads, dashboard) (${tag})`,
      run: (): RunResult => ({ seconds: startWindow().start }),
    },
    {
      name: `training step, two processes: \`numgrad worker --threads ${bench.threads}\` + \`numgrad train --backend queue\` (${tag})`,
      run: (): RunResult => ({ seconds: twoWindow().twoProcess }),
    },
  ];
}

const ms = (s: number): string => `${(s * 1000).toFixed(1)} ms`;

/** Markdown lines for docs/BENCHMARKS.md. */
export function stepLines(r: StepReport): string[] {
  const L = [
    `## A training step: through the queue vs local`,
    '',
    `The chapter-4 training (seed 0, batch 100, H 50) in ${r.windows.length} windows; in each, ${r.steps} steps after ${STEP_WARMUP} of warm-up three ways, one after the other (the order rotates): the local step (a ${r.threads}-thread pool in the bench's process: gradient + SGD), \`numgrad start\` (all-in-one: in-process worker with ${r.threads} threads and the dashboard) and \`numgrad worker --threads ${r.threads}\` + \`numgrad train --backend queue\` (two processes), each started fresh on a redis-server of the bench's own. A queue step is completed(t) − completed(t − 1) by Redis's clock, from the reduce events stream: step 0 is a train-step flow (its job's \`completed\` event); with one worker process the later steps are a train-drive job, which commits the steps of each 100 ms together and writes a \`progress\` event per commit (its k steps share the time since the previous commit equally). Each figure is the median of the window's steps. "Machine" is the parallelism the machine delivered in the window (${r.threads} independent one-thread gradients at once against one alone).`,
    '',
    `| window | local step | all-in-one | ratio | two processes | ratio | machine | load |`,
    '|---|---:|---:|---:|---:|---:|---:|---:|',
  ];
  r.windows.forEach((w, k) => {
    L.push(`| ${k + 1} | ${ms(w.local)} | ${ms(w.start)} | ${(w.start / w.local).toFixed(2)}× | ${ms(w.twoProcess)} | ${(w.twoProcess / w.local).toFixed(2)}× | ${w.machine.toFixed(2)}× | ${w.load.toFixed(2)} |`);
  });
  L.push('');
  L.push(`Median of the windows: a step through the queue costs **${r.startRatio.toFixed(2)}×** the local step all-in-one (\`numgrad start\`) and **${r.twoProcessRatio.toFixed(2)}×** with two processes.`);
  L.push('');
  return L;
}

/** `node dist/bench/queue-step.js [--windows 5] [--steps 40]`: the windows alone, on a redis-server of its own. */
export async function main(argv: string[]): Promise<number> {
  const OP = 'bench:step';
  const program = new Command('queue-step')
    .option('--windows <n>', 'windows after the first (warm-up) one', '5')
    .option('--steps <n>', 'measured steps per window and setup', '40')
    .option('--threads <n>', 'threads of the local pool and of the worker', String(allThreads()));
  const usage = parseFlags(program, argv);
  if (usage !== undefined) return usage;
  const f = program.opts<{ windows: string; steps: string; threads: string }>();
  const windows = intOption(OP, '--windows', f.windows, 1, 100);
  const redis = await startRedis();
  const url = redis?.url ?? process.env.REDIS_URL;
  const bench = new StepBench(() => url, intOption(OP, '--threads', f.threads, 1, 256), intOption(OP, '--steps', f.steps, 1, 10_000));
  try {
    const params = initParams(50, new Rng(0));
    const indices = miniBatchIndices(0, 0, 100, 60_000);
    const ctx = { params, indices, h: DEFAULT_H } as BenchContext;
    for (let w = 0; w <= windows; w++) {
      const x = await bench.window(ctx);
      console.log(`window ${w}${w === 0 ? ' (warm-up)' : ''}: local ${ms(x.local)}, all-in-one ${ms(x.start)} (${(x.start / x.local).toFixed(2)}×), two processes ${ms(x.twoProcess)} (${(x.twoProcess / x.local).toFixed(2)}×), machine ${x.machine.toFixed(2)}×, load ${x.load.toFixed(2)}`);
    }
  } finally {
    await bench.close();
    redis?.stop();
  }
  console.log(stepLines(bench.report()).join('\n'));
  return 0;
}

runIfEntry(import.meta.url, 'bench:step', main);
