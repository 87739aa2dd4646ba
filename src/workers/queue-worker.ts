import { hostname } from 'node:os';
import { FlowProducer, type Job, Queue, UnrecoverableError, Worker } from 'bullmq';
import {
  CeShardData, type CeShardResult, EvaluationData, type EvaluationResult, FdShardData, type FdShardResult, GradientData, type GradientResult,
  JOBS, QUEUES, TRAIN_SIZE, TrainStepData, parsePayload,
} from '../core/contract.js';
import { NumgradError, ValidationError } from '../core/errors.js';
import { paramCount } from '../core/layout.js';
import { reduceEvaluation } from '../core/reduce.js';
import { isEvalStep, sgdStep } from '../core/training.js';
import type { Logger } from '../io/logger.js';
import { redactUrl } from '../io/config.js';
import { type Connection, connect, isAuthError, sanitize } from '../io/redis.js';
import { checkClusterPrefix } from '../io/redis-url.js';
import { batchIndices, f64ToBase64, paramsVersion } from './codec.js';
import { assembleChildren, ceOrigin, fdOrigin } from './children.js';
import { EVAL_SHARD_SAMPLES, EVENTS_STREAMS, evaluationFlow, jobId, seededBatch, trainStepFlow } from './flows.js';
import { FunctionJobs, isFunctionJob } from './function-jobs.js';
import { Keys } from './keys.js';
import { Lru } from './lru.js';
import { LocalPool } from './pool.js';
import { RunState, failedChild, isFinal } from './run-state.js';
import { ShardCompute } from './shard-compute.js';
import { type Drainable, type ShutdownReport, drain } from './shutdown.js';
import { type RunSummary, Store } from './store.js';

export interface QueueWorkerOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  readonly threads: number;
  readonly mnistDir?: string;
  /** Folder of function modules (--functions, NUMGRAD_FUNCTIONS); built-ins only when absent. */
  readonly functionsDir?: string;
  readonly logger: Logger;
  /** Also consume the reduce queue (gradients, evaluations, training steps). Default true. */
  readonly reducer?: boolean;
  /**
   * Shard jobs in flight per process. Default 2 × threads, so every thread has the next one queued.
   * Also the bound on function evaluations in flight per process (async functions overlap).
   */
  readonly concurrency?: number;
  /** BullMQ lock duration and stalled-check interval (ms); shortened in fault tests. */
  readonly lockDuration?: number;
  readonly stalledInterval?: number;
  /**
   * Called once when Redis refuses the credentials, with a message fit to print (URL redacted).
   * Retrying cannot help then, and a worker that retries forever looks alive while doing nothing.
   */
  readonly onFatal?: (message: string) => void;
}

/**
 * `numgrad worker`: BullMQ workers whose processors are thin — validate the payload at the edge,
 * hand the numerics to the piscina pool (so this event loop stays free to renew locks), return a
 * compact binary result. A malformed job fails as unrecoverable with a message naming the field;
 * the worker takes the next job.
 */
export class QueueWorker implements Drainable {
  readonly pool: LocalPool;
  readonly compute: ShardCompute;
  private readonly conn: Connection;
  private readonly store: Store;
  private readonly runState: RunState;
  private readonly flows: FlowProducer;
  private readonly reduceQueue: Queue;
  private readonly workers: Worker[] = [];
  private readonly functions: FunctionJobs;
  private readonly paramsCache = new Lru<{ params: Float64Array; shared: SharedArrayBuffer }>(6);
  private closing: Promise<void> | undefined;
  /** Jobs whose processor runs here now, with their lock tokens (a shutdown hands them back). */
  private readonly inFlight = new Map<string, { job: Job; token: string | undefined }>();
  /** Shards completed by this process (for metrics and logs). */
  shardsDone = 0;

