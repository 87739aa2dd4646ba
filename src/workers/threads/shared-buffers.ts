/**
 * SharedArrayBuffers a pool hands to its threads (plans, per-gradient workspaces), recycled: a fresh
 * ~3 MB plan per gradient costs an allocation and a page fault on every 4 KiB of memo, and a buffer
 * shared with the threads is freed only after every thread's GC has let go of it, which threads that
 * allocate little do late.
 */
export class SharedBuffers {
  private readonly spare: SharedArrayBuffer[] = [];
  /** Buffers handed out and not yet given back: a second give-back of one is ignored, not shared twice. */
  private readonly lent = new WeakSet<SharedArrayBuffer>();

  /** `keep`: how many spare buffers to hold at most. */
  constructor(private readonly keep: number) {}

  /** A spare buffer of at least `bytes` (the smallest that fits), or a new one with room to spare. */
  take(bytes: number): SharedArrayBuffer {
    let best = -1;
    for (let k = 0; k < this.spare.length; k++) {
      if (this.spare[k].byteLength >= bytes && (best < 0 || this.spare[k].byteLength < this.spare[best].byteLength)) best = k;
    }
    const buffer = best >= 0 ? this.spare.splice(best, 1)[0] : new SharedArrayBuffer(Math.ceil((bytes * 1.25) / 8) * 8); // room for the next batches' memo
    this.lent.add(buffer);
    return buffer;
  }

  /** Takes a buffer back, once no thread can touch it again. */
  giveBack(buffer: SharedArrayBuffer): void {
    if (!this.lent.delete(buffer)) return;
    if (this.spare.length < this.keep) {
      this.spare.push(buffer);
      return;
    }
    // Full: keep the larger ones. A dropped plan buffer (~3 MB) is replaced by a new one that the
    // threads free late (a run piles them up); a dropped workspace costs little.
    let smallest = 0;
    for (let k = 1; k < this.spare.length; k++) if (this.spare[k].byteLength < this.spare[smallest].byteLength) smallest = k;
    if (this.spare[smallest].byteLength < buffer.byteLength) this.spare[smallest] = buffer;
  }
}
