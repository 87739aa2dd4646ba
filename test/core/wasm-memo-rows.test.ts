import { afterEach, describe, expect, it, vi } from 'vitest';
import { FdEngine, type RowsBackend, fdGradient, fdMemory, planGradient, setRowsBackend } from '../../src/core/fd-engine.js';
import { type FdPlan, rowsNeeded } from '../../src/core/fd-plan.js';
import { wasmSimdAvailable } from '../../src/core/wasm/layer1.js';
import { MemoRowsKernel } from '../../src/core/wasm/memo-rows.js';
import { memoRowsModuleBytes } from '../../src/core/wasm/memo-rows-module.js';
import { wasmApi } from '../../src/core/wasm/emit.js';
import { bytesOf, scaledCase, seededCase } from '../helpers/data.js';

/** Every memo row of a plan, computed by FdEngine.fillRows with the given backend. */
function memoWith(backend: RowsBackend, plan: FdPlan): Float64Array {
  const previous = setRowsBackend(backend);
  try {
    const engine = new FdEngine(plan);
    engine.fillRows(0, engine.rows);
    expect(engine.rowsComputed).toBe(engine.rows);
    return (engine as unknown as { memo: Float64Array }).memo;
  } finally {
    setRowsBackend(previous);
  }
}

/** The kernel alone over all rows; flagged rows go to the JS loop. Returns the memo and how many were flagged. */
function kernelMemo(plan: FdPlan): { memo: Float64Array; flagged: number } {
  const memory = fdMemory(plan);
  const js = new FdEngine(plan, memory);
  const previous = setRowsBackend('js');
  try {
    let flagged = 0;
    const computed = new MemoRowsKernel().fill(plan, memory.memo, memory.done, 0, plan.rowSample.length, (r) => {
      flagged++;
      js.fillRows(r, r + 1);
    });
    expect(computed + flagged).toBe(plan.rowSample.length);
    expect(Array.from(memory.done).every((d) => d === 1)).toBe(true);
    return { memo: memory.memo, flagged };
  } finally {
    setRowsBackend(previous);
  }
}

afterEach(() => {
  setRowsBackend('auto');
});

describe.runIf(wasmSimdAvailable())('memo rows in WebAssembly SIMD (wasm/memo-rows.ts)', () => {
  it('emits a module this engine validates', () => {
    expect(wasmApi?.validate(memoRowsModuleBytes())).toBe(true);
  });

  it('bitwise: the seeded 784-50-10 net on 100 MNIST images gives the JS loop bytes for every memo row', () => {
    const { params, batch } = seededCase(0, 50);
    const plan = planGradient(params, batch);
    const js = memoWith('js', plan);
    const wasm = memoWith('wasm', plan);
    expect(js.length).toBe(plan.rowSample.length * 50);
    expect(bytesOf(wasm).equals(bytesOf(js))).toBe(true);
    expect(kernelMemo(plan).flagged).toBe(0);
  });

  it('bitwise: odd H, a batch of 1, and h = 1 (every row beyond the series range) give the JS bytes', () => {
    for (const [hidden, count, h] of [[7, 3, 1e-4], [1, 1, 1e-4], [5, 4, 1]] as const) {
      const { params, batch } = seededCase(3, hidden, count);
      const plan = planGradient(params, batch, h);
      expect(bytesOf(memoWith('wasm', plan)).equals(bytesOf(memoWith('js', plan)))).toBe(true);
    }
  });

  it('bitwise: rows whose logit moves leave the series range are flagged and computed by the JS loop, the rest by the kernel', () => {
    // Weights ~3 and h = 0.01: |Δz·W2| crosses 2^-11 for the larger pixel levels only.
    const { params, batch } = scaledCase(5, 16, 12, 3);
    const plan = planGradient(params, batch, 1e-2);
    const { memo, flagged } = kernelMemo(plan);
    expect(flagged).toBeGreaterThan(0);
    expect(flagged).toBeLessThan(plan.rowSample.length);
    expect(bytesOf(memo).equals(bytesOf(memoWith('js', plan)))).toBe(true);
  });

  it('bitwise: one kernel serving two plans in turn reloads each (the gradient bytes match the JS backend)', () => {
    const a = seededCase(1, 20, 30);
    const b = scaledCase(2, 20, 30, 0.5);
    setRowsBackend('js');
    const wantA = fdGradient(a.params, a.batch);
    const wantB = fdGradient(b.params, b.batch);
    setRowsBackend('wasm');
    const planA = planGradient(a.params, a.batch);
    const planB = planGradient(b.params, b.batch);
    const engineA = new FdEngine(planA);
    const engineB = new FdEngine(planB);
    engineA.fillRows(0, 10);
    engineB.fillRows(0, 10);
    engineA.fillRows(10, engineA.rows);
    engineB.fillRows(10, engineB.rows);
    expect(bytesOf(engineA.shard(0, a.params.length) as Float64Array).equals(bytesOf(wantA))).toBe(true);
    expect(bytesOf(engineB.shard(0, b.params.length) as Float64Array).equals(bytesOf(wantB))).toBe(true);
  });
});

describe.runIf(wasmSimdAvailable())('a shard given alone fills the rows it needs with the kernel', () => {
  it('bitwise: W1 parts, b1, and ranges across the W1/b1/W2 borders give fdGradient bytes, the kernel filling their rows (and no others)', () => {
    const { params, batch } = seededCase(4, 50, 40);
    setRowsBackend('js');
    const want = fdGradient(params, batch);
    setRowsBackend('wasm');
    const fill = vi.spyOn(MemoRowsKernel.prototype, 'fill');
    try {
      for (const [a, b] of [[0, 1000], [20000, 20070], [39150, 39210], [39199, 39260], [39200, 39250], [39250, 39760]] as const) {
        fill.mockClear();
        const plan = planGradient(params, batch);
        const engine = new FdEngine(plan);
        const got = engine.shard(a, b) as Float64Array;
        expect(bytesOf(got).equals(bytesOf(want.subarray(a, b)))).toBe(true);
        const needed = rowsNeeded(plan, a, Math.min(b, 39250)).reduce((s, v) => s + v, 0);
        expect(engine.rowsComputed).toBe(needed);
        expect(fill.mock.calls.length > 0).toBe(needed > 0);
      }
    } finally {
      fill.mockRestore();
    }
  });
});
