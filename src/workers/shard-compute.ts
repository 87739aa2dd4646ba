import { type BatchSpec, TRAIN_SIZE } from '../core/contract.js';
import { batchIndices, batchKey } from './codec.js';
import { Lru } from './lru.js';
import type { LocalPool, PreparedGradient } from './pool.js';

interface PlanEntry {
  readonly prep: PreparedGradient;
  users: number;
  evicted: boolean;
  released: boolean;
}

/** A whole gradient computed ahead of its shard jobs (see `ahead`). */
interface Ahead {
  readonly values: Promise<Float64Array>;
  readonly loss: number;
  served: number;
}

/** Whole gradients computed ahead and kept for their shards (the next step of up to this many runs at once). */
const AHEAD_KEPT = 4;
/** Gradients whose coverage by this process is remembered (for `coveredHere`). */
const COVERAGE_KEPT = 8;

/**
 * The fd-shard computations of one worker process. Every shard runs on all of the process's threads
 * (pool.gradientRange: units claimed from shared memory), over one plan per gradient shared by the
 * shards of that gradient. A worker that has just computed θ_{t+1} itself (the reducer of step t) can
 * start step t+1's whole gradient at once (`ahead`), while the step is still being written to Redis
 * and handed out as jobs; the shard jobs that reach this process then take their ranges from it.
 * Every value is a pure function of (θ, batch, h), so which path computed a derivative never
 * changes its bits.
 */
export class ShardCompute {
  /**
   * Plans of recent gradients (several shards of one gradient share one). A plan's shared buffer
   * goes back to the pool for reuse once it has left the cache and no shard uses it: left to the
   * GC, these ~3 MB buffers outlive their use by a long way (the threads, which allocate little,
   * collect rarely and hold them until they do), and a long run piled up gigabytes.
   */
  private readonly plans = new Lru<PlanEntry>(4, (p) => {
    p.then((e) => {
      e.evicted = true;
      this.releaseIfIdle(e);
    }, () => undefined);
  });
  private readonly computedAhead = new Map<string, Ahead>();
  /** Coordinates of each recent gradient that this process computed (or served from a gradient ahead). */
  private readonly coverage = new Map<string, number>();
  /** Whole gradients started ahead, and how many of them shard jobs used (for logs and tests). */
  aheadStarted = 0;
  aheadUsed = 0;

  constructor(private readonly pool: LocalPool) {}

  static key(version: string, batch: BatchSpec, h: number): string {
    return `${version}|${batchKey(batch)}|${h}`;
  }

  /** Derivatives [start, end) of the gradient at `params` (stored as `version`) and the batch loss at θ. */
  async range(version: string, params: Float64Array, batch: BatchSpec, h: number, start: number, end: number): Promise<{ values: Float64Array; loss: number }> {
    const key = ShardCompute.key(version, batch, h);
    const ahead = this.computedAhead.get(key);
    if (ahead !== undefined) {
      const whole = await ahead.values.catch(() => undefined);
      if (whole !== undefined && end <= whole.length) {
        ahead.served += end - start;
        if (ahead.served >= whole.length) this.computedAhead.delete(key);
        this.aheadUsed++;
        this.cover(key, end - start);
        return { values: whole.slice(start, end), loss: ahead.loss };
      }
      this.computedAhead.delete(key);
    }
    const entry = await this.plan(key, params, batch, h);
    entry.users++;
    try {
      // Every thread of this process on the shard's range (units claimed from shared memory), not one
      // thread per job: shards of unequal cost no longer leave a thread idle while another finishes.
      const { values } = await this.pool.gradientRange(entry.prep, start, end);
      this.cover(key, end - start);
      return { values, loss: entry.prep.loss };
    } finally {
      entry.users--;
      this.releaseIfIdle(entry);
    }
  }

  /**
   * Starts the whole gradient at `params` on this process's threads without waiting for it; shard
   * jobs of that gradient that reach this process take their ranges from it. Called by a reducer for
   * the step it is about to enqueue, when this process computed the whole previous step (it is then,
   * most likely, the only worker, and the next step's shards will come here too).
   */
  ahead(version: string, params: Float64Array, batch: BatchSpec, h: number): void {
    const key = ShardCompute.key(version, batch, h);
    if (this.computedAhead.has(key)) return;
    let loss = NaN;
    const values = (async () => {
      const entry = await this.plan(key, params, batch, h);
      entry.users++;
      try {
        loss = entry.prep.loss;
        return (await this.pool.gradientRange(entry.prep, 0, params.length)).values;
      } finally {
        entry.users--;
        this.releaseIfIdle(entry);
      }
    })();
    values.catch(() => this.computedAhead.delete(key));
    const a: Ahead = {
      values,
      get loss() {
        return loss;
      },
      served: 0,
    };
    this.computedAhead.set(key, a);
    this.aheadStarted++;
    while (this.computedAhead.size > AHEAD_KEPT) this.computedAhead.delete(this.computedAhead.keys().next().value as string);
  }

  /** Whether this process computed every one of the `total` coordinates of that gradient. */
  coveredHere(version: string, batch: BatchSpec, h: number, total: number): boolean {
    return (this.coverage.get(ShardCompute.key(version, batch, h)) ?? 0) >= total;
  }

  private cover(key: string, coords: number): void {
    const n = (this.coverage.get(key) ?? 0) + coords;
    this.coverage.delete(key);
    this.coverage.set(key, n);
    while (this.coverage.size > COVERAGE_KEPT) this.coverage.delete(this.coverage.keys().next().value as string);
  }

  private async plan(key: string, params: Float64Array, batch: BatchSpec, h: number): Promise<PlanEntry> {
    for (;;) {
      const entry = await this.plans.get(key, async () => ({ prep: this.pool.prepareGradient(params, batchIndices(batch, TRAIN_SIZE), h), users: 0, evicted: false, released: false }));
      // Evicted and handed back between the lookup and here: the next lookup makes it again.
      if (!entry.released) return entry;
    }
  }

  /** A plan no longer cached and no longer in use: its buffer is the pool's again. */
  private releaseIfIdle(e: PlanEntry): void {
    if (!e.evicted || e.users > 0 || e.released) return;
    e.released = true;
    this.pool.releaseGradient(e.prep);
  }
}
