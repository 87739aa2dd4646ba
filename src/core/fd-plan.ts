import type { Batch } from './dataset.js';
import { ValidationError } from './errors.js';
import { CLASSES, INPUTS, hiddenFromLength } from './layout.js';
import { sampleCrossEntropy } from './losses.js';
import { checkStep, DEFAULT_H } from './numerical.js';
import { checkFinite, forward, softmaxParts } from './network.js';
import { pairwiseSum } from './sum.js';

/**
 * The plan of one gradient for the finite-difference engine (fd-engine.ts): the forward pass at θ
 * cached, and the sparsity structure of the batch (which memo rows exist, which pixels use them).
 */

/** Everything a shard needs that depends only on (params, batch, h): computed once per gradient. */
export interface FdPlan {
  readonly hidden: number;
  readonly count: number;
  readonly h: number;
  readonly params: Float64Array;
  readonly labels: Uint8Array;
  /** a1 at θ (count × H). */
  readonly a1: Float64Array;
  /** sigmoid(a1) and exp(−a1) (count × H). */
  readonly z: Float64Array;
  readonly u: Float64Array;
  /** exp(a2 − max a2) per sample (count × 10), and its row sum. */
  readonly e: Float64Array;
  readonly S: Float64Array;
  /** Pixel-major non-zero structure: for pixel i, entries colStart[i]..colStart[i+1]) name a memo row. */
  readonly colStart: Int32Array;
  readonly colRow: Int32Array;
  /** Memo rows: (sample, level) pairs, level 255 present for every sample (it serves b1). */
  readonly rowSample: Int32Array;
  readonly rowLevel: Uint8Array;
  /** rowOf255[n]: the memo row of (n, 255). */
  readonly rowOf255: Int32Array;
}

/** Validates the inputs and builds the plan (the cached forward pass and the sparsity structure). */
export function planGradient(params: Float64Array, batch: Batch, h = DEFAULT_H): FdPlan {
  checkShape(params, batch, h);
  checkFinite('gradient', params);
  return buildPlan(params, batch, h);
}

/**
 * planGradient for params whose values were checked finite where they entered (the shard processor
 * checks a snapshot once, as it loads it from Redis); their shape and h are still checked.
 */
export function planGradientOfCheckedParams(params: Float64Array, batch: Batch, h = DEFAULT_H): FdPlan {
  checkShape(params, batch, h);
  return buildPlan(params, batch, h);
}

function checkShape(params: Float64Array, batch: Batch, h: number): void {
  checkStep('gradient', h);
  if (h > 1) throw new ValidationError('gradient', 'h', 'a number in (0, 1]', h);
  hiddenFromLength(params.length);
  if (batch.count < 1) throw new ValidationError('gradient', 'batch', 'a non-empty batch of samples', 'an empty batch');
}

function buildPlan(params: Float64Array, batch: Batch, h: number): FdPlan {
  const H = hiddenFromLength(params.length);
  const N = batch.count;
  const f = forward(params, batch);
  const { e, S } = softmaxParts(f);
  const u = new Float64Array(N * H);
  for (let c = 0; c < u.length; c++) u[c] = Math.exp(-f.a1[c]);
  // Memo rows: one per distinct (sample, level), 255 always present.
  const rowId = new Int32Array(N * 256).fill(-1);
  const rowSampleL: number[] = [];
  const rowLevelL: number[] = [];
  const rowOf255 = new Int32Array(N);
  const colCount = new Int32Array(INPUTS + 1);
  for (let n = 0; n < N; n++) {
    const px = n * INPUTS;
    rowId[n * 256 + 255] = rowSampleL.length;
    rowOf255[n] = rowSampleL.length;
    rowSampleL.push(n);
    rowLevelL.push(255);
    for (let i = 0; i < INPUTS; i++) {
      const v = batch.pixels[px + i];
      if (v === 0) continue;
      colCount[i + 1]++;
      if (rowId[n * 256 + v] < 0) {
        rowId[n * 256 + v] = rowSampleL.length;
        rowSampleL.push(n);
        rowLevelL.push(v);
      }
    }
  }
  const colStart = new Int32Array(INPUTS + 1);
  for (let i = 0; i < INPUTS; i++) colStart[i + 1] = colStart[i] + colCount[i + 1];
  const colRow = new Int32Array(colStart[INPUTS]);
  const fill = colStart.slice(0, INPUTS);
  for (let n = 0; n < N; n++) {
    const px = n * INPUTS;
    for (let i = 0; i < INPUTS; i++) {
      const v = batch.pixels[px + i];
      if (v !== 0) colRow[fill[i]++] = rowId[n * 256 + v];
    }
  }
  return {
    hidden: H, count: N, h, params, labels: batch.labels,
    a1: f.a1, z: f.z, u, e, S, colStart, colRow,
    rowSample: Int32Array.from(rowSampleL), rowLevel: Uint8Array.from(rowLevelL), rowOf255,
  };
}

/** Mean loss of the batch at θ from the plan's forward pass (bitwise `loss(params, batch)`). */
export function planLoss(plan: FdPlan): number {
  const losses = new Float64Array(plan.count);
  for (let n = 0; n < plan.count; n++) {
    losses[n] = sampleCrossEntropy(plan.e[n * CLASSES + plan.labels[n]] / plan.S[n]);
  }
  return pairwiseSum(losses) / plan.count;
}

/** Sample n's loss when logit k moves by d (e_k·exp(d) = e_k + e_k·expm1(d) keeps S's digits). */
export function logitShiftLoss(plan: FdPlan, n: number, k: number, d: number): number {
  const q = n * CLASSES;
  const t = plan.labels[n];
  const ek = plan.e[q + k];
  const S = plan.S[n] + ek * Math.expm1(d);
  const et = t === k ? ek * Math.exp(d) : plan.e[q + t];
  return sampleCrossEntropy(et / S);
}

/**
 * Marks (1) the memo rows that coordinates [start, end) sum: those of W1's pixel rows in the range
 * (their non-zero entries) and, when b1 is in the range, every sample's level-255 row.
 */
export function rowsNeeded(plan: FdPlan, start: number, end: number): Uint8Array {
  const H = plan.hidden;
  const b1 = INPUTS * H;
  const need = new Uint8Array(plan.rowSample.length);
  if (start < b1) {
    const i0 = Math.floor(start / H);
    const i1 = Math.floor((Math.min(end, b1) - 1) / H) + 1;
    for (let k = plan.colStart[i0], kEnd = plan.colStart[i1]; k < kEnd; k++) need[plan.colRow[k]] = 1;
  }
  if (end > b1 && start < b1 + H) for (let n = 0; n < plan.count; n++) need[plan.rowOf255[n]] = 1;
  return need;
}
