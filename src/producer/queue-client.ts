import { randomBytes } from 'node:crypto';
import { CONTRACT_VERSION, type EvaluationData, type EvaluationResult, type GradientData, GradientResult, parsePayload } from '../core/contract.js';
import { NumgradError, ValidationError } from '../core/errors.js';
import { hiddenFromLength } from '../core/layout.js';
import { type StepMetrics, type TrainConfig, initialParams } from '../core/training.js';
import { redactUrl } from '../io/config.js';
import { isAuthError, sanitize, waitReady } from '../io/redis.js';
import { checkClusterPrefix } from '../io/redis-url.js';
import { i32ToBase64 } from '../queue/codec.js';
import { DEFAULT_QUEUE_SHARDS, evaluationFlow, gradientFlow, jobId, trainStepFlow } from '../queue/flows.js';
import { failedShard } from '../queue/job-watch.js';
import { ProducerQueues } from '../queue/producer-queues.js';
import { RunRetention } from '../queue/retention.js';
import { evaluationsByIter, withEvaluations } from '../queue/run-evaluations.js';
import type { ListedRun } from '../queue/run-record.js';
import type { RunSummary, Store } from '../queue/store.js';
import { type ReduceFlowContext, runReduceFlow } from './reduce-flow.js';
import { followRun } from './run-follow.js';
import { resumeRun } from './run-resume.js';

export interface QueueClientOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  /** How long to wait for one gradient or evaluation (ms). Default 10 minutes. */
  readonly timeoutMs?: number;
}

const newId = (): string => randomBytes(6).toString('hex');

/**
 * The producer side of the queue: submits gradients, evaluations and training runs as BullMQ flows
 * and reads their results. Fails fast when Redis is down (producer connection settings).
 */
export class QueueClient {
  readonly store: Store;
  private readonly q: ProducerQueues;
  private closing: Promise<void> | undefined;
  private readying: Promise<void> | undefined;

  constructor(private readonly opts: QueueClientOptions) {
    checkClusterPrefix(opts.redisUrl, opts.prefix);
    this.q = new ProducerQueues(opts.redisUrl, opts.prefix);
    this.store = this.q.store;
  }

  /** Checks the connection once; a wrong URL or password is a clear error, not a hang. */
  async ping(timeoutMs = 5_000): Promise<void> {
    try {
      await waitReady(this.q.conn, timeoutMs, true);
      await this.q.conn.ping();
      this.readying ??= Promise.resolve(); // commands need not ping again
    } catch (err) {
      if (isAuthError(err)) throw new NumgradError(`Redis at ${this.redactedUrl()} refused the credentials (check the password in --redis / REDIS_URL): ${sanitize(err, this.opts.redisUrl)}`);
      throw new NumgradError(`Redis at ${this.redactedUrl()} does not answer: ${sanitize(err, this.opts.redisUrl)} (start it, or give the right --redis / REDIS_URL)`);
    }
  }

  /**
   * Every command waits for this first: the producer connection fails fast, so a command issued
   * before the connection is ready would be rejected. One ping, shared by all callers; a failure is
   * thrown to each of them and the next call tries again.
   */
  private ready(): Promise<void> {
    this.readying ??= this.ping().catch((err: unknown) => {
      this.readying = undefined;
      throw err;
    });
    return this.readying;
  }

  redactedUrl(): string {
    return redactUrl(this.opts.redisUrl);
  }

  async workersOnline(): Promise<number> {
    await this.ready();
    return this.q.shards.getWorkersCount();
  }

  private async flowContext(): Promise<ReduceFlowContext> {
    return { store: this.store, flows: this.q.flows, events: await this.q.reduceEvents(), timeoutMs: this.opts.timeoutMs ?? 600_000, childReason: (r) => this.childReason(r) };
  }

  /** The gradient at `params` on training samples `indices`: a flow of `shards` fd-shards and a reducer. */
  async gradient(params: Float64Array, indices: Int32Array, h: number, shards = DEFAULT_QUEUE_SHARDS): Promise<{ gradient: Float64Array; loss: number; seconds: number; jobId: string }> {
    await this.ready();
    const t0 = performance.now();
    const hidden = hiddenFromLength(params.length);
    const ctx = await this.flowContext();
    const id = jobId('grad', newId());
    const flow = (version: string) => {
      const data: GradientData = { v: CONTRACT_VERSION, params: version, hidden, batch: { kind: 'indices', count: indices.length, indices: i32ToBase64(indices) }, h, holder: id, resultTtl: 3600 };
      return gradientFlow(data, shards, id);
    };
    return runReduceFlow(ctx, id, params, flow, async (result) => {
      const res = parsePayload(GradientResult, 'gradient result', result);
      const gradient = await this.store.takeResult(res.key);
      if (gradient === null) throw new NumgradError(`gradient ${id}: its result ${res.key} expired before it was read`);
      return { gradient, loss: res.loss, seconds: (performance.now() - t0) / 1000, jobId: id };
    });
  }