  constructor(private readonly opts: QueueWorkerOptions) {
    checkClusterPrefix(opts.redisUrl, opts.prefix);
    this.pool = new LocalPool({ threads: opts.threads, mnistDir: opts.mnistDir });
    this.compute = new ShardCompute(this.pool);
    this.conn = connect(opts.redisUrl, 'worker', (attempt, delay) => opts.logger.warn({ attempt, delayMs: delay }, 'Redis unreachable; retrying'));
    this.store = new Store(this.conn, new Keys(opts.prefix));
    this.runState = new RunState(this.conn, new Keys(opts.prefix));
    this.functions = new FunctionJobs({ threads: opts.threads, functionsDir: opts.functionsDir, mnistDir: opts.mnistDir, concurrency: opts.concurrency ?? 2 * opts.threads }, this.store);
    this.flows = new FlowProducer({ connection: this.conn, prefix: opts.prefix });
    this.reduceQueue = new Queue(QUEUES.reduce, { connection: this.conn, prefix: opts.prefix, streams: EVENTS_STREAMS });
    // Without a listener BullMQ prints each 'error' event with console.error: a stack that, for an
    // auth error, carries the AUTH command and its password.
    this.conn.on('error', (err: unknown) => this.checkFatal(err));
    this.flows.on('error', (err) => this.checkFatal(err));
    this.reduceQueue.on('error', (err) => this.checkFatal(err));
    const common = {
      connection: this.conn,
      prefix: opts.prefix,
      lockDuration: opts.lockDuration ?? 30_000,
      stalledInterval: opts.stalledInterval ?? 30_000,
      maxStalledCount: 2,
      // BullMQ records it on every job it takes (processedBy): which machine (container) and process
      // ran a job, on /queues and in the job hash.
      name: `${hostname()}:${process.pid}`,
    };
    const shards = new Worker(QUEUES.shards, (job: Job, token?: string) => this.track(job, token, () => this.onShard(job)), { ...common, concurrency: opts.concurrency ?? 2 * opts.threads });
    this.watch(shards);
    this.workers.push(shards);
    if (opts.reducer !== false) {
      const reduce = new Worker(QUEUES.reduce, (job: Job, token?: string) => this.track(job, token, () => this.onReduce(job)), { ...common, concurrency: 4 });
      this.watch(reduce);
      this.workers.push(reduce);
    }
  }

  private async track<T>(job: Job, token: string | undefined, run: () => Promise<T>): Promise<T> {
    const key = `${job.queueName}:${job.id}`;
    this.inFlight.set(key, { job, token });
    try {
      return await run();
    } finally {
      this.inFlight.delete(key);
    }
  }

  activeJobs(): readonly { readonly job: Job; readonly token: string | undefined }[] {
    return [...this.inFlight.values()];
  }

  /**
   * SIGTERM/SIGINT: take no new job, give the active ones up to `graceMs`, hand back what is left,
   * close; bounded even when Redis is unreachable (see shutdown.ts).
   */
  shutdown(graceMs: number, skip?: Promise<void>): Promise<ShutdownReport> {
    return drain(this, graceMs, skip);
  }

  redisUp(): boolean {
    return this.conn.status === 'ready';
  }

  /** Connections and threads dropped now, whatever runs (the connection first: a cut job must not be failed). */
  forceClose(): void {
    this.conn.disconnect();
    void this.pool.close().catch(() => undefined);
  }

  private watch(w: Worker): void {
    w.on('error', (err) => {
      this.opts.logger.error({ queue: w.name, err: sanitize(err, this.opts.redisUrl) }, 'worker error');
      this.checkFatal(err);
    });
    w.on('failed', (job, err) => {
      if (job === undefined) return;
      const d = job.data as { run?: unknown; step?: unknown };
      this.opts.logger.warn({ queue: w.name, jobId: job.id, job: job.name, run: d?.run, step: d?.step, attempts: job.attemptsMade, err: err.message }, 'job failed');
      // Also failures no processor saw: a parent failed for a child (failParentOnFailure), a job that stalled too often.
      if (isFinal(job, err)) void this.endRun(job, err);
    });
  }

  private fatal = false;

