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

let nextPlanId = 1;
/** A fresh id for a plan that threads will see: their engines are cached by it (engine-cache.ts). */
export const newPlanId = (): number => nextPlanId++;

/** Bytes of a claim task's buffer: the counter, the output of `coords` derivatives and the schedule. */
export const claimBytes = (coords: number, scheduleLength: number): number => 8 + 8 * coords + 4 * scheduleLength;

/** A claim task over `buffer` (claimBytes long at least): the counter at 0 and the schedule copied in. */
export function claimTask(planId: number, plan: SharedArrayBuffer, base: number, coords: number, schedule: Int32Array, buffer: SharedArrayBuffer): FdClaimTask {
  const task: FdClaimTask = {
    planId, plan, base,
    next: new Int32Array(buffer, 0, 1),
    out: new Float64Array(buffer, 8, coords),
    schedule: new Int32Array(buffer, 8 + 8 * coords, schedule.length),
  };
  task.next[0] = 0;
  task.schedule.set(schedule);
  return task;
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