  /** Mean cross-entropy and accuracy of `params` over a split, through ce-shards and a reducer. */
  async evaluate(params: Float64Array, split: 'train' | 'test'): Promise<EvaluationResult & { seconds: number }> {
    await this.ready();
    const t0 = performance.now();
    const ctx = await this.flowContext();
    const id = jobId('eval', newId());
    const flow = (version: string) => {
      const data: EvaluationData = { v: CONTRACT_VERSION, params: version, hidden: hiddenFromLength(params.length), split, holder: id };
      return evaluationFlow(data, id);
    };
    return runReduceFlow(ctx, id, params, flow, async (result) => ({ ...(result as EvaluationResult), seconds: (performance.now() - t0) / 1000 }));
  }

  /** Creates a run in Redis and enqueues its step 0; the run then advances on the workers alone. */
  async startRun(cfg: TrainConfig, shards = DEFAULT_QUEUE_SHARDS, id = newId()): Promise<string> {
    await this.ready();
    if (!/^[A-Za-z0-9_-]{1,64}$/.test(id)) throw new ValidationError('train', '--run-id', 'letters, digits, _ or -, 1–64 characters', id);
    const params = initialParams(cfg);
    const version = await this.store.putParams(params, jobId('run', id, 'step', 0));
    if (!(await this.store.createRun(id, { ...cfg, shards }, version))) {
      await this.store.release(version, jobId('run', id, 'step', 0));
      throw new ValidationError('train', '--run-id', 'a new run id', `${id} (exists already)`);
    }
    await this.q.flows.add(trainStepFlow(id, 0, version, cfg.hidden, cfg.seed, cfg.batch, cfg.h, shards));
    return id;
  }

  async run(id: string): Promise<RunSummary> {
    await this.ready();
    return this.runNow(id);
  }

  /** run() without waiting for readiness: follow() polls through outages and start-up itself. */
  private async runNow(id: string): Promise<RunSummary> {
    const r = await this.store.getRun(id);
    if (r === null) throw new ValidationError('run', 'RUN', 'the id of an existing run (see `numgrad runs`)', id);
    return r;
  }

  async listRuns(limit?: number): Promise<ListedRun[]> {
    await this.ready();
    return this.store.listRuns(limit);
  }

  /** Removal of runs and every key they have (`numgrad runs rm`, `numgrad runs prune`). */
  async retention(): Promise<RunRetention> {
    await this.ready();
    return new RunRetention(this.store, { shards: this.q.shards, reduce: this.q.reduce });
  }

  async cancel(id: string): Promise<RunSummary> {
    await this.ready();
    const r = await this.run(id);
    if (r.state === 'running') await this.store.setState(id, 'cancelled');
    return this.run(id);
  }

  /** Restarts a failed or cancelled run from its last completed step (see run-resume.ts). */
  async resume(id: string): Promise<RunSummary> {
    await this.ready();
    return resumeRun({ store: this.store, flows: this.q.flows, reduce: this.q.reduce }, id);
  }

  /** The failed shard's own reason (`child <key> failed` names it), else `reason`. */
  private async childReason(reason: string): Promise<string> {
    const child = await failedShard(this.q.shards, this.opts.prefix, reason);
    return child?.failedReason ? `${child.failedReason} (shard ${child.id})` : reason;
  }

  /** The reason a run's current step failed for good, if it did (a shard that failed fails its step). */
  async stepFailure(run: RunSummary): Promise<string | undefined> {
    await this.ready();
    const job = await this.q.reduce.getJob(jobId('run', run.id, 'step', run.step));
    if (job !== undefined && (await job.getState()) === 'failed') return this.childReason(job.failedReason);
    return undefined;
  }

  /**
   * Follows a run until it ends, calling `onUpdate` with each new metrics line (epoch lines carry
   * the accuracies once their evaluations are in). Polls: a run lives in Redis, not in this process.
   */
  follow(id: string, onUpdate: (m: StepMetrics, run: RunSummary) => void, pollMs = 200, shouldStop: () => boolean = () => false): Promise<RunSummary> {
    return followRun({
      store: this.store,
      run: (runId) => this.runNow(runId),
      stepFailure: (run) => this.stepFailure(run),
      connected: () => this.q.conn.status === 'ready',
      outage: (down, err) => new NumgradError(`Redis at ${this.redactedUrl()} has not answered for ${Math.round(down / 1000)} s while following run ${id} (${sanitize(err, this.opts.redisUrl)}); the run stays in Redis: \`numgrad follow ${id}\` once it is back`),
    }, id, onUpdate, pollMs, shouldStop);
  }

  /** Every metrics line with the epoch evaluations merged in (the local backend's metrics.jsonl). */
  async runMetrics(id: string): Promise<StepMetrics[]> {
    await this.ready();
    const lines = (await this.store.metrics(id)).map((l) => JSON.parse(l) as StepMetrics);
    return withEvaluations(lines, evaluationsByIter(await this.store.evals(id)));
  }

  /** The run's final params (done), or its current params (running). */
  async runParams(id: string): Promise<Float64Array | null> {
    await this.ready();
    const fin = await this.store.finalParams(id);
    if (fin !== null) return fin;
    const r = await this.run(id);
    return r.params ? this.store.getParams(r.params) : null;
  }

  close(): Promise<void> {
    this.closing ??= this.q.close();
    return this.closing;
  }
}
