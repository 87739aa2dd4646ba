import { randomBytes } from 'node:crypto';
import { type FlowJob, Job } from 'bullmq';
import {
  DEFAULT_FN_TIMEOUT_MS, FN_JOBS, type FnDiffShardData, type FnMapShardData, type FnReduceData, FnResult, MAX_FN_DIM, QUEUES, parsePayload,
} from '../core/contract.js';
import { NumgradError } from '../core/errors.js';
import type { DiffSpec } from '../core/numdiff.js';
import { splitEven } from '../core/shard.js';
import { sanitize } from '../io/redis.js';
import { f64ToBase64 } from '../queue/codec.js';
import { PARENT_OPTS, SHARD_OPTS, jobId } from '../queue/flows.js';
import { failedShard, watchJob } from '../queue/job-watch.js';
import { ProducerQueues } from '../queue/producer-queues.js';

export interface FunctionClientOptions {
  readonly redisUrl: string;
  readonly prefix: string;
  /** How long to wait for one submission (ms). Default 1 hour. */
  readonly timeoutMs?: number;
}

export interface FnSubmission {
  readonly fn: string;
  readonly args?: Record<string, unknown>;
  /** Per-evaluation timeout (ms); default 60 s. */
  readonly timeoutMs?: number;
}

const SHARD = { ...SHARD_OPTS, attempts: 1 };

/**
 * Submits fn-diff and fn-map flows (docs/JOBS.md) and reads their results: each point split into
 * `shards` coordinate shards (diff) or the points into shards (map), all on the `shards` queue.
 * A function's failure is final (attempts 1: the same evaluation fails the same way).
 */
export class FunctionClient {
  private readonly q: ProducerQueues;
  private closing: Promise<void> | undefined;

  constructor(private readonly opts: FunctionClientOptions) {
    this.q = new ProducerQueues(opts.redisUrl, opts.prefix);
  }

  async diff(s: FnSubmission, X: Float64Array, k: number, n: number, spec: DiffSpec, shards: number, onProgress?: (done: number, total: number) => void): Promise<{ values: Float64Array; result: FnResult; jobId: string }> {
    const id = jobId('fn', newId());
    const children: FlowJob[] = [];
    const bounds = { ...(spec.lower ? { lower: f64ToBase64(spec.lower) } : {}), ...(spec.upper ? { upper: f64ToBase64(spec.upper) } : {}) };
    for (let p = 0; p < k; p++) {
      const x = f64ToBase64(X.subarray(p * n, (p + 1) * n));
      splitEven(n, shards).forEach((r, j) => {
        const data: FnDiffShardData = {
          v: 1, fn: s.fn, ...(s.args ? { args: s.args } : {}), method: spec.method,
          ...(spec.h !== undefined ? { h: spec.h } : {}), ...(spec.relStep !== undefined ? { relStep: spec.relStep } : {}), ...(spec.absStep !== undefined ? { absStep: spec.absStep } : {}),
          ...bounds, point: p, n, x, start: r.start, end: r.end, timeoutMs: s.timeoutMs ?? DEFAULT_FN_TIMEOUT_MS,
        };
        children.push({ name: FN_JOBS.diffShard, queueName: QUEUES.shards, data, opts: { ...SHARD, jobId: jobId(id, 'p', p, 's', j) } });
      });
    }
    return this.submit(FN_JOBS.diff, id, { v: 1, fn: s.fn, k, n, resultTtl: 3600 }, children, onProgress);
  }

  async map(s: FnSubmission, X: Float64Array, k: number, n: number, shards: number, onProgress?: (done: number, total: number) => void): Promise<{ values: Float64Array; result: FnResult; jobId: string }> {
    const id = jobId('fn', newId());
    // At least `shards` shards, and small enough that a shard's points fit a job (≤ MAX_FN_DIM values).
    const count = Math.min(k, Math.max(shards, Math.ceil((k * n) / MAX_FN_DIM)));
    const children: FlowJob[] = splitEven(k, count).map((r, j) => {
      const data: FnMapShardData = { v: 1, fn: s.fn, ...(s.args ? { args: s.args } : {}), n, k, x: f64ToBase64(X.subarray(r.start * n, r.end * n)), start: r.start, end: r.end, timeoutMs: s.timeoutMs ?? DEFAULT_FN_TIMEOUT_MS };
      return { name: FN_JOBS.mapShard, queueName: QUEUES.shards, data, opts: { ...SHARD, jobId: jobId(id, 's', j) } };
    });
    return this.submit(FN_JOBS.map, id, { v: 1, fn: s.fn, k, n, resultTtl: 3600 }, children, onProgress);
  }

  private async submit(name: string, id: string, data: FnReduceData, children: FlowJob[], onProgress?: (done: number, total: number) => void): Promise<{ values: Float64Array; result: FnResult; jobId: string }> {
    const events = await this.q.reduceEvents();
    const watch = watchJob(events, id, this.opts.timeoutMs ?? 3_600_000);
    let poll: NodeJS.Timeout | undefined;
    try {
      await this.q.flows.add({ name, queueName: QUEUES.reduce, data, opts: { ...PARENT_OPTS, attempts: 1, jobId: id }, children });
      if (onProgress) {
        poll = setInterval(() => {
          void Job.fromId(this.q.reduce, id).then(async (job) => {
            if (job === undefined) return;
            const c = await job.getDependenciesCount({ processed: true, unprocessed: true });
            onProgress(c.processed ?? 0, children.length);
          }).catch(() => undefined);
        }, 500);
      }
      let raw: unknown;
      try {
        raw = await watch.done;
      } catch (err) {
        throw new NumgradError(await this.childReason(err instanceof Error ? err.message : String(err)));
      }
      const result = parsePayload(FnResult, `${name} result`, raw);
      const values = await this.q.store.takeResult(result.key);
      if (values === null) throw new NumgradError(`${name} ${id}: its result ${result.key} expired before it was read`);
      onProgress?.(children.length, children.length);
      return { values, result, jobId: id };
    } finally {
      if (poll) clearInterval(poll);
      watch.stop();
    }
  }

  /** A parent failed by a shard (`child <key> failed`) fails with the shard's own reason. */
  private async childReason(reason: string): Promise<string> {
    const child = await failedShard(this.q.shards, this.opts.prefix, reason);
    return child?.failedReason ? child.failedReason : reason;
  }

  close(): Promise<void> {
    this.closing ??= this.q.close().catch((err: unknown) => {
      throw new NumgradError(`closing the queue connection: ${sanitize(err, this.opts.redisUrl)}`);
    });
    return this.closing;
  }
}

const newId = (): string => randomBytes(6).toString('hex');
