import type { Batch } from './dataset.js';
import { ValidationError } from './errors.js';
import { expm1Small } from './expm1-small.js';
import { type FdPlan, logitShiftLoss, planGradient, rowsNeeded } from './fd-plan.js';
import { CLASSES, type Layout, layout } from './layout.js';
import { guardedLogRatio } from './losses.js';
import { DEFAULT_H } from './numerical.js';
import { rowsKernel } from './wasm/memo-rows.js';

export { type FdPlan, planGradient, planLoss } from './fd-plan.js';
export { expm1Small } from './expm1-small.js';
export { naiveGradientShard } from './fd-oracle.js';
export { type RowsBackend, setRowsBackend } from './wasm/memo-rows.js';

/**
 * The finite-difference engine: g_c = (L(θ + h·e_c) − L(θ − h·e_c)) / 2h for every coordinate c,
 * where L is the batched cross-entropy with the 1e-7 guard. Each L(θ ± h·e_c) is the true loss at
 * the perturbed point (no Taylor expansion, no analytic shortcut), computed incrementally from a
 * cached forward pass at θ:
 *
 *  - W1[i][j] ± h moves a1[n][j] by ±h·x[n][i], for the samples whose pixel i is non-zero only
 *    (a zero pixel leaves every activation, hence that sample's loss, bit-for-bit unchanged, so its
 *    difference is exactly 0). Hidden unit j then moves all ten logits of sample n by Δz·W2[j][k].
 *  - b1[j] ± h is the same move with x = 1, for every sample.
 *  - W2[j][k] ± h moves logit k of every sample by ±h·z[n][j]; b2[k] ± h by ±h.
 *
 * The per-sample loss *differences* L_n(+) − L_n(−) are summed (in sample order) rather than two
 * totals subtracted, so cancellation does not eat the digits: the textbook loses ~1e-12·|L|/h to
 * rounding in its two 100-sample totals and 784-term sums; here the rounding is that of one
 * sample's loss.
 *
 * Exact reuse: a W1 move of sample n's hidden unit j depends on the pixel only through its value
 * x = level/255, and MNIST pixels take 255 non-zero levels (an image has ~67 distinct ones among
 * ~150 non-zero pixels). The difference D(n, level, j) is computed once per (sample, level) row
 * for all j, memoised, and reused by every pixel with that level — the same function of the same
 * inputs, so a coordinate's value is bitwise the same whichever shard computes it.
 */

/**
 * Where memo rows live: D(n, level, ·) values and a done flag per row. By default an engine owns
 * its memory; engines on several threads can share one (plan-buffer.ts): the flag is written with
 * Atomics.store after the row's values and read with Atomics.load, so a thread that sees the flag
 * set also sees the values (the JS memory model orders plain writes before a seq-cst store).
 */
export interface FdMemory {
  readonly memo: Float64Array;
  readonly done: Int32Array;
}

export function fdMemory(plan: FdPlan): FdMemory {
  return { memo: new Float64Array(plan.rowSample.length * plan.hidden), done: new Int32Array(plan.rowSample.length) };
}

/** Computes gradient shards of one plan (a thread keeps one engine per plan). No allocation per coordinate. */
export class FdEngine {
  readonly plan: FdPlan;
  private readonly l: Layout;
  private readonly memo: Float64Array;
  private readonly done: Int32Array;
  private readonly acc: Float64Array;
  /** Memo rows this engine computed (the exact-reuse counter reported by benchmarks). */
  rowsComputed = 0;

  constructor(plan: FdPlan, memory: FdMemory = fdMemory(plan)) {
    this.plan = plan;
    this.l = layout(plan.hidden);
    this.memo = memory.memo;
    this.done = memory.done;
    this.acc = new Float64Array(plan.hidden);
  }

  /** Number of memo rows of the plan. */
  get rows(): number {
    return this.plan.rowSample.length;
  }

