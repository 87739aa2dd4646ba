/**
 * Finite differences of any function R^n → R^m, split into the evaluations they need and the
 * arithmetic that combines them, so the evaluations can run anywhere (threads, workers, an async
 * simulator) and the result is still a pure function of the values they return.
 *
 * - `central` is the notebook's numerical_gradient: (f(x + h·e_i) − f(x − h·e_i)) / 2h, h = 1e-4.
 * - `2-point` and `3-point` are SciPy 1.17's scipy.optimize._numdiff.approx_derivative, operation
 *   for operation (_compute_absolute_step, the abs_step fallback, _adjust_scheme_to_bounds and
 *   _dense_difference): the same steps, the same representable denominators ((x0 + h) − x0 for
 *   2-point, (x0 + h) − (x0 − h) for 3-point, not h or 2h), the same order of the additions. With a
 *   function whose own arithmetic is the same in both languages the results agree to the bit.
 */
import { ValidationError } from './errors.js';
import { DEFAULT_H } from './numerical.js';

export const DIFF_METHODS = ['central', '2-point', '3-point'] as const;
export type DiffMethod = (typeof DIFF_METHODS)[number];

/**
 * SciPy's relative steps for float64 (_eps_for_method): EPS**0.5 (= 2^-26) and EPS**(1/3), EPS =
 * 2^-52; written out so they do not depend on this platform's pow (checked against Python's in
 * test/core/scipy-agreement.test.ts).
 */
export const REL_STEP_2POINT = 1.4901161193847656e-8;
export const REL_STEP_3POINT = 6.055454452393343e-6;

export interface DiffSpec {
  readonly method: DiffMethod;
  /** central only: the step (default 1e-4, the notebook's). */
  readonly h?: number;
  /** 2-point/3-point: SciPy's rel_step (h = rel_step·sign(x0)·|x0|, the default step where that is 0). */
  readonly relStep?: number;
  /** 2-point/3-point: SciPy's abs_step (the default step where x0 + abs_step == x0). */
  readonly absStep?: number;
  /** 2-point/3-point: bounds (default ±∞); x0 must lie within them. */
  readonly lower?: Float64Array;
  readonly upper?: Float64Array;
}

/** The steps of one point: h[i] per coordinate and whether 3-point goes one-sided there. */
export interface DiffPlan {
  readonly method: DiffMethod;
  readonly x0: Float64Array;
  readonly h: Float64Array;
  readonly oneSided: Uint8Array;
}

const OP = 'numdiff';

/** SciPy's sign_x0: +1 where x0 ≥ 0 (so +1 at 0 and −0), else −1. */
const sign = (v: number): number => (v >= 0 ? 1 : 0) * 2 - 1;
const defaultStep = (rstep: number, v: number): number => rstep * sign(v) * Math.max(1.0, Math.abs(v));

/** Validates a spec against a point and computes its steps (SciPy's rules for 2-point/3-point). */
export function planDiff(x0: Float64Array, spec: DiffSpec): DiffPlan {
  const n = x0.length;
  if (!(DIFF_METHODS as readonly string[]).includes(spec.method)) throw new ValidationError(OP, 'method', `one of ${DIFF_METHODS.join(', ')}`, spec.method);
  for (let i = 0; i < n; i++) if (!Number.isFinite(x0[i])) throw new ValidationError(OP, `x[${i}]`, 'a finite number', x0[i]);
  const h = new Float64Array(n);
  const oneSided = new Uint8Array(n);
  if (spec.method === 'central') {
    if (spec.relStep !== undefined || spec.absStep !== undefined || spec.lower !== undefined || spec.upper !== undefined) {
      throw new ValidationError(OP, 'rel-step/abs-step/lower/upper', 'absent with method central (the notebook\'s formula; use 2-point or 3-point)');
    }
    const step = spec.h ?? DEFAULT_H;
    if (!(step > 0) || !Number.isFinite(step)) throw new ValidationError(OP, 'h', 'a finite number > 0', step);
    h.fill(step);
    return { method: spec.method, x0, h, oneSided };
  }
  if (spec.h !== undefined) throw new ValidationError(OP, 'h', `absent with method ${spec.method} (use rel-step or abs-step)`, spec.h);
  if (spec.relStep !== undefined && spec.absStep !== undefined) throw new ValidationError(OP, 'abs-step', 'absent when rel-step is given (one step rule)', spec.absStep);
  for (const [k, v] of [['rel-step', spec.relStep], ['abs-step', spec.absStep]] as const) {
    if (v !== undefined && !Number.isFinite(v)) throw new ValidationError(OP, k, 'a finite number', v);
  }
  const rstep = spec.method === '2-point' ? REL_STEP_2POINT : REL_STEP_3POINT;
  for (let i = 0; i < n; i++) {
    const v = x0[i];
    if (spec.absStep !== undefined) {
      h[i] = v + spec.absStep - v === 0 ? defaultStep(rstep, v) : spec.absStep;
    } else if (spec.relStep !== undefined) {
      const s = spec.relStep * sign(v) * Math.abs(v);
      h[i] = v + s - v === 0 ? defaultStep(rstep, v) : s;
    } else {
      h[i] = defaultStep(rstep, v);
    }
  }
  const lb = bound(spec.lower, n, -Infinity, 'lower');
  const ub = bound(spec.upper, n, Infinity, 'upper');
  for (let i = 0; i < n; i++) {
    if (x0[i] < lb[i] || x0[i] > ub[i]) throw new ValidationError(OP, `x[${i}]`, `within the bounds [${lb[i]}, ${ub[i]}]`, x0[i]);
  }
  adjustToBounds(spec.method, x0, h, oneSided, lb, ub);
  return { method: spec.method, x0, h, oneSided };
}

