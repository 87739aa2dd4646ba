/**
 * The scaling model of a training step through the queue: how one step's time depends on the shard
 * count K, the worker processes W (× threads) and the hidden size H, measured here and fitted to a
 * model that predicts larger W and H, checked against the configurations it was not fitted on.
 *
 *   npm run bench:scaling                 build, measure, fit, write docs/SCALING.md
 *   npm run bench:scaling -- --quick      a smoke run: fewer shard counts and repetitions
 *   npm run bench:scaling -- --no-write   print only
 *   npm run bench:scaling -- --json raw.json      also keep the raw measurements
 *   npm run bench:scaling -- --from raw.json      render the page again from them, without measuring
 *
 * Everything runs on a redis-server of the bench's own (so INFO counts numgrad's traffic alone):
 *  - compute, in this process on one thread: planGradient and FdEngine.shard(0, L) for H = 50, 100, 300;
 *  - training steps through the queue (`numgrad worker` processes, a run started with
 *    QueueClient.startRun): per step, from BullMQ's events streams (entry ids are Redis timestamps),
 *    the step interval and its parts — shard phase, hand-off to the reducer, reducer (the train-step
 *    job from active to completed);
 *  - Redis per step: commands, bytes in and out, server CPU — INFO deltas between two snapshots taken
 *    atomically with the run's step counter (MULTI), minus the bench's own polling, which is
 *    calibrated on the idle server first.
 * Each configuration is measured in R windows of M steps of one run (after its step-0 evaluations,
 * which share the workers, are done); figures are medians over the windows.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { dirname, join, relative } from 'node:path';
import { FlowProducer, Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { gatherBatch } from '../src/core/dataset.js';
import { FdEngine, planGradient } from '../src/core/fd-engine.js';
import { paramCount } from '../src/core/layout.js';
import { initParams } from '../src/core/network.js';
import { Rng, miniBatchIndices } from '../src/core/prng.js';
import { initialParams, sgdStep, trainConfig } from '../src/core/training.js';
import { loadMnist } from '../src/io/mnist.js';
import { QueueClient } from '../src/producer/queue-client.js';
import { base64ToF64, f64ToBase64, paramsVersion } from '../src/queue/codec.js';
import { jobId, trainStepFlow } from '../src/queue/flows.js';
import { Keys } from '../src/queue/keys.js';
import { LocalPool } from '../src/workers/threads/pool.js';
import { REPO, startRedis } from './contenders.js';
import { runIfEntry } from './entry.js';
import { NODE_FLAGS } from '../src/producer/node-flags.js';
import { ROUND_TRIP_MARKER } from './network.js';
import { median } from './stats.js';

const CLI = join(REPO, 'dist/src/producer/cli.js');

// --- small helpers -------------------------------------------------------------------------------


const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Least squares: the coefficients b minimising |X·b − y|² (normal equations, Gaussian elimination). */
export function leastSquares(X: number[][], y: number[]): number[] {
  const n = X[0].length;
  const A = Array.from({ length: n }, (_, i) => Array.from({ length: n + 1 }, (_, j) => (j < n ? X.reduce((s, r) => s + r[i] * r[j], 0) : X.reduce((s, r, k) => s + r[i] * y[k], 0))));
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(A[r][c]) > Math.abs(A[p][c])) p = r;
    [A[c], A[p]] = [A[p], A[c]];
    if (Math.abs(A[c][c]) < 1e-300) throw new Error('least squares: the features are linearly dependent (measure more configurations)');
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = A[r][c] / A[c][c];
      for (let j = c; j <= n; j++) A[r][j] -= f * A[c][j];
    }
  }
  return A.map((row, i) => row[n] / row[i]);
}

const ms = (x: number): string => (!Number.isFinite(x) ? '—' : x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
const kib = (b: number): string => (b >= 10 * 1024 * 1024 ? `${(b / 1024 / 1024).toFixed(1)} MiB` : `${(b / 1024).toFixed(0)} KiB`);
const pct = (x: number): string => `${x >= 0 ? '+' : ''}${(x * 100).toFixed(0)}%`;

// --- compute, in process -------------------------------------------------------------------------

export interface ComputeCost {
  H: number;
  L: number;
  planMs: number[];
  compMs: number[];
  /** The data handling a step adds around the compute, ∝ L: base64 and JSON of a gradient both ways, SGD, the snapshot's content hash. */
  codecMs: number[];
  plan: number;
  comp: number;
  codec: number;
}

/** planGradient and one FdEngine over all L coordinates, on this thread; `runs` timed after one warm-up. */
export function measureCompute(hs: number[], runs: number, seed: number, log: (l: string) => void): ComputeCost[] {
  const train = loadMnist('train');
  const batch = gatherBatch(train, miniBatchIndices(seed, 0, 100, train.count));
  return hs.map((H) => {
    const params = initParams(H, new Rng(seed));
    const planMs: number[] = [];
    const compMs: number[] = [];
    const codecMs: number[] = [];
    for (let r = -1; r < runs; r++) {
      const t0 = performance.now();
      const plan = planGradient(params, batch);
      const t1 = performance.now();
      const g = new FdEngine(plan).shard(0, params.length);
      const t2 = performance.now();
      const back = base64ToF64((JSON.parse(JSON.stringify({ data: f64ToBase64(g) })) as { data: string }).data, 'data', g.length);
      paramsVersion(sgdStep(params, back, 0.1));
      const t3 = performance.now();
      if (r >= 0) {
        planMs.push(t1 - t0);
        compMs.push(t2 - t1);
        codecMs.push(t3 - t2);
      }
    }
    const c = { H, L: params.length, planMs, compMs, codecMs, plan: median(planMs), comp: median(compMs), codec: median(codecMs) };
    log(`compute H=${H} (L=${c.L}): plan ${ms(c.plan)} ms, FdEngine ${ms(c.comp)} ms, data handling ${ms(c.codec)} ms (medians of ${runs}; ${((c.comp / c.L) * 1e6).toFixed(0)} ns per coordinate)`);
    return c;
  });
}

/**
 * The parallelism this machine delivers right now: one gradient (H = 50) on a local pool of 1 thread
 * and of 2, interleaved; the ratio of the times. 2 on two idle cores; less when other work shares them.
 */
async function measureParallelism(pools: [LocalPool, LocalPool], runs: number, seed: number): Promise<number[]> {
  const params = initParams(50, new Rng(seed));
  const indices = miniBatchIndices(seed, 0, 100, 60_000);
  const ratios: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t1 = (await pools[0].gradient(params, indices)).seconds;
    const t2 = (await pools[1].gradient(params, indices)).seconds;
    ratios.push(t1 / t2);
  }
  return ratios;
}