  /** Fills memo rows [r0, r1) that no engine sharing this memory has filled yet, in row order. */
  fillRows(r0: number, r1: number): void {
    if (!Number.isInteger(r0) || !Number.isInteger(r1) || r0 < 0 || r1 > this.rows || r0 > r1) {
      throw new ValidationError('fillRows', 'range', `integers 0 ≤ start ≤ end ≤ ${this.rows}`, `[${r0}, ${r1})`);
    }
    const kernel = rowsKernel(); // the WebAssembly SIMD kernel (wasm/memo-rows.ts), bitwise this JS loop
    if (kernel !== undefined) {
      // (Flagged rows go to computeRow, which counts itself: add after the call, not `+=` around it.)
      const inKernel = kernel.fill(this.plan, this.memo, this.done, r0, r1, (r) => this.computeRow(r));
      this.rowsComputed += inKernel;
      return;
    }
    for (let r = r0; r < r1; r++) if (Atomics.load(this.done, r) === 0) this.computeRow(r);
  }

  /** Derivatives for coordinates [start, end) into `out` (length end − start, or a new array). */
  shard(start: number, end: number, out: Float64Array<ArrayBufferLike> = new Float64Array(end - start)): Float64Array<ArrayBufferLike> {
    const { l } = this;
    if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > l.length || start > end) {
      throw new ValidationError('gradientShard', 'range', `integers 0 ≤ start ≤ end ≤ ${l.length}`, `[${start}, ${end})`);
    }
    if (out.length !== end - start) throw new ValidationError('gradientShard', 'out', `of length ${end - start}`, out.length);
    if (start < l.w2) this.fillNeeded(start, Math.min(end, l.w2));
    let c = start;
    while (c < end) {
      if (c < l.b1) c = this.w1Block(c, Math.min(end, l.b1), start, out);
      else if (c < l.w2) c = this.b1Block(c, Math.min(end, l.w2), start, out);
      else c = this.logitBlock(c, end, start, out);
    }
    return out;
  }

  /**
   * A shard fills the rows its W1/b1 coordinates sum in bulk with the kernel, in row order. Runs of
   * rows already done (by this engine or another sharing the memo) are not handed to the kernel at
   * all: after a schedule's row units, a shard unit's rows are all done, and a kernel call per run
   * of them cost more than the shard (a cold one-off gradient: ~30 ms over 160 units).
   */
  private fillNeeded(start: number, end: number): void {
    if (rowsKernel() === undefined || end <= start) return;
    const need = rowsNeeded(this.plan, start, end);
    const { done } = this;
    for (let r = 0; r < need.length; r++) {
      if (need[r] === 0 || Atomics.load(done, r) !== 0) continue;
      let e = r + 1;
      while (e < need.length && need[e] === 1 && Atomics.load(done, e) === 0) e++;
      this.fillRows(r, e);
      r = e;
    }
  }

  /** W1 coordinates [c, stop) within one pixel row i; returns where it stopped. */
  private w1Block(c: number, stop: number, start: number, out: Float64Array<ArrayBufferLike>): number {
    const { plan, memo, done, acc } = this;
    const H = plan.hidden;
    const i = Math.floor(c / H);
    const j0 = c - i * H;
    const j1 = Math.min(H, stop - i * H);
    acc.fill(0, j0, j1);
    for (let k = plan.colStart[i], kEnd = plan.colStart[i + 1]; k < kEnd; k++) {
      const r = plan.colRow[k];
      if (Atomics.load(done, r) === 0) this.computeRow(r);
      const base = r * H;
      for (let j = j0; j < j1; j++) acc[j] += memo[base + j];
    }
    const scale = 2 * plan.h;
    for (let j = j0; j < j1; j++) out[i * H + j - start] = acc[j] / plan.count / scale;
    return i * H + j1;
  }

  private b1Block(c: number, stop: number, start: number, out: Float64Array<ArrayBufferLike>): number {
    const { plan, memo, done } = this;
    const H = plan.hidden;
    const scale = 2 * plan.h;
    for (; c < stop; c++) {
      const j = c - this.l.b1;
      let sum = 0;
      for (let n = 0; n < plan.count; n++) {
        const r = plan.rowOf255[n];
        if (Atomics.load(done, r) === 0) this.computeRow(r);
        sum += memo[r * H + j];
      }
      out[c - start] = sum / plan.count / scale;
    }
    return c;
  }

  /** W2[j][k] (logit k moves by ±h·z[n][j]) and b2[k] (by ±h). */
  private logitBlock(c: number, stop: number, start: number, out: Float64Array<ArrayBufferLike>): number {
    const { plan, l } = this;
    const H = plan.hidden;
    const h = plan.h;
    const scale = 2 * h;
    for (; c < stop; c++) {
      const isB2 = c >= l.b2;
      const j = isB2 ? -1 : Math.floor((c - l.w2) / CLASSES);
      const k = isB2 ? c - l.b2 : (c - l.w2) % CLASSES;
      let sum = 0;
      for (let n = 0; n < plan.count; n++) {
        const d = isB2 ? h : h * plan.z[n * H + j];
        sum += logitShiftLoss(plan, n, k, d) - logitShiftLoss(plan, n, k, -d);
      }
      out[c - start] = sum / plan.count / scale;
    }
    return c;
  }

  /**
   * D(n, level, j) = L_n(a1[n][j] + s) − L_n(a1[n][j] − s), s = h·level/255, for every j.
   * sigmoid(a + s) = 1 / (1 + e^{−a}·e^{−s}): e^{−a} is cached per (n, j) and e^{∓s} is computed once
   * per row, so the sigmoid costs a multiply and a divide. The ten logits move by δ_k = Δz·W2[j][k],
   * and e_k·exp(δ_k) = e_k + e_k·expm1(δ_k); S' = S + Σ e_k·expm1(δ_k) keeps S's digits.
   * D = log((p₋ + 1e-7)/(p₊ + 1e-7)): one log of a ratio near 1 instead of two logs subtracted.
   */
  private computeRow(r: number): void {
    const { plan, memo } = this;
    const H = plan.hidden;
    const n = plan.rowSample[r];
    const s = plan.h * (plan.rowLevel[r] / 255);
    const vPlus = Math.exp(-s);
    const vMinus = Math.exp(s);
    const p = plan.params;
    const w2 = this.l.w2;
    const q = n * CLASSES;
    const t = plan.labels[n];
    const e = plan.e;
    const S0 = plan.S[n];
    const et0 = e[q + t];
    const base = r * H;
    for (let j = 0; j < H; j++) {
      const nj = n * H + j;
      const u = plan.u[nj];
      const zj = plan.z[nj];
      const dzP = 1 / (1 + u * vPlus) - zj;
      const dzM = 1 / (1 + u * vMinus) - zj;
      const w = w2 + j * CLASSES;
      let dSP = 0;
      let dSM = 0;
      let dtP = 0;
      let dtM = 0;
      for (let k = 0; k < CLASSES; k++) {
        const ek = e[q + k];
        const wk = p[w + k];
        const gP = ek * expm1Small(dzP * wk);
        const gM = ek * expm1Small(dzM * wk);
        dSP += gP;
        dSM += gM;
        if (k === t) {
          dtP = gP;
          dtM = gM;
        }
      }
      const pP = (et0 + dtP) / (S0 + dSP);
      const pM = (et0 + dtM) / (S0 + dSM);
      memo[base + j] = guardedLogRatio(pM, pP);
    }
    Atomics.store(this.done, r, 1);
    this.rowsComputed++;
  }
}

/**
 * The whole gradient on one thread: the memo rows first, in row (sample) order, which keeps each
 * sample's cached activations in cache (rows computed on demand in pixel order jump between
 * samples), then every coordinate.
 */
export function fdGradient(params: Float64Array, batch: Batch, h = DEFAULT_H): Float64Array {
  const engine = new FdEngine(planGradient(params, batch, h));
  engine.fillRows(0, engine.rows);
  return engine.shard(0, params.length) as Float64Array;
}

/** `gradientShard(params, batch, start, end)`: derivatives for coordinates [start, end). */
export function gradientShard(params: Float64Array, batch: Batch, start: number, end: number, h = DEFAULT_H): Float64Array {
  return new FdEngine(planGradient(params, batch, h)).shard(start, end);
}
