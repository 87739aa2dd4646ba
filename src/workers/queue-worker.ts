import { hostname } from 'node:os';
import { FlowProducer, type Job, Queue, Worker } from 'bullmq';
import { QUEUES } from '../core/contract.js';
import { redactUrl } from '../io/config.js';
import { type Connection, connect, isAuthError, sanitize } from '../io/redis.js';
import { checkClusterPrefix } from '../io/redis-url.js';
import { EVENTS_STREAMS } from '../queue/flows.js';
import { Keys } from '../queue/keys.js';
import { RunState, isFinal } from '../queue/run-state.js';
import { Store } from '../queue/store.js';
import { FunctionJobs } from './function-jobs.js';
import { Reducers } from './reducers.js';
import { ShardProcessor } from './shard-processor.js';
import { type Drainable, type ShutdownReport, drain } from './shutdown.js';
import { LocalPool } from './threads/pool.js';
import { type QueueWorkerOptions, WORKER_DEFAULTS } from './worker-options.js';

export type { QueueWorkerOptions } from './worker-options.js';

/**
 * `numgrad worker`: two BullMQ workers — the shard queue (shard-processor.ts: payload checked at the
 * edge, numerics on the piscina pool, so this event loop stays free to renew locks) and the reduce
 * queue (reducers.ts, train-step.ts) — over one connection. A malformed job fails as unrecoverable
 * with a message naming the field; the worker takes the next job.
 */
export class QueueWorker implements Drainable {
  readonly pool: LocalPool;
  private readonly conn: Connection;
  private readonly flows: FlowProducer;
  private readonly reduceQueue: Queue;
  private readonly shardsQueue: Queue;
  private soloCheck: { at: number; solo: Promise<boolean> } | undefined;
  private readonly workers: Worker[] = [];
  private readonly functions: FunctionJobs;
  private readonly reducers: Reducers;
  private closing: Promise<void> | undefined;
  private fatal = false; // Redis refused the credentials (reported once)
  /** Jobs whose processor runs here now, with their lock tokens (a shutdown hands them back). */
  private readonly inFlight = new Map<string, { job: Job; token: string | undefined }>();
  private readonly shards: ShardProcessor;

  /** Shards processed by this process (for metrics and logs). */
  get shardsDone(): number {
    return this.shards.done;
  }

  constructor(private readonly opts: QueueWorkerOptions) {
    checkClusterPrefix(opts.redisUrl, opts.prefix);
    const concurrency = opts.concurrency ?? WORKER_DEFAULTS.concurrency(opts.threads);
    this.pool = new LocalPool({ threads: opts.threads, mnistDir: opts.mnistDir });
    this.conn = connect(opts.redisUrl, 'worker', (attempt, delay) => opts.logger.warn({ attempt, delayMs: delay }, 'Redis unreachable; retrying'));
    const keys = new Keys(opts.prefix);
    const store = new Store(this.conn, keys);
    this.functions = new FunctionJobs({ threads: opts.threads, functionsDir: opts.functionsDir, mnistDir: opts.mnistDir, concurrency }, store);
    this.flows = new FlowProducer({ connection: this.conn, prefix: opts.prefix });
    this.reduceQueue = new Queue(QUEUES.reduce, { connection: this.conn, prefix: opts.prefix, streams: EVENTS_STREAMS });
    this.shardsQueue = new Queue(QUEUES.shards, { connection: this.conn, prefix: opts.prefix, streams: EVENTS_STREAMS });
    const shards = (this.shards = new ShardProcessor(this.pool, store, this.functions));
    this.reducers = new Reducers({
      store, runState: new RunState(this.conn, keys), flows: this.flows, functions: this.functions, logger: opts.logger,
      loaded: (version) => shards.loaded(version),
      results: { keys, getShardResults: (ids) => store.getShardResults(ids), cached: (id, start, end, params) => shards.cached(id, start, end, params) },
      warnUnrecorded: (job, err) => opts.logger.warn({ jobId: job.id, err: sanitize(err, opts.redisUrl) }, 'could not record the run as failed'),
      gradient: (params, indices, h) => this.pool.gradient(params, indices, h),
      solo: () => this.solo(),
      stopping: () => this.closing !== undefined,
      lockMs: opts.lockDuration ?? WORKER_DEFAULTS.lockDuration,
    });
    // Without a listener BullMQ prints each 'error' event with console.error: a stack that, for an
    // auth error, carries the AUTH command and its password.
    this.conn.on('error', (err: unknown) => this.checkFatal(err));
    this.flows.on('error', (err) => this.checkFatal(err));
    this.reduceQueue.on('error', (err) => this.checkFatal(err));
    this.shardsQueue.on('error', (err) => this.checkFatal(err));
    const common = {
      connection: this.conn,
      prefix: opts.prefix,
      lockDuration: opts.lockDuration ?? WORKER_DEFAULTS.lockDuration,
      stalledInterval: opts.stalledInterval ?? WORKER_DEFAULTS.stalledInterval,
      maxStalledCount: WORKER_DEFAULTS.maxStalledCount,
      // BullMQ records it on every job it takes (processedBy): which machine (container) and process
      // ran a job, on /queues and in the job hash.
      name: `${hostname()}:${process.pid}`,
    };
    this.listen(new Worker(QUEUES.shards, (job: Job, token?: string) => this.track(job, token, () => this.shards.process(job)), { ...common, concurrency }));
    if (opts.reducer ?? WORKER_DEFAULTS.reducer) {
      this.listen(new Worker(QUEUES.reduce, (job: Job, token?: string) => this.track(job, token, () => this.reducers.process(job)), { ...common, concurrency: WORKER_DEFAULTS.reduceConcurrency }));
    }
  }