// --- Redis counters ------------------------------------------------------------------------------

interface Snap {
  step: number;
  cmds: number;
  inBytes: number;
  outBytes: number;
  cpuMs: number;
}

function infoField(info: string, k: string): number {
  return Number(new RegExp(`^${k}:([\\d.]+)`, 'm').exec(info)?.[1] ?? NaN);
}

/** The run's step and Redis' counters in one MULTI, so they describe the same instant. */
async function snapshot(conn: Redis, runKey: string): Promise<Snap> {
  const res = (await conn.multi().hget(runKey, 'step').info('stats').info('cpu').exec()) as [Error | null, unknown][];
  const stats = String(res[1][1]);
  const cpu = String(res[2][1]);
  return {
    step: Number(res[0][1] ?? -1),
    cmds: infoField(stats, 'total_commands_processed'),
    inBytes: infoField(stats, 'total_net_input_bytes'),
    outBytes: infoField(stats, 'total_net_output_bytes'),
    cpuMs: (infoField(cpu, 'used_cpu_user') + infoField(cpu, 'used_cpu_sys')) * 1000,
  };
}

type Counts = Omit<Snap, 'step'>;
const minus = (a: Counts, b: Counts): Counts => ({ cmds: a.cmds - b.cmds, inBytes: a.inBytes - b.inBytes, outBytes: a.outBytes - b.outBytes, cpuMs: a.cpuMs - b.cpuMs });
const scale = (a: Counts, f: number): Counts => ({ cmds: a.cmds * f, inBytes: a.inBytes * f, outBytes: a.outBytes * f, cpuMs: a.cpuMs * f });

/** What one snapshot pair and one poll (HGET of a run's step) add to the counters, measured on the idle server. */
async function calibrate(conn: Redis, keys: Keys): Promise<{ pair: Counts; poll: Counts }> {
  const key = keys.run('m999');
  await conn.hset(key, 'step', '123');
  const pairs: Counts[] = [];
  const polls: Counts[] = [];
  for (let r = 0; r < 5; r++) {
    const a = await snapshot(conn, key);
    const b = await snapshot(conn, key);
    pairs.push(minus(b, a));
    const c = await snapshot(conn, key);
    for (let i = 0; i < 50; i++) await conn.hget(key, 'step');
    const d = await snapshot(conn, key);
    polls.push(scale(minus(minus(d, c), minus(b, a)), 1 / 50));
  }
  await conn.del(key);
  const med = (xs: Counts[]): Counts => ({ cmds: median(xs.map((x) => x.cmds)), inBytes: median(xs.map((x) => x.inBytes)), outBytes: median(xs.map((x) => x.outBytes)), cpuMs: median(xs.map((x) => x.cpuMs)) });
  return { pair: med(pairs), poll: med(polls) };
}

// --- the events streams --------------------------------------------------------------------------

interface StepTimes {
  /** train-step job of step t: active and completed (ms, Redis clock). */
  active: Map<number, number>;
  completed: Map<number, number>;
  /** Its fd-shard children: last completion, and each shard's active → completed duration. */
  lastShard: Map<number, number>;
  shardDurations: Map<number, number[]>;
}

async function readStepTimes(conn: Redis, prefix: string, runId: string): Promise<StepTimes> {
  const t: StepTimes = { active: new Map(), completed: new Map(), lastShard: new Map(), shardDurations: new Map() };
  const parent = new RegExp(`^run-${runId}-step-(\\d+)$`);
  const child = new RegExp(`^run-${runId}-step-(\\d+)-s-(\\d+)$`);
  const fields = (f: string[]): Record<string, string> => {
    const o: Record<string, string> = {};
    for (let i = 0; i + 1 < f.length; i += 2) if (f[i] !== 'returnvalue') o[f[i]] = f[i + 1];
    return o;
  };
  for (const [id, f] of await conn.xrange(`${prefix}:reduce:events`, '-', '+')) {
    const e = fields(f);
    const m = parent.exec(e.jobId ?? '');
    if (m === null) continue;
    const ts = Number(id.split('-')[0]);
    if (e.event === 'active') t.active.set(Number(m[1]), ts);
    if (e.event === 'completed') t.completed.set(Number(m[1]), ts);
  }
  const started = new Map<string, number>();
  for (const [id, f] of await conn.xrange(`${prefix}:shards:events`, '-', '+')) {
    const e = fields(f);
    const m = child.exec(e.jobId ?? '');
    if (m === null) continue;
    const ts = Number(id.split('-')[0]);
    const step = Number(m[1]);
    if (e.event === 'active') started.set(e.jobId, ts);
    if (e.event === 'completed') {
      t.lastShard.set(step, Math.max(t.lastShard.get(step) ?? 0, ts));
      const s = started.get(e.jobId);
      if (s !== undefined) t.shardDurations.set(step, [...(t.shardDurations.get(step) ?? []), ts - s]);
    }
  }
  return t;
}

// --- one configuration through the queue ---------------------------------------------------------

export interface Setup {
  processes: number;
  threads: number;
}
const label = (s: Setup): string => `${s.processes}×${s.threads}`;

export interface Window {
  steps: number;
  /** Means over the window's steps, ms. */
  stepMs: number;
  shardsMs: number;
  handoffMs: number;
  reduceMs: number;
  /** Median fd-shard job time, active → completed. */
  shardJobMs: number;
  /** Per step. */
  cmds: number;
  inBytes: number;
  outBytes: number;
  redisCpuMs: number;
}

export interface Measurement {
  setup: Setup;
  H: number;
  L: number;
  K: number;
  windows: Window[];
  /** Medians over the windows. */
  m: Window;
}

/** The worker processes of one setup, on a prefix of their own (every setup's workers stay up, idle in turn). */
interface Lane {
  setup: Setup;
  prefix: string;
  keys: Keys;
  client: QueueClient;
  flows: FlowProducer;
  children: ChildProcess[];
}