function bound(b: Float64Array | undefined, n: number, fill: number, name: string): Float64Array {
  if (b === undefined) return new Float64Array(n).fill(fill);
  if (b.length !== n) throw new ValidationError(OP, name, `${n} values (one per coordinate)`, `${b.length} values`);
  for (let i = 0; i < n; i++) if (Number.isNaN(b[i])) throw new ValidationError(OP, `${name}[${i}]`, 'a number or ±Infinity', b[i]);
  return b;
}

/** SciPy's _adjust_scheme_to_bounds with num_steps = 1, in place. */
function adjustToBounds(method: DiffMethod, x0: Float64Array, h: Float64Array, oneSided: Uint8Array, lb: Float64Array, ub: Float64Array): void {
  const n = x0.length;
  const twoSided = method === '3-point';
  if (twoSided) for (let i = 0; i < n; i++) h[i] = Math.abs(h[i]);
  else oneSided.fill(1);
  let bounded = false;
  for (let i = 0; i < n && !bounded; i++) bounded = !(lb[i] === -Infinity && ub[i] === Infinity);
  if (!bounded) return;
  for (let i = 0; i < n; i++) {
    const lower = x0[i] - lb[i];
    const upper = ub[i] - x0[i];
    const hi = h[i];
    if (!twoSided) {
      const x = x0[i] + hi;
      const violated = x < lb[i] || x > ub[i];
      const fitting = Math.abs(hi) <= Math.max(lower, upper);
      if (violated && fitting) h[i] = -hi;
      else if (!fitting) h[i] = upper >= lower ? upper / 1 : -lower / 1;
      continue;
    }
    const central = lower >= hi && upper >= hi;
    if (central) continue;
    h[i] = upper >= lower ? Math.min(hi, (0.5 * upper) / 1) : -Math.min(hi, (0.5 * lower) / 1);
    oneSided[i] = 1;
    const minDist = Math.min(upper, lower) / 1;
    if (Math.abs(h[i]) <= minDist) {
      h[i] = minDist;
      oneSided[i] = 0;
    }
  }
}

/** Whether coordinates [start, end) need f(x0) itself (2-point always; 3-point where one-sided). */
export function needsF0(plan: DiffPlan, start: number, end: number): boolean {
  if (plan.method === '2-point') return true;
  if (plan.method === '3-point') for (let i = start; i < end; i++) if (plan.oneSided[i] === 1) return true;
  return false;
}

/**
 * The evaluations coordinates [start, end) need, in order: f(x0) first when needsF0, then per
 * coordinate the perturbed points, each given as (coordinate, the value it takes; every other
 * coordinate is x0's). coordinate −1 is x0 itself.
 */
export function evaluationsFor(plan: DiffPlan, start: number, end: number): { coords: Int32Array; values: Float64Array } {
  checkRange(plan, start, end);
  const f0 = needsF0(plan, start, end) ? 1 : 0;
  const per = plan.method === '2-point' ? 1 : 2;
  const coords = new Int32Array(f0 + per * (end - start));
  const values = new Float64Array(coords.length);
  let e = 0;
  if (f0) coords[e++] = -1;
  for (let i = start; i < end; i++) {
    const v = plan.x0[i];
    const hi = plan.h[i];
    if (plan.method === 'central') {
      coords[e] = i; values[e++] = v + hi; // the notebook: x[idx] = float(tmp_val) + h, then tmp_val - h
      coords[e] = i; values[e++] = v - hi;
    } else if (plan.method === '2-point') {
      coords[e] = i; values[e++] = v + hi;
    } else if (plan.oneSided[i] === 1) {
      coords[e] = i; values[e++] = v + hi;
      coords[e] = i; values[e++] = v + 2 * hi;
    } else {
      coords[e] = i; values[e++] = v - hi;
      coords[e] = i; values[e++] = v + hi;
    }
  }
  return { coords, values };
}

