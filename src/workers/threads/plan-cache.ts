import { Lru } from './lru.js';

/** A cached plan (any value that holds shared memory) and the shards using it now. */
interface Entry<P> {
  readonly plan: P;
  users: number;
  evicted: boolean;
  released: boolean;
}

/**
 * Plans of recent gradients, by key: the shards of one gradient share one plan. A plan goes back to
 * its owner (`release`: the pool's shared buffers) once it has left the cache and no shard uses it:
 * left to the GC, these ~3 MB buffers outlive their use by a long way (the threads, which allocate
 * little, collect rarely and hold them until they do), and a long run piled up gigabytes.
 */
export class PlanCache<P> {
  private readonly plans: Lru<Entry<P>>;

  constructor(size: number, private readonly release: (plan: P) => void) {
    this.plans = new Lru<Entry<P>>(size, (p) => {
      p.then((e) => {
        e.evicted = true;
        this.releaseIfIdle(e);
      }, () => undefined);
    });
  }

  /** Runs `use` on the plan of `key` (made by `make` on a miss); the plan stays out of reuse until it returns. */
  async with<T>(key: string, make: () => P, use: (plan: P) => Promise<T>): Promise<T> {
    const entry = await this.entry(key, make);
    entry.users++;
    try {
      return await use(entry.plan);
    } finally {
      entry.users--;
      this.releaseIfIdle(entry);
    }
  }

  private async entry(key: string, make: () => P): Promise<Entry<P>> {
    for (;;) {
      const entry = await this.plans.get(key, async () => ({ plan: make(), users: 0, evicted: false, released: false }));
      // Evicted and handed back between the lookup and here: the next lookup makes it again.
      if (!entry.released) return entry;
    }
  }

  /** A plan no longer cached and no longer in use goes back to its owner. */
  private releaseIfIdle(e: Entry<P>): void {
    if (!e.evicted || e.users > 0 || e.released) return;
    e.released = true;
    this.release(e.plan);
  }
}