interface Ctx {
  conn: Redis;
  cal: { pair: Counts; poll: Counts };
  /** Traffic of all idle workers per second, subtracted from each window by its duration. */
  idle: Counts;
  pollMs: number;
  seed: number;
  log: (l: string) => void;
  nextId: number;
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, pollMs: number): Promise<{ value: T; polls: number }> {
  const deadline = Date.now() + timeoutMs;
  let polls = 0;
  for (;;) {
    polls++;
    const v = await probe();
    if (v !== undefined) return { value: v, polls };
    if (Date.now() > deadline) throw new Error(`scaling bench: ${what} did not happen within ${timeoutMs / 1000} s`);
    await sleep(pollMs);
  }
}

const mean = (xs: number[]): number => (xs.length === 0 ? NaN : xs.reduce((s, x) => s + x, 0) / xs.length);

/**
 * One window: a fresh seeded run of `lane`'s workers, `warm` steps to warm caches and JIT, then M
 * steps measured. The run is created at step 1 (its record, params snapshot and first flow, exactly
 * what startRun writes, one step on): step 0 would enqueue the epoch evaluations (70,000 images),
 * which share the workers with the steps and would only be waited out. Cancelled afterwards.
 */
async function measureWindow(ctx: Ctx, lane: Lane, H: number, K: number, M: number, warm = 2): Promise<Window> {
  const n = ctx.nextId++;
  const id = `m${String(n).padStart(3, '0')}`;
  const runKey = lane.keys.run(id);
  const timeout = 300_000;
  const cfg = trainConfig({ hidden: H, iters: 1_000_000, evalEvery: 10_000_000, seed: ctx.seed + n });
  const version = await lane.client.store.putParams(initialParams(cfg), jobId('run', id, 'step', 1));
  await lane.client.store.createRun(id, { ...cfg, shards: K }, version);
  await ctx.conn.hset(runKey, 'step', 1);
  await lane.flows.add(trainStepFlow(id, 1, version, H, cfg.seed, cfg.batch, cfg.h, K));
  const stepNow = async (): Promise<number> => Number((await ctx.conn.hget(runKey, 'step')) ?? -1);
  // Both ends of the window just after a step advanced, so the partial steps at the ends cancel.
  await waitFor(`step ${1 + warm}`, async () => ((await stepNow()) >= 1 + warm ? true : undefined), timeout, ctx.pollMs);
  const s0 = await stepNow();
  await waitFor('a step', async () => ((await stepNow()) > s0 ? true : undefined), timeout, ctx.pollMs);
  const a = await snapshot(ctx.conn, runKey);
  const tA = performance.now();
  const { polls } = await waitFor(`step ${a.step + M}`, async () => ((await stepNow()) >= a.step + M ? true : undefined), timeout, ctx.pollMs);
  const b = await snapshot(ctx.conn, runKey);
  const seconds = (performance.now() - tA) / 1000;
  const steps = b.step - a.step;
  const own = { cmds: ctx.cal.pair.cmds + polls * ctx.cal.poll.cmds, inBytes: ctx.cal.pair.inBytes + polls * ctx.cal.poll.inBytes, outBytes: ctx.cal.pair.outBytes + polls * ctx.cal.poll.outBytes, cpuMs: ctx.cal.pair.cpuMs + polls * ctx.cal.poll.cpuMs };
  const per = scale(minus(minus(minus(b, a), own), scale(ctx.idle, seconds)), 1 / steps);
  // Steps a.step … b.step − 1 completed inside the window; read their timestamps now, before the capped streams move on.
  const t = await readStepTimes(ctx.conn, lane.prefix, id);
  const intervals: number[] = [];
  const shards: number[] = [];
  const handoff: number[] = [];
  const reduce: number[] = [];
  const shardJobs: number[] = [];
  for (let j = a.step; j < b.step; j++) {
    const prev = t.completed.get(j - 1);
    const done = t.completed.get(j);
    const act = t.active.get(j);
    const last = t.lastShard.get(j);
    if (prev === undefined || done === undefined) continue;
    intervals.push(done - prev);
    if (act !== undefined) reduce.push(done - act);
    if (act !== undefined && last !== undefined) {
      shards.push(last - prev);
      handoff.push(act - last);
    }
    shardJobs.push(...(t.shardDurations.get(j) ?? []));
  }
  await lane.client.cancel(id);
  // The step already enqueued still computes (its reducer then sees the cancel): wait for quiet queues.
  await waitFor('the queues to drain after the cancel', async () => {
    let busy = 0;
    for (const name of ['shards', 'reduce']) {
      const q = new Queue(name, { connection: ctx.conn, prefix: lane.prefix, skipMetasUpdate: true });
      const c = await q.getJobCounts('active', 'waiting', 'waiting-children', 'delayed', 'prioritized');
      await q.close();
      busy += Object.values(c).reduce((s, x) => s + x, 0);
    }
    return busy === 0 ? true : undefined;
  }, timeout, 20);
  const w: Window = { steps, stepMs: mean(intervals), shardsMs: mean(shards), handoffMs: mean(handoff), reduceMs: mean(reduce), shardJobMs: median(shardJobs), cmds: per.cmds, inBytes: per.inBytes, outBytes: per.outBytes, redisCpuMs: per.cpuMs };
  ctx.log(`  ${label(lane.setup)} H=${H} K=${K}: step ${ms(w.stepMs)} ms = shards ${ms(w.shardsMs)} + hand-off ${ms(w.handoffMs)} + reducer ${ms(w.reduceMs)}; shard job ${ms(w.shardJobMs)} ms; Redis/step ${w.cmds.toFixed(0)} cmds, ${kib(w.inBytes)} in, ${kib(w.outBytes)} out, ${ms(w.redisCpuMs)} ms CPU`);
  return w;
}

function summarize(setup: Setup, H: number, K: number, ws: Window[]): Measurement {
  const pick = (k: keyof Window): number => median(ws.map((w) => w[k]));
  const m: Window = { steps: pick('steps'), stepMs: pick('stepMs'), shardsMs: pick('shardsMs'), handoffMs: pick('handoffMs'), reduceMs: pick('reduceMs'), shardJobMs: pick('shardJobMs'), cmds: pick('cmds'), inBytes: pick('inBytes'), outBytes: pick('outBytes'), redisCpuMs: pick('redisCpuMs') };
  return { setup, H, L: paramCount(H), K, windows: ws, m };
}

