import { JOBS, QUEUES } from '../core/contract.js';
import { driveProgressOf } from '../queue/flows.js';
import type { Logger } from '../io/logger.js';
import { type Connection, connect } from '../io/redis.js';

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
  /** A train-drive job's last step commit (its last `progress` event). */
  progress?: number;
}

/** Jobs tracked between their events; past this the oldest are forgotten (a missed 'completed' must not grow memory). */
const MAX_PENDING = 20_000;
/** Runs whose last step time is kept (the page lists 50). */
const MAX_RUNS = 50;
/** The window of shards per second. */
const RATE_WINDOW_MS = 10_000;

/** A stream entry id is `<ms>-<seq>`, stamped by Redis: one clock for every event. */
const streamMs = (id: string): number => Number(id.split('-')[0]);

/**
 * Watches the two queues' event streams to time what no single process can:
 * shards (active → completed), flows (added → completed: a gradient, an evaluation, or a training
 * step with its shards), and shards per second across every worker. It only sees events from the
 * moment it starts; jobs are removed on completion, so the streams are the only record of their timing.
 */
export class QueueObserver {
  /** Shards completed since this observer started. */
  shardsCompleted = 0;
  private readonly conn: Connection;
  private readonly loop: Promise<void>;
  private positioned: Promise<void> = Promise.resolve();
  private closed = false;
  /** What close() calls to settle the waits in flight: a read pending while Redis is down never settles (ioredis keeps it queued). */
  private readonly onStop = new Set<() => void>();
  private readonly pending = new Map<string, Pending>();
  private readonly recent: number[] = [];
  private readonly started = Date.now();
  private readonly lastStep = new Map<string, { seconds: number; step: number }>();
  private closing: Promise<void> | undefined;

  constructor(
    private readonly opts: { redisUrl: string; prefix: string; logger: Logger },
    private readonly sinks: ObserverSinks,
  ) {
    // XREAD BLOCK needs a connection of its own, retrying while Redis is away.
    this.conn = connect(opts.redisUrl, 'worker');
    this.loop = this.consume();
  }

  /** Resolves once the reader knows where the streams end (or after `timeoutMs`, Redis being away). */
  async ready(timeoutMs = 3_000): Promise<void> {
    let t: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => (t = setTimeout(resolve, timeoutMs)));
    await Promise.race([this.positioned, timeout]).finally(() => clearTimeout(t));
  }

  /**
   * Reads both queues' event streams (BullMQ writes `<prefix>:<queue>:events`) with XREAD BLOCK on a
   * connection this class owns. Not BullMQ's QueueEvents: its close() waits for Redis to come back,
   * and a dashboard must close while Redis is down.
   */
  private async consume(): Promise<void> {
    const streams = [QUEUES.shards, QUEUES.reduce].map((q) => `${this.opts.prefix}:${q}:events`);
    let ids: string[] | undefined;
    let markPositioned: () => void = () => undefined;
    this.positioned = new Promise<void>((resolve) => (markPositioned = resolve));
    while (!this.closed) {
      try {
        if (ids === undefined) {
          // Start at each stream's end: only what happens from now on is observed.
          const last = Promise.all(streams.map(async (k) => (await this.conn.xrevrange(k, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0'));
          const ends = await this.orStop(last);
          if (ends === null) break;
          ids = ends;
          markPositioned();
        }
        const read = this.conn.xread('COUNT', 1000, 'BLOCK', 2_000, 'STREAMS', ...streams, ...ids) as Promise<[string, [string, string[]][]][] | null>;
        const res = await this.orStop(read);
        if (this.closed) break;
        for (const [key, entries] of res ?? []) {
          const i = streams.indexOf(key);
          const queue = i === 0 ? QUEUES.shards : QUEUES.reduce;
          for (const [id, fields] of entries) {
            ids[i] = id;
            this.onEvent(queue, id, fields);
          }
        }
      } catch (err) {
        if (this.closed) break;
        this.opts.logger.debug({ err: err instanceof Error ? err.message : String(err) }, 'queue events read failed; retrying');
        await this.orStop(new Promise((r) => setTimeout(r, 1_000).unref()));
      }
    }
  }

  /**
   * `p`, or null as soon as close() is called. Not `Promise.race([p, stopped])` against one promise
   * that lives as long as the observer: every race leaves a reaction on it that holds the race's
   * result until it settles, so every XREAD reply (the 'completed' events carry the shards' return
   * values, ~0.45 MB per training step) stayed reachable for the dashboard's whole life.
   */
  private orStop<T>(p: Promise<T>): Promise<T | null> {
    if (this.closed) {
      p.catch(() => undefined);
      return Promise.resolve(null);
    }
    return new Promise<T | null>((resolve, reject) => {
      const stop = (): void => resolve(null);
      this.onStop.add(stop);
      p.then(
        (v) => {
          this.onStop.delete(stop);
          resolve(v);
        },
        (err: unknown) => {
          this.onStop.delete(stop);
          reject(err);
        },
      );
    });
  }

  private onEvent(queue: string, id: string, fields: string[]): void {
    const f: Record<string, string> = {};
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]] = fields[i + 1];
    const jobId = f.jobId;
    if (jobId === undefined) return;
    if (f.event === 'added') {
      const p = this.entry(queue, jobId);
      p.name = f.name;
      p.added = streamMs(id);
    } else if (f.event === 'active') {
      this.entry(queue, jobId).active = streamMs(id);
    } else if (f.event === 'progress') {
      this.progress(queue, jobId, f.data, streamMs(id));
    } else if (f.event === 'completed') {
      this.completed(queue, jobId, streamMs(id));
    } else if (f.event === 'failed') {
      this.pending.delete(`${queue}:${jobId}`);
    }
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
    if (step !== null) this.stepDone(step[1], Number(step[2]), seconds);
  }

  /**
   * A train-drive job committed steps (`{"step":t,"steps":k}`: k steps, the last t): they took the
   * time since the drive's previous commit (its first, since the job became active), k equal parts
   * of it. Reported as k train-step flows would be.
   */
  private progress(queue: string, jobId: string, data: string | undefined, at: number): void {
    const d = driveProgressOf(jobId, data);
    if (d === undefined) return;
    const p = this.entry(queue, jobId);
    const since = p.progress ?? p.active;
    p.progress = at;
    if (since === undefined) return;
    const seconds = (at - since) / 1000 / d.steps;
    for (let k = 0; k < d.steps; k++) this.sinks.flow(seconds, JOBS.trainStep);
    this.stepDone(d.run, d.step, seconds);
  }

  private stepDone(run: string, step: number, seconds: number): void {
    // Newest last, and only the runs a page can list: removed and old runs drop out.
    this.lastStep.delete(run);
    this.lastStep.set(run, { seconds, step });
    if (this.lastStep.size > MAX_RUNS) this.lastStep.delete(this.lastStep.keys().next().value as string);
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

  /** Stops reading; safe twice, and quick even while Redis is down (the blocked read is cut). */
  close(): Promise<void> {
    if (this.closing === undefined) {
      this.closed = true;
      for (const stop of this.onStop) stop();
      this.onStop.clear();
      this.conn.disconnect();
      this.closing = this.loop.catch(() => undefined);
    }
    return this.closing;
  }
}

/** Shard ids follow src/queue/flows.ts: evaluation shards live under an `eval` id. */
function shardKind(jobId: string): string {
  return /(^|-)eval-/.test(jobId) ? JOBS.ceShard : JOBS.fdShard;
}
