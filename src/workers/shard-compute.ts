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

/**
 * The fd-shard computations of one worker process. Every shard runs on all of the process's threads
 * (pool.gradientRange: units claimed from shared memory), over one plan per gradient shared by the
 * shards of that gradient. Every value is a pure function of (θ, batch, h), so which thread
 * computed a derivative never changes its bits.
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

  constructor(private readonly pool: LocalPool) {}

  static key(version: string, batch: BatchSpec, h: number): string {
    return `${version}|${batchKey(batch)}|${h}`;
  }

  /** Derivatives [start, end) of the gradient at `params` (stored as `version`) and the batch loss at θ. */
  async range(version: string, params: Float64Array, batch: BatchSpec, h: number, start: number, end: number): Promise<{ values: Float64Array; loss: number }> {
    const key = ShardCompute.key(version, batch, h);
    const entry = await this.plan(key, params, batch, h);
    entry.users++;
    try {
      // Every thread of this process on the shard's range (units claimed from shared memory), not one
      // thread per job: shards of unequal cost no longer leave a thread idle while another finishes.
      const { values } = await this.pool.gradientRange(entry.prep, start, end);
      return { values, loss: entry.prep.loss };
    } finally {
      entry.users--;
      this.releaseIfIdle(entry);
    }
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