async function startLane(url: string, conn: Redis, setup: Setup): Promise<Lane> {
  const prefix = `ngscale${setup.processes}x${setup.threads}`;
  const client = new QueueClient({ redisUrl: url, prefix });
  await client.ping();
  const flows = new FlowProducer({ connection: conn, prefix });
  const children: ChildProcess[] = [];
  for (let w = 0; w < setup.processes; w++) {
    children.push(spawn(process.execPath, [...NODE_FLAGS, CLI, 'worker', '--threads', String(setup.threads)], { env: { ...process.env, REDIS_URL: url, NUMGRAD_PREFIX: prefix, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'ignore', 'inherit'] }));
  }
  const lane: Lane = { setup, prefix, keys: new Keys(prefix), client, flows, children };
  await waitFor(`${setup.processes} worker process(es) online`, async () => ((await client.workersOnline()) >= setup.processes ? true : undefined), 60_000, 100);
  return lane;
}

async function stopLane(lane: Lane): Promise<void> {
  await lane.flows.close();
  await lane.client.close();
  await Promise.all(lane.children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise((r) => {
    c.once('exit', r);
    c.kill('SIGTERM');
  }))));
}

// --- the model -----------------------------------------------------------------------------------

/**
 * step(P, H, K) = plan(H) + comp(H)/min(K, P) + s·K + g0 + g1·L + reduce(H, K)
 *   plan, comp: this process's FdEngine timings, linear in L = 795·H + 10;
 *   min(K, P): K shards keep at most K of the P compute threads busy (P may be fractional: the
 *   parallelism a loaded machine actually delivers);
 *   s: per-shard overhead (job fetch, bookkeeping, result encoding), g0 + g1·L: the rest of a step
 *   (hand-offs, snapshot and result transfers, the next flow), reduce = r0 + r1·L + r2·K.
 */
export interface Model {
  p: [number, number];
  c: [number, number];
  r: [number, number, number];
  g: [number, number];
  s: number;
  /** Redis per step: commands on [1, K, processes − 1]; bytes on [1, L, L·(processes − 1), K]; CPU ms on [1, L, K]. */
  cmds: number[];
  inBytes: number[];
  outBytes: number[];
  redisCpu: number[];
}

export function predict(mo: Model, P: number, H: number, K: number): { total: number; plan: number; comp: number; shard: number; rest: number; reduce: number } {
  const L = paramCount(H);
  const plan = mo.p[0] + mo.p[1] * L;
  const comp = (mo.c[0] + mo.c[1] * L) / Math.min(K, P);
  const shard = mo.s * K;
  const rest = mo.g[0] + mo.g[1] * L;
  const reduce = mo.r[0] + mo.r[1] * L + mo.r[2] * K;
  return { total: plan + comp + shard + rest + reduce, plan, comp, shard, rest, reduce };
}

const byteFeatures = (L: number, processes: number, K: number): number[] => [1, L, L * (processes - 1), K];
const cmdFeatures = (_L: number, processes: number, K: number): number[] => [1, K, processes - 1];
const cpuFeatures = (L: number, _processes: number, K: number): number[] => [1, L, K];

export function fitModel(compute: ComputeCost[], data: Measurement[], fitOn: (m: Measurement) => boolean): Model {
  // Through the origin: per-coordinate costs; an intercept fitted on three noisy points extrapolates badly to H = 1000.
  const lin = (ys: number[]): [number, number] => [0, leastSquares(compute.map((c) => [c.L]), ys)[0]];
  const p = lin(compute.map((c) => c.plan));
  const c = lin(compute.map((x) => x.comp));
  const train = data.filter(fitOn);
  const r = leastSquares(train.map((m) => [1, m.L, m.K]), train.map((m) => m.m.reduceMs)) as [number, number, number];
  const partial: Model = { p, c, r, g: [0, 0], s: 0, cmds: [], inBytes: [], outBytes: [], redisCpu: [] };
  const rest = train.map((m) => m.m.stepMs - predict(partial, m.setup.processes * m.setup.threads, m.H, m.K).total);
  const [g0, g1, s] = leastSquares(train.map((m) => [1, m.L, m.K]), rest);
  const X = (f: (L: number, processes: number, K: number) => number[]): number[][] => data.map((m) => f(m.L, m.setup.processes, m.K));
  return {
    p, c, r, g: [g0, g1], s,
    cmds: leastSquares(X(cmdFeatures), data.map((m) => m.m.cmds)),
    inBytes: leastSquares(X(byteFeatures), data.map((m) => m.m.inBytes)),
    outBytes: leastSquares(X(byteFeatures), data.map((m) => m.m.outBytes)),
    redisCpu: leastSquares(X(cpuFeatures), data.map((m) => m.m.redisCpuMs)),
  };
}

const dot = (a: number[], b: number[]): number => a.reduce((s, x, i) => s + x * b[i], 0);

/** The shard count the model finds fastest for P compute threads (ties: fewer shards). */
export function bestK(mo: Model, P: number, H: number, maxK = 128): number {
  let best = 1;
  for (let K = 2; K <= maxK; K++) if (predict(mo, P, H, K).total < predict(mo, P, H, best).total - 1e-9) best = K;
  return best;
}

// --- the run -------------------------------------------------------------------------------------

export interface ScalingOptions {
  quick: boolean;
  windows: number;
  computeRuns: number;
  seed: number;
  pollMs: number;
  argv: string[];
}

interface Plan {
  H: number;
  Ks: number[];
  steps: number;
}

/** Everything measured, as JSON (--json FILE writes it, --from FILE renders the page from it again). */
export interface RawData {
  o: ScalingOptions;
  date: string;
  loadBefore: number[];
  loadAfter: number[];
  compute: ComputeCost[];
  data: Measurement[];
  idleRate: Counts | undefined;
  plans: Plan[];
  setups: Setup[];
  parallelism: number[];
}

const fitOn11 = (m: Measurement): boolean => m.setup.processes === 1 && m.setup.threads === 1;

export function renderRaw(raw: RawData): string {
  return render({ ...raw, model: fitModel(raw.compute, raw.data, fitOn11), fitOn: fitOn11 });
}

