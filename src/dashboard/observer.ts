import { QueueEvents } from 'bullmq';
import type { Redis } from 'ioredis';
import { JOBS, QUEUES } from '../core/contract.js';
import type { Logger } from '../io/logger.js';
import { connect } from '../io/redis.js';

/** What the observer reports as it sees jobs finish. */
export interface ObserverSinks {
  /** A shard completed, after `seconds` active (undefined when its start was before the observer's). */
  shard(seconds: number | undefined, job: string): void;
  /** A reducer job's whole flow took `seconds`, from submission to reduced: one gradient, evaluation or training step. */
  flow(seconds: number, job: string): void;
}

interface Pending {
  name?: string;
  added?: number;
  active?: number;
}

/** Jobs tracked between their events; past this the oldest are forgotten (a missed 'completed' must not grow memory). */
const MAX_PENDING = 20_000;
/** The window of shards per second. */
const RATE_WINDOW_MS = 10_000;

/** A stream entry id is `<ms>-<seq>`, stamped by Redis: one clock for every event. */
const streamMs = (id: string): number => Number(id.split('-')[0]);

/**
 * Watches the two queues' event streams (BullMQ QueueEvents) to time what no single process can:
 * shards (active → completed), flows (added → completed: a gradient, an evaluation, or a training
 * step with its shards), and shards per second across every worker. It only sees events from the
 * moment it starts; jobs are removed on completion, so the streams are the only record of their timing.
 */
export class QueueObserver {
  /** Shards completed since this observer started. */
  shardsCompleted = 0;
  private readonly conns: Redis[] = [];
  private readonly events: QueueEvents[] = [];
  private readonly pending = new Map<string, Pending>();
  private readonly recent: number[] = [];
  private readonly started = Date.now();
  private readonly lastStep = new Map<string, { seconds: number; step: number }>();
  private closing: Promise<void> | undefined;

  constructor(
    opts: { redisUrl: string; prefix: string; logger: Logger },
    private readonly sinks: ObserverSinks,
  ) {
    for (const queue of [QUEUES.shards, QUEUES.reduce]) {
      // QueueEvents blocks on XREAD: a connection of its own, retrying while Redis is away.
      const conn = connect(opts.redisUrl, 'worker');
      const ev = new QueueEvents(queue, { connection: conn, prefix: opts.prefix });
      ev.on('error', (err) => opts.logger.debug({ queue, err: err.message }, 'queue events error'));
      ev.on('added', ({ jobId, name }, id) => {
        const p = this.entry(queue, jobId);
        p.name = name;
        p.added = streamMs(id);
      });
      ev.on('active', ({ jobId }, id) => void (this.entry(queue, jobId).active = streamMs(id)));
      ev.on('completed', ({ jobId }, id) => this.completed(queue, jobId, streamMs(id)));
      ev.on('failed', ({ jobId }) => this.pending.delete(`${queue}:${jobId}`));
      this.conns.push(conn);
      this.events.push(ev);
    }
  }

  /** Resolves once both event readers are connected (or after `timeoutMs`, Redis being away). */
  async ready(timeoutMs = 3_000): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (t = setTimeout(resolve, timeoutMs)));
    await Promise.race([Promise.all(this.events.map((e) => e.waitUntilReady())).then(() => undefined), timeout]).finally(() => clearTimeout(t));
  }

  private entry(queue: string, jobId: string): Pending {
    const key = `${queue}:${jobId}`;
    let p = this.pending.get(key);
    if (p === undefined) {
      p = {};
      this.pending.set(key, p);
      if (this.pending.size > MAX_PENDING) this.pending.delete(this.pending.keys().next().value as string);
    }
    return p;
  }

  private completed(queue: string, jobId: string, at: number): void {
    const key = `${queue}:${jobId}`;
    const p = this.pending.get(key);
    this.pending.delete(key);
    if (queue === QUEUES.shards) {
      this.shardsCompleted++;
      this.recent.push(Date.now());
      this.prune();
      this.sinks.shard(p?.active === undefined ? undefined : (at - p.active) / 1000, p?.name ?? shardKind(jobId));
      return;
    }
    if (p?.added === undefined) return;
    const seconds = (at - p.added) / 1000;
    const name = p.name ?? 'unknown';
    this.sinks.flow(seconds, name);
    const step = name === JOBS.trainStep ? /^run-(.+)-step-(\d+)$/.exec(jobId) : null;
    if (step !== null) this.lastStep.set(step[1], { seconds, step: Number(step[2]) });
  }

  private prune(): void {
    const cut = Date.now() - RATE_WINDOW_MS;
    let i = 0;
    while (i < this.recent.length && this.recent[i] < cut) i++;
    if (i > 0) this.recent.splice(0, i);
  }

  /** Shards completed per second over the last 10 s (or since start, if sooner), across all workers. */
  shardsPerSecond(): number {
    this.prune();
    const span = Math.min(RATE_WINDOW_MS, Date.now() - this.started) / 1000;
    return span <= 0 ? 0 : this.recent.length / Math.max(span, 1);
  }

  /** The last observed duration of a training step of each run (seconds, submission to reduced). */
  stepSeconds(): Record<string, { seconds: number; step: number }> {
    return Object.fromEntries(this.lastStep);
  }

  close(): Promise<void> {
    if (this.closing === undefined) {
      this.closing = (async () => {
        await Promise.all(this.events.map((e) => e.close().catch(() => undefined)));
        for (const c of this.conns) c.disconnect();
      })();
    }
    return this.closing;
  }
}

/** Shard ids follow src/workers/flows.ts: evaluation shards live under an `eval` id. */
function shardKind(jobId: string): string {
  return /(^|-)eval-/.test(jobId) ? JOBS.ceShard : JOBS.fdShard;
}
