/**
 * Messages between the pool and its threads. Buffers are SharedArrayBuffers (sent by reference);
 * results come back as transferred ArrayBuffers (Piscina.move), never copied.
 */
import type { Split } from '../../io/mnist.js';

/** What every thread receives once, at start (piscina workerData). */
export interface ThreadData {
  readonly train: { pixels: Uint8Array; labels: Uint8Array } | null;
  readonly test: { pixels: Uint8Array; labels: Uint8Array } | null;
}

/** A finite-difference shard: coordinates [start, end) of the gradient whose plan is `plan`. */
export interface FdShardTask {
  readonly planId: number;
  readonly plan: SharedArrayBuffer;
  readonly start: number;
  readonly end: number;
}

/**
 * A thread's part of a gradient range: it claims units of `schedule` (fd-schedule.ts) from the
 * counter `next[0]` until none is left, writing derivative c to out[c − base]. Every thread of the
 * pool gets the same task. Returns the number of units it ran.
 */
export interface FdClaimTask {
  readonly planId: number;
  readonly plan: SharedArrayBuffer;
  readonly schedule: Int32Array;
  readonly next: Int32Array;
  readonly out: Float64Array;
  readonly base: number;
}

/** A cross-entropy shard: samples [start, end) of a split, or of a mini-batch given by `indices`. */
export interface CeShardTask {
  readonly params: SharedArrayBuffer | Float64Array;
  readonly split: Split;
  readonly start: number;
  readonly end: number;
  readonly indices?: Int32Array;
  /** The split's samples (views over SharedArrayBuffers, shared by reference); else the thread's workerData. */
  readonly data?: { readonly pixels: Uint8Array; readonly labels: Uint8Array };
}

/** A cross-entropy task's result on a thread (the ce-shard job's result is contract.ts CeShardResult). */
export interface CeTaskResult {
  /** Per-sample losses −log(y_t + 1e-7), in sample order. */
  readonly losses: Float64Array;
  readonly correct: number;
}

/**
 * piscina transfers only a top-level result, so a cross-entropy shard comes back as one
 * Float64Array: the per-sample losses followed by the number correct.
 */
export function encodeCeResult(losses: Float64Array, correct: number): Float64Array {
  const out = new Float64Array(losses.length + 1);
  out.set(losses);
  out[losses.length] = correct;
  return out;
}

export function decodeCeResult(buf: Float64Array): CeTaskResult {
  return { losses: buf.subarray(0, buf.length - 1), correct: buf[buf.length - 1] };
}