export async function runScaling(o: ScalingOptions, log: (l: string) => void = (l) => console.log(l)): Promise<RawData> {
  const date = new Date().toISOString();
  const loadBefore = os.loadavg();
  const plans: Plan[] = o.quick
    ? [{ H: 50, Ks: [1, 4, 16], steps: 5 }, { H: 100, Ks: [2, 8], steps: 3 }]
    : [{ H: 50, Ks: [1, 2, 4, 8, 16, 32], steps: 10 }, { H: 100, Ks: [1, 2, 8], steps: 6 }, { H: 300, Ks: [1, 2, 8], steps: 3 }];
  const setups: Setup[] = [{ processes: 1, threads: 1 }, { processes: 2, threads: 1 }, { processes: 1, threads: 2 }];
  const hs = plans.map((p) => p.H);

  const redis = await startRedis();
  if (redis === undefined) throw new Error('scaling bench: redis-server is not installed (it runs a Redis of its own so INFO counts numgrad alone)');
  const conn = new Redis(redis.url, { maxRetriesPerRequest: 1 });
  const lanes: Lane[] = [];
  const windows = new Map<string, Window[]>();
  const computeRounds: ComputeCost[][] = [];
  const parallelism: number[] = [];
  const pools: [LocalPool, LocalPool] = [new LocalPool({ threads: 1 }), new LocalPool({ threads: 2 })];
  let idle: Counts | undefined;
  let cal: { pair: Counts; poll: Counts } | undefined;
  try {
    cal = await calibrate(conn, new Keys('ngscale1x1'));
    log(`calibration: a snapshot pair adds ${cal.pair.cmds} commands, ${cal.pair.inBytes} B in, ${cal.pair.outBytes} B out; a poll ${cal.poll.cmds} command, ${cal.poll.inBytes.toFixed(0)} B in, ${cal.poll.outBytes.toFixed(0)} B out`);
    for (const setup of setups) lanes.push(await startLane(redis.url, conn, setup));
    // Idle workers still talk to Redis (blocking fetches that time out): their rate, subtracted per window.
    const a = await snapshot(conn, 'ngscale:none');
    await sleep(5_000);
    idle = scale(minus(minus(await snapshot(conn, 'ngscale:none'), a), cal.pair), 1 / 5);
    log(`idle workers: ${idle.cmds.toFixed(1)} commands/s, ${idle.inBytes.toFixed(0)} B/s in, ${idle.outBytes.toFixed(0)} B/s out`);
    const ctx: Ctx = { conn, cal, idle, pollMs: o.pollMs, seed: o.seed, log, nextId: 0 };
    // Rounds: each measures every configuration once (and the in-process compute), interleaved, so a
    // neighbour's load during the run spreads over every configuration instead of biasing a few.
    for (let round = 0; round < o.windows; round++) {
      log(`round ${round + 1}/${o.windows}`);
      computeRounds.push(measureCompute(hs, o.computeRuns, o.seed + round, log));
      if (round === 0) await measureParallelism(pools, 1, o.seed); // warm-up
      const pr = await measureParallelism(pools, o.computeRuns, o.seed + round);
      parallelism.push(...pr);
      log(`parallelism: 1-thread / 2-thread pool gradient time ${pr.map((x) => x.toFixed(2)).join(', ')}`);
      for (const p of plans) {
        for (const K of p.Ks) {
          for (const lane of lanes) {
            const key = `${label(lane.setup)}|${p.H}|${K}`;
            windows.set(key, [...(windows.get(key) ?? []), await measureWindow(ctx, lane, p.H, K, p.steps)]);
          }
        }
      }
    }
  } finally {
    await Promise.all(pools.map((p) => p.close()));
    for (const lane of lanes) await stopLane(lane);
    conn.disconnect();
    redis.stop();
  }
  const loadAfter = os.loadavg();
  const compute: ComputeCost[] = hs.map((H, i) => {
    const planMs = computeRounds.flatMap((r) => r[i].planMs);
    const compMs = computeRounds.flatMap((r) => r[i].compMs);
    const codecMs = computeRounds.flatMap((r) => r[i].codecMs);
    return { H, L: paramCount(H), planMs, compMs, codecMs, plan: median(planMs), comp: median(compMs), codec: median(codecMs) };
  });
  const data: Measurement[] = [];
  for (const setup of setups) for (const p of plans) for (const K of p.Ks) data.push(summarize(setup, p.H, K, windows.get(`${label(setup)}|${p.H}|${K}`) ?? []));
  return { o, date, loadBefore, loadAfter, compute, data, idleRate: idle, plans, setups, parallelism };
}

interface Rendered extends RawData {
  model: Model;
  fitOn: (m: Measurement) => boolean;
}