  private checkFatal(err: unknown): void {
    if (this.fatal || !isAuthError(err)) return;
    this.fatal = true;
    const url = this.opts.redisUrl;
    this.opts.onFatal?.(`Redis at ${redactUrl(url)} refused the credentials (check the password in --redis / REDIS_URL): ${sanitize(err, url)}`);
  }

  /** Resolves when both BullMQ workers are connected and listening. */
  async ready(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  private async onShard(job: Job): Promise<unknown> {
    try {
      if (isFunctionJob(job.name)) return await this.functions.shard(job);
      if (job.name === JOBS.fdShard) return await this.fdShard(parsePayload(FdShardData, job.name, job.data));
      if (job.name === JOBS.ceShard) return await this.ceShard(parsePayload(CeShardData, job.name, job.data));
      throw new ValidationError('shard', 'job name', `"${JOBS.fdShard}" or "${JOBS.ceShard}"`, job.name);
    } catch (err) {
      throw unrecoverable(err);
    } finally {
      this.shardsDone++;
    }
  }

  private async loadParams(version: string, hidden: number): Promise<{ params: Float64Array; shared: SharedArrayBuffer }> {
    const loaded = await this.paramsCache.get(version, async () => {
      let params: Float64Array | null;
      try {
        params = await this.store.getParams(version);
      } catch (err) {
        if (err instanceof ValidationError) throw new ValidationError('shard', 'data.params', err.expected, err.got);
        throw err;
      }
      if (params === null) throw new ValidationError('shard', 'data.params', 'a params version stored in Redis', `unknown version ${version.slice(0, 12)}…`);
      return snapshot(params);
    });
    // Checked for every job, not only the one whose load fills the cache: a later job naming the
    // same version may claim another H (and with it a range past the end of these params).
    const { params } = loaded;
    if (params.length !== paramCount(hidden)) {
      const fits = params.length >= paramCount(1) && (params.length - 10) % 795 === 0;
      if (!fits) throw new ValidationError('shard', 'data.params', 'a snapshot of 795·H + 10 float64 values', `${params.length} values`);
      throw new ValidationError('shard', 'data.hidden', `${(params.length - 10) / 795} for params of length ${params.length}`, hidden);
    }
    return loaded;
  }

  private async fdShard(d: FdShardData): Promise<FdShardResult> {
    const { params } = await this.loadParams(d.params, d.hidden);
    const { values, loss } = await this.compute.range(d.params, params, d.batch, d.h, d.start, d.end);
    return { start: d.start, end: d.end, data: f64ToBase64(values), ...(d.start === 0 ? { loss } : {}), of: fdOrigin(d.params, d.hidden, d.batch, d.h) };
  }

  private async ceShard(d: CeShardData): Promise<CeShardResult> {
    const { shared } = await this.loadParams(d.params, d.hidden);
    const indices = d.split === 'batch' && d.batch !== undefined ? batchIndices(d.batch, TRAIN_SIZE) : undefined;
    const r = await this.pool.evaluationShard(shared, d.split === 'test' ? 'test' : 'train', d.start, d.end, indices);
    return { start: d.start, end: d.end, losses: f64ToBase64(r.losses), correct: r.correct, of: ceOrigin(d.params, d.hidden, d.split, d.batch) };
  }

  private async onReduce(job: Job): Promise<unknown> {
    try {
      if (isFunctionJob(job.name)) return await this.functions.reduce(job);
      const child = await failedChild(job);
      if (child !== undefined) throw child;
      if (job.name === JOBS.gradient) return await this.reduceGradient(job, parsePayload(GradientData, job.name, job.data));
      if (job.name === JOBS.evaluation) return await this.reduceEvaluation(job, parsePayload(EvaluationData, job.name, job.data));
      if (job.name === JOBS.trainStep) return await this.trainStep(job, parsePayload(TrainStepData, job.name, job.data));
      throw new ValidationError('reduce', 'job name', `"${JOBS.gradient}", "${JOBS.evaluation}" or "${JOBS.trainStep}"`, job.name);
    } catch (err) {
      const e = unrecoverable(err);
      // Recorded here, under the job's lock, before BullMQ moves the job to failed: a process that
      // dies in between leaves a stalled job that is redone and records it again.
      if (e instanceof Error && isFinal(job, e, job.attemptsMade + 1)) await this.endRun(job, e);
      throw e;
    }
  }

  /** A run's step or evaluation failed for good: the run is failed, with the reason, now. */
  private async endRun(job: Job, err: Error): Promise<void> {
    try {
      const run = await this.runState.failJob(job, err);
      if (run !== undefined) this.opts.logger.error({ run, jobId: job.id, job: job.name, err: err.message }, 'run failed');
    } catch (e) {
      this.opts.logger.warn({ jobId: job.id, err: sanitize(e, this.opts.redisUrl) }, 'could not record the run as failed');
    }
  }

  private async reduceGradient(job: Job, d: GradientData): Promise<GradientResult> {
    const { out, loss } = await assembleChildren(job, JOBS.gradient, paramCount(d.hidden), fdOrigin(d.params, d.hidden, d.batch, d.h));
    const key = await this.store.putResult(String(job.id), out, d.resultTtl);
    await this.store.release(d.params, d.holder);
    return { key, bytes: out.byteLength, loss };
  }

  private async reduceEvaluation(job: Job, d: EvaluationData): Promise<EvaluationResult> {
    const total = d.split === 'train' ? TRAIN_SIZE : d.split === 'test' ? 10_000 : d.batch?.kind === 'indices' ? d.batch.count : (d.batch?.size ?? 0);
    const { out, correct } = await assembleChildren(job, JOBS.evaluation, total, ceOrigin(d.params, d.hidden, d.split, d.batch));
    const r = reduceEvaluation(out, correct);
    if (d.run !== undefined) {
      await this.store.recordEval(d.run.id, d.run.iter, d.split, { loss: r.loss, accuracy: r.accuracy });
      this.opts.logger.info({ queue: QUEUES.reduce, jobId: job.id, run: d.run.id, step: d.run.iter, split: d.split, accuracy: r.accuracy, loss: r.loss }, 'epoch evaluation');
    }
    await this.store.release(d.params, d.holder);
    if (d.run !== undefined) await this.tryFinish(d.run.id);
    return { loss: r.loss, accuracy: r.accuracy, count: r.count, correct: r.correct };
  }

  /**
   * One training step: θ_{t+1} = θ_t − lr·g_t, written once (a Lua check on the run's step makes a
   * duplicate a no-op), then the epoch evaluations and step t+1 enqueued under deterministic ids.
   * Every action after the advance is idempotent, so a reducer that dies half-way is simply re-run.
   */
  private async trainStep(job: Job, d: TrainStepData): Promise<{ step: number; advanced: boolean }> {
    const run = await this.store.getRun(d.run);
    if (run === null) throw new ValidationError('train-step', 'data.run', 'an existing run', d.run);
    const holderT = jobId('run', d.run, 'step', d.step);
    if (run.state !== 'running' || run.step > d.step + 1 || run.step < d.step) {
      // A stopped run keeps its current snapshot (held for this step): `numgrad resume` goes on from it.
      if (run.state === 'running' || run.step !== d.step) await this.store.release(d.params, holderT);
      return { step: d.step, advanced: false };
    }
    const cfg = run.config;
    const t = d.step;
    let next: string;
    let advanced = false;
    if (run.step === t) {
      const { out: g, loss } = await assembleChildren(job, JOBS.trainStep, paramCount(cfg.hidden), fdOrigin(d.params, cfg.hidden, seededBatch(cfg.seed, t, cfg.batch), cfg.h));
      // θ_t as this process's shards loaded it, else from Redis.
      const theta = (await this.paramsCache.peek(d.params)?.catch(() => undefined))?.params ?? (await this.store.getParams(d.params));
      if (theta === null) throw new ValidationError('train-step', 'data.params', 'a params version stored in Redis', d.params);
      // The shards check the snapshot when they load it, but may have loaded it before it changed.
      const bad = theta.findIndex((x) => !Number.isFinite(x));
      if (bad >= 0) throw new ValidationError('train-step', `data.params[${bad}]`, 'a finite number in the stored snapshot', theta[bad]);
      const nextParams = sgdStep(theta, g, cfg.lr);
      next = paramsVersion(nextParams);
      await this.store.putParams(nextParams, jobId('run', d.run, 'step', t + 1), next);
      if (isEvalStep(cfg, t)) {
        await this.store.hold(next, jobId('run', d.run, 'eval', t, 'train'));
        await this.store.hold(next, jobId('run', d.run, 'eval', t, 'test'));
        await this.store.addPending(d.run, `eval:${t}:train`, `eval:${t}:test`);
      }
      advanced = (await this.store.advance(d.run, t, next, JSON.stringify({ iter: t, loss }), loss)) === 1;
      this.opts.logger.debug({ queue: QUEUES.reduce, jobId: job.id, run: d.run, step: t, loss }, 'step');
    } else {
      next = run.params;
    }
    if (isEvalStep(cfg, t)) {
      for (const split of ['train', 'test'] as const) {
        // After a crash between the advance and here, add only evaluations still pending.
        if (!advanced && !(await this.store.isPending(d.run, `eval:${t}:${split}`))) continue;
        const holder = jobId('run', d.run, 'eval', t, split);
        const data: EvaluationData = { v: 1, params: next, hidden: cfg.hidden, split, holder, run: { id: d.run, iter: t } };
        await this.flows.add(evaluationFlow(data, holder, EVAL_SHARD_SAMPLES));
      }
    }
    if (t + 1 < cfg.iters) {
      if ((await this.store.state(d.run)) === 'running') {
        await this.flows.add(trainStepFlow(d.run, t + 1, next, cfg.hidden, cfg.seed, cfg.batch, cfg.h, cfg.shards));
      }
      // Stopped meanwhile: θ_{t+1} stays held for step t+1, which `numgrad resume` enqueues.
    } else {
      await this.store.keepFinalParams(d.run, next);
      await this.store.release(next, jobId('run', d.run, 'step', t + 1));
    }
    await this.store.release(d.params, holderT);
    if (t + 1 >= cfg.iters) await this.tryFinish(d.run);
    return { step: t, advanced };
  }

  private async tryFinish(id: string): Promise<void> {
    const run: RunSummary | null = await this.store.getRun(id);
    if (run === null || run.step < run.iters) return;
    if (await this.store.finish(id, run.iters)) this.opts.logger.info({ run: id, step: run.step }, 'run done');
  }

  /** Finishes active jobs, then closes workers, connections and the pool; safe to call twice. */
  close(): Promise<void> {
    if (this.closing === undefined) {
      this.closing = (async () => {
        await Promise.all(this.workers.map((w) => w.close()));
        await this.flows.close();
        await this.reduceQueue.close();
        await this.pool.close();
        await this.functions.close();
        this.conn.disconnect();
      })();
    }
    return this.closing;
  }
}

/**
 * A params snapshot as the shards use it. Anyone who can write to Redis can store a snapshot: NaN or
 * ±Infinity in it would make every derivative NaN (or a silent garbage step), so it is refused once,
 * when the snapshot is loaded.
 */
function snapshot(params: Float64Array): { params: Float64Array; shared: SharedArrayBuffer } {
  for (let c = 0; c < params.length; c++) {
    if (!Number.isFinite(params[c])) throw new ValidationError('shard', `data.params[${c}]`, 'a finite number in the stored snapshot', params[c]);
  }
  const shared = new SharedArrayBuffer(params.byteLength);
  new Float64Array(shared).set(params);
  return { params, shared };
}

/** numgrad's own errors mean the job itself is wrong: retrying cannot help. */
function unrecoverable(err: unknown): unknown {
  if (err instanceof NumgradError) return new UnrecoverableError(err.message);
  return err;
}
