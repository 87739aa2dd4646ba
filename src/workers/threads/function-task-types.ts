/** Messages between the function pool and its threads (function-tasks.ts). */

/**
 * A list of evaluations: evaluation e is row row[e] of `base` (n values each) with coordinate
 * coords[e] set to values[e] (coords[e] = −1: the row as it is). `label[e]` is the point's index in
 * the submission, for messages. `m`/`scalar`, when given, are the shape every result must have.
 */
export interface FnTask {
  readonly fn: string;
  readonly dir: string | undefined;
  readonly args: Record<string, unknown> | undefined;
  readonly train?: { pixels: Uint8Array; labels: Uint8Array };
  readonly n: number;
  readonly base: Float64Array;
  readonly row: Int32Array;
  readonly coords: Int32Array;
  readonly values: Float64Array;
  readonly label: Int32Array;
  readonly inflight: number;
  readonly timeoutMs: number;
  /** Shared: per slot, [start time (ms since the epoch, 0 when idle), the evaluation it runs]. */
  readonly clock: Float64Array;
  readonly m?: number;
  readonly scalar?: boolean;
}

/** `function "f" at point 3, coordinate 17 (x[17] = 1.0001)`, or `… at point 3` for x itself. */
export function describeEval(task: Pick<FnTask, 'fn' | 'coords' | 'values' | 'label'>, e: number): string {
  const c = task.coords[e];
  return `function "${task.fn}" at point ${task.label[e]}${c >= 0 ? `, coordinate ${c} (x[${c}] = ${task.values[e]})` : ''}`;
}

/** A task's result as one transferable array: E·m values, then m, then 1 if f returned numbers. */
export function encodeFnResult(values: Float64Array, m: number, scalar: boolean): Float64Array {
  const out = new Float64Array(values.length + 2);
  out.set(values);
  out[values.length] = m;
  out[values.length + 1] = scalar ? 1 : 0;
  return out;
}

export function decodeFnResult(buf: Float64Array): { values: Float64Array; m: number; scalar: boolean } {
  return { values: buf.subarray(0, buf.length - 2), m: buf[buf.length - 2], scalar: buf[buf.length - 1] === 1 };
}