function render(r: Rendered): string {
  const { model: mo, data, compute } = r;
  const L: string[] = [];
  const cpus = os.cpus();
  L.push('# Scaling model of a training step');
  L.push('');
  L.push('Generated by `bench/scaling.ts` (`npm run bench:scaling`); do not edit by hand — rerun it. Every number on this');
  L.push('page comes from one run of the bench, so the ratios between them are from one run.');
  L.push('');
  L.push(`- date: ${r.date}`);
  L.push(`- machine: ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown'}), ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB, node ${process.version}`);
  L.push(`- load average (1 min) before / after: ${r.loadBefore[0].toFixed(2)} / ${r.loadAfter[0].toFixed(2)}${r.loadBefore[0] > cpus.length * 0.5 || r.loadAfter[0] > cpus.length * 0.5 ? ' — other work shared the cores; the medians absorb some of it, the per-window values show the rest' : ''}`);
  L.push(`- Redis: a redis-server of the bench's own (loopback, no persistence); every setup's workers up at once, each setup on a prefix of its own (\`ngscale1x1\`, …), idle while another is measured`);
  L.push(`- per configuration: ${r.o.windows} windows, one per round (every configuration once per round, interleaved), each M steps of a fresh seeded run (M = ${r.plans.map((p) => `${p.steps} at H=${p.H}`).join(', ')}) after 2 warm-up steps; medians over the windows`);
  L.push('- a window\'s run is created at step 1 (what `startRun` writes, one step on): step 0 would enqueue the epoch');
  L.push('  evaluations of 70,000 images onto the same workers. Compute (in process) is measured in every round too.');
  L.push('');
  L.push('## What a step is made of');
  L.push('');
  L.push('A training step t through the queue is one BullMQ flow: K fd-shard jobs (coordinate ranges of the');
  L.push('gradient, on any worker) under one train-step job (the reducer). The reducer of step t−1 adds step t\'s');
  L.push('flow and completes; the shards run (each worker process plans the step once — the forward pass at θ —');
  L.push('and computes its ranges on its threads); when the last shard completes BullMQ moves the parent to');
  L.push('waiting, a reducer takes it, assembles the K results, applies the SGD step, stores θ_{t+1}, advances the');
  L.push('run and adds step t+1. Each shard runs on all of its worker process\'s threads (units claimed from');
  L.push('shared memory, as on the local pool). A reducer keeps the θ_{t+1} it computed for its own process\'s');
  L.push('shards, and when its process computed all of step t it starts step t+1\'s whole gradient at once, beside');
  L.push('the Redis writes and the hand-off; the shards of step t+1 that reach that process take their ranges');
  L.push('from it (src/workers/threads/plan-cache.ts). From the events streams (Redis timestamps):');
  L.push('');
  L.push('- **step** = completed(t) − completed(t−1) = **shards** (completed(t−1) → last shard of t completed)');
  L.push('  + **hand-off** (→ the reducer of t active) + **reducer** (active → completed).');
  L.push('');
  L.push('## Model');
  L.push('');
  L.push('```');
  L.push('step(P, H, K) ≈ plan(H) + comp(H)/min(K, P) + s·K + (g0 + g1·L) + reduce(H, K)');
  L.push('L = 795·H + 10 coordinates; P = compute threads (worker processes × threads)');
  L.push('```');
  L.push('');
  L.push('- plan(H), comp(H): planGradient and FdEngine over all L coordinates on one thread, in process (no queue);');
  L.push('  both linear in L (the forward pass is 100×784×H; every coordinate costs about the same).');
  L.push('- min(K, P): K shards keep at most K of the P threads busy (K < P leaves threads idle; with K a multiple');
  L.push('  of P, as in every configuration here, this is the same as ⌈K/P⌉ rounds of comp/K).');
  L.push('- s·K: per-shard overhead (job fetch and bookkeeping, payload checks, result encoding and storage).');
  L.push('- g0 + g1·L: the rest of a step — hand-offs between jobs, the params snapshot written once and read by each');
  L.push('  process, results through Redis (base64 in the job and again in the events stream).');
  L.push('- reduce(H, K) = r0 + r1·L + r2·K: the reducer job (assemble K results, SGD, store, advance, next flow).');
  L.push('');
  L.push('Fitted on the 1 process × 1 thread measurements only (least squares); the 2×1 and 1×2 measurements are');
  L.push('held out as the check.');
  L.push('');
  L.push('| parameter | value | from |');
  L.push('|---|---:|---|');
  L.push(`| plan(H) | ${(mo.p[1] * 1e6).toFixed(1)} ns·L | planGradient, H = ${compute.map((c) => c.H).join(', ')} (through 0) |`);
  L.push(`| comp(H) | ${(mo.c[1] * 1e6).toFixed(0)} ns·L | FdEngine.shard(0, L), same H (through 0) |`);
  L.push(`| s (per shard) | ${ms(mo.s)} ms | step vs K, 1×1 |`);
  L.push(`| g0 + g1·L | ${ms(mo.g[0])} ms + ${(mo.g[1] * 1e6).toFixed(0)} ns·L | step residual, 1×1 |`);
  L.push(`| reduce(H, K) | ${ms(mo.r[0])} ms + ${(mo.r[1] * 1e6).toFixed(0)} ns·L + ${ms(mo.r[2])} ms·K | reducer job, 1×1 |`);
  L.push('');
  L.push('Compute, in process (one thread; medians, every run listed):');
  L.push('');
  L.push('| H | L | plan | FdEngine (comp) | per coordinate | runs (comp) | data handling |');
  L.push('|---:|---:|---:|---:|---:|---|---:|');
  for (const c of compute) L.push(`| ${c.H} | ${c.L} | ${ms(c.plan)} ms | ${ms(c.comp)} ms | ${((c.comp / c.L) * 1e6).toFixed(0)} ns | ${c.compMs.map(ms).join(', ')} | ${ms(c.codec)} ms |`);
  L.push('');
  L.push('Data handling: what a step does with one gradient besides computing it, in process — base64 and JSON');
  L.push('both ways, the SGD update and the snapshot\'s content hash (the queue does these, some more than once).');
  L.push('');
  L.push('## Measured through the queue');
  L.push('');
  L.push('Per step (ms; medians over the windows; Redis figures per step, the bench\'s polling subtracted):');
  L.push('');
  L.push('| workers | H | K | step | windows | shards | hand-off | reducer | shard job | Redis cmds | in | out | Redis CPU |');
  L.push('|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const m of data) {
    const w = m.m;
    L.push(`| ${label(m.setup)} | ${m.H} | ${m.K} | ${ms(w.stepMs)} | ${m.windows.map((x) => ms(x.stepMs)).join(', ')} | ${ms(w.shardsMs)} | ${ms(w.handoffMs)} | ${ms(w.reduceMs)} | ${ms(w.shardJobMs)} | ${w.cmds.toFixed(0)} | ${kib(w.inBytes)} | ${kib(w.outBytes)} | ${ms(w.redisCpuMs)} |`);
  }
  L.push('');
  L.push('(workers = processes × threads; shard job = median fd-shard job active → completed.)');
  if (r.idleRate !== undefined) L.push(`Idle workers' own traffic, included above: ${r.idleRate.cmds.toFixed(1)} commands/s (blocking fetches that time out, stalled checks).`);
  L.push('');
  const h50 = (s: string): Measurement[] => data.filter((m) => m.H === 50 && label(m.setup) === s);
  const row11 = h50('1×1');
  if (row11.length >= 2) {
    const k1 = row11[0];
    const kN = row11[row11.length - 1];
    L.push(`Ratios from this run: at H=50 on 1×1, K=${kN.K} vs K=${k1.K}: step ${(kN.m.stepMs / k1.m.stepMs).toFixed(2)}×, Redis commands ${(kN.m.cmds / k1.m.cmds).toFixed(2)}×.`);
    for (const s of ['2×1', '1×2']) {
      const pairs = h50(s).map((m) => [m, row11.find((x) => x.K === m.K)] as const).filter((p) => p[1] !== undefined);
      if (pairs.length > 0) L.push(`${s} vs 1×1 at H=50, step time ratio by K: ${pairs.map(([m, b]) => `K=${m.K} ${(m.m.stepMs / (b as Measurement).m.stepMs).toFixed(2)}×`).join(', ')}.`);
    }
    L.push('');
  }
  L.push('## Check: the model against the measurements');
  L.push('');
  const pEff = median(r.parallelism);
  L.push(`P = processes × threads (nominal). This machine has ${cpus.length} cores shared with other work: a gradient on a local pool of 2 threads`);
  L.push(`was **${pEff.toFixed(2)}×** faster than on 1 thread (median; per run ${r.parallelism.map((x) => x.toFixed(2)).join(', ')}), so the 2-way`);
  L.push('configurations are also predicted with that effective P ("P_eff"). "fit" rows were used to fit s, g and');
  L.push('reduce; "held out" rows were not.');
  L.push('');
  L.push('| workers | H | K | role | measured | predicted (P) | error | predicted (P_eff) | error | plan | comp/min(K,P) | s·K | g | reduce |');
  L.push('|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  const heldErr: number[] = [];
  const heldErrEff: number[] = [];
  const fitErr: number[] = [];
  for (const m of data) {
    const P = m.setup.processes * m.setup.threads;
    const p = predict(mo, P, m.H, m.K);
    const pe = predict(mo, P > 1 ? Math.min(P, pEff) : P, m.H, m.K);
    const err = (p.total - m.m.stepMs) / m.m.stepMs;
    const errEff = (pe.total - m.m.stepMs) / m.m.stepMs;
    if (r.fitOn(m)) fitErr.push(Math.abs(err));
    else {
      heldErr.push(Math.abs(err));
      heldErrEff.push(Math.abs(errEff));
    }
    const eff = P > 1 ? `${ms(pe.total)} | ${pct(errEff)}` : '= | =';
    L.push(`| ${label(m.setup)} | ${m.H} | ${m.K} | ${r.fitOn(m) ? 'fit' : 'held out'} | ${ms(m.m.stepMs)} | ${ms(p.total)} | ${pct(err)} | ${eff} | ${ms(p.plan)} | ${ms(p.comp)} | ${ms(p.shard)} | ${ms(p.rest)} | ${ms(p.reduce)} |`);
  }
  L.push('');
  L.push(`Median |error|: ${(median(fitErr) * 100).toFixed(0)}% on the fitted rows (max ${(Math.max(...fitErr) * 100).toFixed(0)}%); on the held-out rows **${(median(heldErr) * 100).toFixed(0)}%** with the nominal P (max ${(Math.max(...heldErr) * 100).toFixed(0)}%), **${(median(heldErrEff) * 100).toFixed(0)}%** with P_eff = ${pEff.toFixed(2)} (max ${(Math.max(...heldErrEff) * 100).toFixed(0)}%).`);
  L.push('');
  L.push('## Predictions');
  L.push('');
  L.push('W worker processes of 1 thread, each on a core of its own (P = W), one Redis, the model\'s best K (in');
  L.push('brackets; with s > 0 that is at most W). Step time in ms, and the speed-up over W = 1:');
  L.push('');
  const Ws = [1, 2, 4, 8, 16];
  const Hs = [100, 300, 1000];
  L.push(`| H (L) | ${Ws.map((w) => `W=${w}`).join(' | ')} | serial part |`);
  L.push(`|---|${Ws.map(() => '---:').join('|')}|---:|`);
  for (const H of Hs) {
    const base = predict(mo, 1, H, bestK(mo, 1, H)).total;
    const cells = Ws.map((W) => {
      const K = bestK(mo, W, H);
      const t = predict(mo, W, H, K).total;
      return `${ms(t)} [K=${K}] ${(base / t).toFixed(2)}×`;
    });
    const p = predict(mo, 1, H, 1);
    L.push(`| ${H} (${paramCount(H)}) | ${cells.join(' | ')} | ${ms(p.total - p.comp)} + s·K |`);
  }
  L.push('');
  L.push('Redis per step, at K = W (fitted on all measurements; the coefficients are below the table):');
  L.push('');
  L.push(`| H | ${Ws.map((w) => `W=${w}`).join(' | ')} |`);
  L.push(`|---|${Ws.map(() => '---').join('|')}|`);
  for (const H of Hs) {
    const cells = Ws.map((W) => {
      const Lh = paramCount(H);
      const xb = byteFeatures(Lh, W, W);
      return `${dot(mo.cmds, cmdFeatures(Lh, W, W)).toFixed(0)} cmds, ${kib(dot(mo.inBytes, xb) + dot(mo.outBytes, xb))}, ${ms(dot(mo.redisCpu, cpuFeatures(Lh, W, W)))} ms CPU`;
    });
    L.push(`| ${H} | ${cells.join(' | ')} |`);
  }
  L.push('');
  const f = (v: number[], names: string[]): string => v.map((x, i) => `${x.toPrecision(3)}${names[i] === '1' ? '' : `·${names[i]}`}`).join(' + ').replace(/\+ -/g, '− ');
  L.push(`- commands ≈ ${f(mo.cmds, ['1', 'K', '(processes − 1)'])}`);
  L.push(`- bytes in ≈ ${f(mo.inBytes, ['1', 'L', 'L·(processes − 1)', 'K'])}`);
  L.push(`- bytes out ≈ ${f(mo.outBytes, ['1', 'L', 'L·(processes − 1)', 'K'])}`);
  L.push(`- Redis CPU ms ≈ ${f(mo.redisCpu, ['1', 'L', 'K'])}`);
  L.push('');
  L.push('## What limits scaling');
  L.push('');
  const p1000 = predict(mo, 16, 1000, bestK(mo, 16, 1000));
  const serialNs = (mo.p[1] + mo.g[1] + mo.r[1]) * 1e6;
  const compNs = mo.c[1] * 1e6;
  const b = mo.inBytes;
  const bo = mo.outBytes;
  const L1000 = paramCount(1000);
  L.push(`- **One reducer per step, and the data path around it, are serial.** Steps of a run are sequential; per step`);
  L.push(`  plan + s·K + g + reduce does not shrink with W. Per coordinate the compute costs ${compNs.toFixed(0)} ns and`);
  L.push(`  parallelises; the serial part costs ${serialNs.toFixed(0)} ns (plan ${(mo.p[1] * 1e6).toFixed(0)}, g1 ${(mo.g[1] * 1e6).toFixed(0)}, reducer ${(mo.r[1] * 1e6).toFixed(0)}) plus`);
  L.push(`  ${ms(mo.g[0] + mo.r[0])} ms fixed and s = ${ms(mo.s)} ms per shard. So as H grows a step can get at most`);
  L.push(`  (${compNs.toFixed(0)} + ${serialNs.toFixed(0)}) / ${serialNs.toFixed(0)} ≈ **${((compNs + serialNs) / serialNs).toFixed(1)}×** faster than on one worker, however many workers (Amdahl).`);
  L.push(`  At H=1000 and W=16 the model puts compute at ${ms(p1000.comp)} ms of ${ms(p1000.total)} ms. More shards than workers only add s·K;`);
  L.push('  the best K is W (or fewer, when comp/K falls below s). To go further, the step itself must change: a');
  L.push('  binary result path instead of base64 in JSON, the reducer summing shards as they arrive, or several');
  L.push('  runs (or a larger batch) per Redis instead of one faster run.');
  L.push('- **Every process plans the step** (the forward pass at θ) and fetches the params snapshot: plan(H) is in');
  L.push('  every step however many workers there are, and Redis bytes out grow with the processes that get a shard.');
  L.push(`- **Redis bytes per step grow with L.** In: ≈ ${b[1].toFixed(1)}·L (θ_{t+1} stored once, 8·L; the K results as base64,`);
  L.push(`  ≈ 10.7·L) + ${(b[3] / 1024).toFixed(1)} KiB per shard. Out: ≈ ${bo[1].toFixed(1)}·L (θ read by a worker and by the reducer, 2 × 8·L;`);
  L.push(`  the results read by the reducer, 10.7·L) + ${bo[2].toFixed(1)}·L per extra process + ${(bo[3] / 1024).toFixed(1)} KiB per shard. At H=1000`);
  L.push(`  (L = ${L1000}) that is ≈ ${kib(dot(b, byteFeatures(L1000, 1, 1)) + dot(bo, byteFeatures(L1000, 1, 1)))} per step on one worker.`);
  L.push(`- **Redis memory:** BullMQ writes each shard's result into its job and again into the shards events stream`);
  L.push('  (the `completed` event carries the return value). The stream keeps ~2,000 events, ~4 per shard job, so');
  L.push(`  ~500 results: ≈ 500 · 10.7·L/K bytes, at H=1000 ≈ ${kib((500 * 10.7 * L1000) / 16)} with K=16 and ${kib((500 * 10.7 * L1000) / 4)} with K=4.`);
  L.push(`- **One Redis is one core:** ${ms(mo.redisCpu[0])} ms + ${(mo.redisCpu[1] * 1e6).toFixed(0)} ns·L + ${ms(mo.redisCpu[2])} ms·K of Redis CPU per step (≈ ${mo.cmds[1].toFixed(0)} commands per`);
  L.push('  shard: fetch, locks, completion, events, the parent\'s bookkeeping). That bounds the steps per second of');
  L.push(`  all runs sharing it: ≈ ${(1000 / dot(mo.redisCpu, cpuFeatures(L1000, 16, 16))).toFixed(0)} steps/s at H=1000, K=16.`);
  L.push(`- **${cpus.length} cores here, shared.** The 2-way configurations share the cores with Redis, the reducer, the workers'`);
  L.push('  event loops, this bench and whatever else runs (see the load average and P_eff); held-out errors include');
  L.push('  that. Predictions for W > 2 assume a core per worker and an unloaded Redis, and extrapolate H = 50–300');
  L.push('  to H = 1000 linearly in L.');
  L.push('- Windows are a few steps of one run each; the per-window values are listed so the spread is visible.');
  L.push('');
  L.push('## Reproduce');
  L.push('');
  L.push('```sh');
  const args = r.o.argv.filter((x, i) => !['--json', '--from'].includes(x) && !['--json', '--from'].includes(r.o.argv[i - 1]));
  L.push(`npm run bench:scaling${args.length > 0 ? ` -- ${args.join(' ')}` : ''}   # the full run: ~15 min on 2 cores; --json FILE keeps the raw data, --from FILE re-renders the page`);
  L.push('```');
  L.push('');
  return L.join('\n');
}

export async function main(argv: string[]): Promise<number> {
  const has = (f: string): boolean => argv.includes(f);
  const val = (f: string, d: number): number => {
    const i = argv.indexOf(f);
    if (i < 0) return d;
    const v = Number(argv[i + 1]);
    if (!Number.isInteger(v) || v < 1) throw new Error(`bench:scaling: ${f} must be an integer ≥ 1, got ${JSON.stringify(argv[i + 1])}`);
    return v;
  };
  const withValue = ['--windows', '--compute-runs', '--seed', '--poll-ms', '--json', '--from'];
  const known = ['--quick', '--no-write', ...withValue];
  const unknown = argv.filter((a, i) => a.startsWith('--') && !known.includes(a) && !(i > 0 && withValue.includes(argv[i - 1])));
  if (unknown.length > 0) throw new Error(`bench:scaling: unknown option ${unknown[0]} (known: ${known.join(', ')})`);
  const quick = has('--quick');
  const seedAt = argv.indexOf('--seed');
  const seed = seedAt < 0 ? 0 : Number(argv[seedAt + 1]);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new Error(`bench:scaling: --seed must be an integer ≥ 0, got ${JSON.stringify(argv[seedAt + 1])}`);
  const o: ScalingOptions = { quick, windows: val('--windows', quick ? 1 : 5), computeRuns: val('--compute-runs', quick ? 2 : 3), seed, pollMs: val('--poll-ms', 10), argv };
  const file = (f: string): string | undefined => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : undefined);
  const from = file('--from');
  const raw: RawData = from !== undefined ? (JSON.parse(readFileSync(from, 'utf8')) as RawData) : await runScaling(o);
  const json = file('--json');
  if (json !== undefined) writeFileSync(json, `${JSON.stringify(raw)}\n`);
  const md = renderRaw(raw);
  console.log(md);
  if (!has('--no-write')) {
    const path = join(REPO, 'docs/SCALING.md');
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, md + keptSection(path));
    console.log(`wrote ${relative(process.cwd(), path) || path}`);
  }
  return 0;
}

/**
 * The round-trip section of docs/SCALING.md comes from `npm run test:docker` (latency added with tc
 * netem between containers), not from this bench: a rewrite of the page keeps it, from its marker on.
 */

function keptSection(path: string): string {
  let old: string;
  try {
    old = readFileSync(path, 'utf8');
  } catch {
    return '';
  }
  const at = old.indexOf(ROUND_TRIP_MARKER);
  return at < 0 ? '' : `\n${old.slice(at)}`;
}

runIfEntry(import.meta.url, 'bench:scaling', main);