  /**
   * Whether this is the only worker process listening on the shard queue (BullMQ's worker count:
   * its named connections in CLIENT LIST), looked up at most every SOLO_CHECK_MS. Then a run's
   * steps are a train-drive job here rather than a flow per step. Unknown counts as not alone.
   */
  private solo(): Promise<boolean> {
    if (!(this.opts.drive ?? WORKER_DEFAULTS.drive)) return Promise.resolve(false);
    const now = Date.now();
    if (this.soloCheck === undefined || now - this.soloCheck.at >= WORKER_DEFAULTS.soloCheckMs) {
      this.soloCheck = { at: now, solo: this.shardsQueue.getWorkersCount().then((n) => n <= 1, () => false) };
    }
    return this.soloCheck.solo;
  }

  private async track<T>(job: Job, token: string | undefined, run: () => Promise<T>): Promise<T> {
    // By attempt: a stale attempt of a job (it outlived its lock) may still be running here beside the live one.
    const key = `${job.queueName}:${job.id}:${token ?? ''}`;
    this.inFlight.set(key, { job, token });
    try {
      return await run();
    } finally {
      this.inFlight.delete(key);
    }
  }

  private listen(w: Worker): void {
    this.workers.push(w);
    w.on('error', (err) => {
      this.opts.logger.error({ queue: w.name, err: sanitize(err, this.opts.redisUrl) }, 'worker error');
      this.checkFatal(err);
    });
    w.on('failed', (job, err) => {
      if (job === undefined) return;
      const d = job.data as { run?: unknown; step?: unknown };
      this.opts.logger.warn({ queue: w.name, jobId: job.id, job: job.name, run: d?.run, step: d?.step, attempts: job.attemptsMade, err: err.message }, 'job failed');
      // Also failures no processor saw: a parent failed for a child (failParentOnFailure), a job that stalled too often.
      if (isFinal(job, err)) void this.reducers.endRun(job, err);
    });
  }

  private checkFatal(err: unknown): void {
    if (this.fatal || !isAuthError(err)) return;
    this.fatal = true;
    const url = this.opts.redisUrl;
    this.opts.onFatal?.(`Redis at ${redactUrl(url)} refused the credentials (check the password in --redis / REDIS_URL): ${sanitize(err, url)}`);
  }

  activeJobs(): readonly { readonly job: Job; readonly token: string | undefined }[] {
    return [...this.inFlight.values()];
  }

  redisUp(): boolean {
    return this.conn.status === 'ready';
  }

  /** Resolves when both BullMQ workers are connected and listening. */
  async ready(): Promise<void> {
    await Promise.all(this.workers.map((w) => w.waitUntilReady()));
  }

  /** SIGTERM/SIGINT: no new job; active ones get `graceMs`, the rest are handed back (shutdown.ts). */
  shutdown(graceMs: number, skip?: Promise<void>): Promise<ShutdownReport> {
    return drain(this, graceMs, skip);
  }

  /** Connections and threads dropped now, whatever runs (the connection first: a cut job must not be failed). */
  forceClose(): void {
    this.conn.disconnect();
    void this.pool.close().catch(() => undefined);
  }

  /** Finishes active jobs, then closes workers, connections and the pool; safe to call twice. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      await Promise.all(this.workers.map((w) => w.close()));
      await this.flows.close();
      await this.reduceQueue.close();
      await this.shardsQueue.close();
      await this.pool.close();
      await this.functions.close();
      this.conn.disconnect();
    })();
    return this.closing;
  }
}