/**
 * Combines the values of evaluationsFor(plan, start, end) (row e of `evals`: m values of the e-th
 * evaluation) into rows start..end−1 of Jᵀ: row i holds ∂f/∂x_i, m values. SciPy's arithmetic:
 * 2-point (f1 − f0) / ((x0 + h) − x0); 3-point (f2 − f1) / ((x0 + h) − (x0 − h)), one-sided
 * (−3·f0 + 4·f1 − f2) / ((x0 + 2h) − x0). The notebook's: (f1 − f2) / (2·h).
 */
export function combine(plan: DiffPlan, start: number, end: number, evals: Float64Array, m: number): Float64Array {
  checkRange(plan, start, end);
  const f0 = needsF0(plan, start, end) ? 1 : 0;
  const per = plan.method === '2-point' ? 1 : 2;
  if (evals.length !== (f0 + per * (end - start)) * m) throw new ValidationError(OP, 'evaluations', `${(f0 + per * (end - start)) * m} values`, `${evals.length} values`);
  const out = new Float64Array((end - start) * m);
  let e = f0;
  for (let i = start; i < end; i++) {
    const v = plan.x0[i];
    const hi = plan.h[i];
    const r = (i - start) * m;
    const a = e * m;
    const b = (e + 1) * m;
    if (plan.method === 'central') {
      for (let j = 0; j < m; j++) out[r + j] = (evals[a + j] - evals[b + j]) / (2 * hi);
    } else if (plan.method === '2-point') {
      const dx = v + hi - v;
      for (let j = 0; j < m; j++) out[r + j] = (evals[a + j] - evals[j]) / dx;
    } else if (plan.oneSided[i] === 1) {
      const dx = v + 2 * hi - v;
      for (let j = 0; j < m; j++) out[r + j] = (-3.0 * evals[j] + 4 * evals[a + j] - evals[b + j]) / dx;
    } else {
      const dx = v + hi - (v - hi);
      for (let j = 0; j < m; j++) out[r + j] = (evals[b + j] - evals[a + j]) / dx;
    }
    e += per;
  }
  return out;
}

/** Jᵀ (n × m, row-major) as the Jacobian m × n (row-major); for m = 1 the same n values. */
export function transposeRows(rows: Float64Array, n: number, m: number): Float64Array {
  if (m === 1) return rows.slice();
  const out = new Float64Array(n * m);
  for (let i = 0; i < n; i++) for (let j = 0; j < m; j++) out[j * n + i] = rows[i * m + j];
  return out;
}

/** The point of evaluation e: x0 with coordinate coords[e] set to values[e] (a fresh array). */
export function pointOf(x0: Float64Array, coord: number, value: number): Float64Array {
  const x = Float64Array.from(x0);
  if (coord >= 0) x[coord] = value;
  return x;
}

/** The whole derivative of a synchronous function in this thread: Jᵀ rows (n × m) and m. */
export function approxDerivative(f: (x: Float64Array) => number | Float64Array, x0: Float64Array, spec: DiffSpec): { rows: Float64Array; m: number; scalar: boolean } {
  const plan = planDiff(x0, spec);
  const { coords, values } = evaluationsFor(plan, 0, x0.length);
  let m = -1;
  let scalar = false;
  let evals = new Float64Array(0);
  for (let e = 0; e < coords.length; e++) {
    const y = f(pointOf(x0, coords[e], values[e]));
    if (m < 0) {
      scalar = typeof y === 'number';
      m = scalar ? 1 : (y as Float64Array).length;
      evals = new Float64Array(coords.length * m);
    }
    if (typeof y === 'number') evals[e] = y;
    else evals.set(y, e * m);
  }
  return { rows: combine(plan, 0, x0.length, evals, Math.max(m, 1)), m: Math.max(m, 1), scalar };
}

function checkRange(plan: DiffPlan, start: number, end: number): void {
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > plan.x0.length || start > end) {
    throw new ValidationError(OP, 'range', `integers 0 ≤ start ≤ end ≤ ${plan.x0.length}`, `[${start}, ${end})`);
  }
}
