import type { FdPlan } from '../fd-plan.js';
import { CLASSES } from '../layout.js';
import { type WasmMemory, wasmApi } from './emit.js';
import { kernelOnFirstUse } from './layer1.js';
import { type Run, memoRowsModuleBytes } from './memo-rows-module.js';
import { NumgradError } from '../errors.js';

/**
 * Runs the memo-rows kernel (memo-rows-module.ts: the JS loop of FdEngine.computeRow, bitwise, as
 * WebAssembly SIMD) over a plan's rows and takes Math.log of its ratios into the memo.
 */

/** Rows per call: the output (ratios) of a chunk is copied into the memo and logged in JS. */
const CHUNK = 256;
const PAGE = 65536;
const pad16 = (n: number): number => Math.ceil(n / 16) * 16;

/** Byte offsets of one plan's inputs in the kernel's memory (the level table is at 0). */
interface Layout {
  readonly w2: number; readonly maxw: number; readonly u: number; readonly z: number; readonly e: number;
  readonly s: number; readonly t: number; readonly rs: number; readonly rl: number; readonly out: number; readonly flags: number;
}

/**
 * Owns a WebAssembly.Memory and an instance of the kernel. `fill` copies a plan in when it is not
 * the one loaded (~100 KB for a 100-sample batch), then computes rows in chunks and writes
 * log(ratio) into the memo.
 */
export class MemoRowsKernel {
  private readonly memory: WasmMemory;
  private readonly run: Run;
  private plan: FdPlan | undefined;
  private at: Layout | undefined;

  constructor() {
    const api = wasmApi;
    if (api === undefined) throw new NumgradError('MemoRowsKernel: this engine has no WebAssembly');
    this.memory = new api.Memory({ initial: 1 });
    this.run = new api.Instance(new api.Module(memoRowsModuleBytes()), { env: { memory: this.memory } }).exports.rows as Run;
  }

  private load(plan: FdPlan): Layout {
    if (this.plan === plan && this.at !== undefined) return this.at;
    const H = plan.hidden;
    const N = plan.count;
    const R = plan.rowSample.length;
    let off = 256 * 16;
    const take = (bytes: number): number => {
      const a = off;
      off += pad16(bytes);
      return a;
    };
    const at: Layout = {
      w2: take(H * CLASSES * 8), maxw: take(H * 8), u: take(N * H * 8), z: take(N * H * 8), e: take(N * CLASSES * 8),
      s: take(N * 8), t: take(N * 4), rs: take(R * 4), rl: take(R * 4), out: take(CHUNK * H * 8), flags: take(CHUNK * 4),
    };
    const have = this.memory.buffer.byteLength;
    if (off > have) this.memory.grow(Math.ceil((off - have) / PAGE));
    const buf = this.memory.buffer;
    // Exactly the values computeRow uses: vPlus = exp(−s), vMinus = exp(s), s = h·(level/255).
    const levels = new Float64Array(buf, 0, 512);
    for (let v = 0; v < 256; v++) {
      const s = plan.h * (v / 255);
      levels[2 * v] = Math.exp(-s);
      levels[2 * v + 1] = Math.exp(s);
    }
    const w2From = plan.params.length - CLASSES - H * CLASSES;
    const w2 = plan.params.subarray(w2From, w2From + H * CLASSES);
    new Float64Array(buf, at.w2, H * CLASSES).set(w2);
    const maxw = new Float64Array(buf, at.maxw, H);
    for (let j = 0; j < H; j++) {
      let m = 0;
      for (let k = 0; k < CLASSES; k++) m = Math.max(m, Math.abs(w2[j * CLASSES + k]));
      maxw[j] = m;
    }
    new Float64Array(buf, at.u, N * H).set(plan.u);
    new Float64Array(buf, at.z, N * H).set(plan.z);
    new Float64Array(buf, at.e, N * CLASSES).set(plan.e);
    new Float64Array(buf, at.s, N).set(plan.S);
    new Int32Array(buf, at.t, N).set(plan.labels);
    new Int32Array(buf, at.rs, R).set(plan.rowSample);
    new Int32Array(buf, at.rl, R).set(plan.rowLevel);
    this.plan = plan;
    this.at = at;
    return at;
  }

  /**
   * Fills rows [r0, r1) of `memo` that `done` does not mark, in row order, setting their flags
   * (Atomics.store after the values, as computeRow does). A row the kernel flags (a logit move
   * beyond the series' range) goes to `fallback`, the JS loop. Returns the rows this call computed
   * in the kernel.
   */
  fill(plan: FdPlan, memo: Float64Array, done: Int32Array, r0: number, r1: number, fallback: (r: number) => void): number {
    const at = this.load(plan);
    const H = plan.hidden;
    const buf = this.memory.buffer;
    const out = new Float64Array(buf, at.out, CHUNK * H);
    const flags = new Int32Array(buf, at.flags, CHUNK);
    let computed = 0;
    let r = r0;
    while (r < r1) {
      if (Atomics.load(done, r) !== 0) {
        r++;
        continue;
      }
      let end = r + 1;
      while (end < r1 && end - r < CHUNK && Atomics.load(done, end) === 0) end++;
      this.run(r, end, H, at.w2, at.maxw, at.u, at.z, at.e, at.s, at.t, at.rs, at.rl, at.out, at.flags);
      for (let q = r; q < end; q++) {
        if (flags[q - r] !== 0) {
          fallback(q);
          continue;
        }
        const from = (q - r) * H;
        const base = q * H;
        for (let j = 0; j < H; j++) memo[base + j] = Math.log(out[from + j]);
        Atomics.store(done, q, 1);
        computed++;
      }
      r = end;
    }
    return computed;
  }
}

/** The thread's memo-rows kernel, created on first use; undefined when wasm SIMD is unavailable. */
export const sharedMemoRowsKernel: () => MemoRowsKernel | undefined = kernelOnFirstUse(() => new MemoRowsKernel());

/**
 * Which implementation fills memo rows in bulk (FdEngine.fillRows): 'js' (computeRow, the
 * reference), 'wasm' (this kernel, bitwise identical; 'js' only where wasm SIMD is missing) or
 * 'auto' (= wasm). Rows computed on demand by a coordinate always take the JS loop: same bits.
 */
export type RowsBackend = 'js' | 'wasm' | 'auto';
let rowsBackend: RowsBackend = 'auto';

/** Selects the memo-rows backend (for tests and benchmarks); returns the previous setting. */
export function setRowsBackend(backend: RowsBackend): RowsBackend {
  const previous = rowsBackend;
  rowsBackend = backend;
  return previous;
}

/** The kernel fillRows uses, or undefined for the JS loop. */
export function rowsKernel(): MemoRowsKernel | undefined {
  return rowsBackend === 'js' ? undefined : sharedMemoRowsKernel();
}
