import { describe, expect, it } from 'vitest';
import type { Batch } from '../../src/core/dataset.js';
import { sliceDataset } from '../../src/core/dataset.js';
import { CLASSES, INPUTS, hiddenFromLength, layout } from '../../src/core/layout.js';
import { type Forward, type Layer1Backend, forward, initParams, sampleLosses } from '../../src/core/network.js';
import { Rng } from '../../src/core/prng.js';
import { Body, type WasmMemory, emitModule, f64, i32, sleb, uleb, wasmApi } from '../../src/core/wasm/emit.js';
import { Layer1Kernel, layer1ModuleBytes, simdProbeBytes, wasmSimdAvailable } from '../../src/core/wasm/layer1.js';
import { loadMnist } from '../../src/io/mnist.js';
import { bytesOf } from '../helpers/data.js';

/** Index of the first differing float64 (by bytes), or -1. */
function firstDiff(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  if (bytesOf(a).equals(bytesOf(b))) return -1;
  const ua = new BigUint64Array(a.buffer, a.byteOffset, a.length);
  const ub = new BigUint64Array(b.buffer, b.byteOffset, b.length);
  for (let k = 0; k < a.length; k++) if (ua[k] !== ub[k]) return k;
  return -1;
}

function forwardWith(backend: Layer1Backend, params: Float64Array, batch: Batch, start?: number, end?: number): Forward {
  return forward(params, batch, start, end, undefined, backend);
}

/** The textbook loops, no unrolling and no kernel: what both backends must reproduce bit for bit. */
function referenceForward(params: Float64Array, batch: Batch, start = 0, end = batch.count): Forward {
  const H = hiddenFromLength(params.length);
  const l = layout(H);
  const n = end - start;
  const a1 = new Float64Array(n * H);
  const z = new Float64Array(n * H);
  const a2 = new Float64Array(n * CLASSES);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < INPUTS; i++) {
      const v = batch.pixels[(start + s) * INPUTS + i];
      if (v === 0) continue;
      const x = v / 255;
      for (let j = 0; j < H; j++) a1[s * H + j] += x * params[i * H + j];
    }
    for (let j = 0; j < H; j++) {
      a1[s * H + j] = a1[s * H + j] + params[l.b1 + j];
      z[s * H + j] = 1 / (1 + Math.exp(-a1[s * H + j]));
    }
    for (let j = 0; j < H; j++) {
      for (let k = 0; k < CLASSES; k++) a2[s * CLASSES + k] += z[s * H + j] * params[l.w2 + j * CLASSES + k];
    }
    for (let k = 0; k < CLASSES; k++) a2[s * CLASSES + k] += params[l.b2 + k];
  }
  return { count: n, hidden: H, a1, z, a2 };
}

function expectSame(got: Forward, want: Forward): void {
  expect(got.count).toBe(want.count);
  expect(firstDiff(got.a1, want.a1)).toBe(-1);
  expect(firstDiff(got.z, want.z)).toBe(-1);
  expect(firstDiff(got.a2, want.a2)).toBe(-1);
}

/** The wasm path, the JS path and the textbook loops give the same bytes (a1, z, a2). */
function expectIdentical(params: Float64Array, batch: Batch, start?: number, end?: number): void {
  const js = forwardWith('js', params, batch, start, end);
  expectSame(forwardWith('wasm', params, batch, start, end), js);
  expectSame(js, referenceForward(params, batch, start, end));
}

/** Random images: ~20 % non-zero pixels (mixed small/255 values), plus a blank and a saturated one. */
function syntheticBatch(count: number, rng: Rng): Batch {
  const pixels = new Uint8Array(count * INPUTS);
  for (let k = 0; k < pixels.length; k++) {
    const r = rng.nextFloat();
    pixels[k] = r < 0.8 ? 0 : r < 0.9 ? 255 : 1 + rng.int(254);
  }
  if (count > 2) {
    pixels.fill(0, 0, INPUTS);
    pixels.fill(255, INPUTS, 2 * INPUTS);
  }
  return { count, pixels, labels: Uint8Array.from({ length: count }, () => rng.int(10)) };
}

/** initParams plus random biases (initParams leaves b1 and b2 at 0, which would hide their order). */
function paramsWithBiases(hidden: number, rng: Rng, scale: number): Float64Array {
  const p = initParams(hidden, rng, scale);
  const l = layout(hidden);
  for (let c = l.b1; c < l.w2; c++) p[c] = scale * rng.normal();
  for (let c = l.b2; c < l.length; c++) p[c] = scale * rng.normal();
  return p;
}

/** Params with all the awkward values of a sum: -0 terms, subnormals, large magnitudes, -0 biases. */
function awkwardParams(hidden: number, rng: Rng): Float64Array {
  const p = paramsWithBiases(hidden, rng, 0.5);
  for (let c = 0; c < p.length; c++) {
    const r = rng.nextFloat();
    if (r < 0.05) p[c] = -0;
    else if (r < 0.08) p[c] = 0;
    else if (r < 0.1) p[c] = (rng.nextFloat() - 0.5) * 1e-310;
    else if (r < 0.12) p[c] = (rng.nextFloat() - 0.5) * 1e6;
  }
  p[layout(hidden).b1] = -0;
  return p;
}

describe('wasm emitter', () => {
  it('encodes LEB128', () => {
    expect(uleb(0)).toEqual([0]);
    expect(uleb(127)).toEqual([127]);
    expect(uleb(128)).toEqual([0x80, 0x01]);
    expect(uleb(624485)).toEqual([0xe5, 0x8e, 0x26]);
    expect(uleb(0xffffffff)).toEqual([0xff, 0xff, 0xff, 0xff, 0x0f]);
    expect(sleb(0)).toEqual([0]);
    expect(sleb(63)).toEqual([63]);
    expect(sleb(64)).toEqual([0xc0, 0x00]);
    expect(sleb(-1)).toEqual([0x7f]);
    expect(sleb(-64)).toEqual([0x40]);
    expect(sleb(-65)).toEqual([0xbf, 0x7f]);
    expect(sleb(-123456)).toEqual([0xc0, 0xbb, 0x78]);
    expect(() => uleb(-1)).toThrow(RangeError);
    expect(() => sleb(2 ** 31)).toThrow(RangeError);
  });

  it('builds modules that validate and run', () => {
    const WebAssembly = wasmApi!;
    expect(WebAssembly.validate(simdProbeBytes())).toBe(true);
    for (let tile = 1; tile <= 16; tile++) expect(WebAssembly.validate(layer1ModuleBytes(tile))).toBe(true);
    // A scalar function with an exported memory: f(a, b) = a / b + mem[0] as f64.
    const b = new Body(2);
    b.localGet(0).f64ConvertI32U().localGet(1).f64ConvertI32U().f64Div().i32Const(0).f64Load().f64Add();
    const bytes = emitModule({ memory: { export: 'mem', min: 1 }, funcs: [{ name: 'f', params: [i32, i32], results: [f64], body: b }] });
    expect(WebAssembly.validate(bytes)).toBe(true);
    const inst = new WebAssembly.Instance(new WebAssembly.Module(bytes));
    new Float64Array((inst.exports.mem as WasmMemory).buffer, 0, 1)[0] = 0.5;
    expect((inst.exports.f as (a: number, b: number) => number)(7, 2)).toBe(4);
  });

  it('wasm SIMD is available on this Node', () => {
    expect(wasmSimdAvailable()).toBe(true);
  });
});

describe('first-layer wasm SIMD kernel: bitwise identical to the JS loop', () => {
  it.each([50, 7, 1, 100, 2, 3, 16, 17, 33])('synthetic pixels, H = %i', (hidden) => {
    const rng = new Rng(1000 + hidden);
    const batch = syntheticBatch(600, rng); // more than one 512-sample block
    expectIdentical(initParams(hidden, rng), batch);
    expectIdentical(paramsWithBiases(hidden, rng, 0.5), batch, 3, 597);
    expectIdentical(awkwardParams(hidden, rng), batch, 1, 70);
  });

  it('every tile width and block size gives the same bytes', () => {
    const rng = new Rng(77);
    const batch = syntheticBatch(40, rng);
    for (const hidden of [1, 5, 31, 50]) {
      const params = awkwardParams(hidden, rng);
      const ref = forwardWith('js', params, batch).a1;
      for (const [block, tile] of [[512, 8], [7, 1], [1, 3], [13, 5], [40, 12], [39, 16]]) {
        const a1 = new Float64Array(batch.count * hidden);
        new Layer1Kernel(block, tile).compute(params, hidden, batch.pixels, 0, batch.count, a1);
        expect(firstDiff(a1, ref), `H=${hidden} block=${block} tile=${tile}`).toBe(-1);
      }
    }
  });

  it('sees params mutated in place between calls (W1 is copied per call)', () => {
    const rng = new Rng(5);
    const batch = syntheticBatch(100, rng);
    const params = initParams(50, rng);
    expectIdentical(params, batch);
    params[412 * 50 + 7] += 1e-4;
    params[784 * 50 + 3] -= 1e-4;
    expectIdentical(params, batch);
  });

  it('first 2,000 MNIST training images, seeded params (scale 0.01 and 0.5)', () => {
    const train = sliceDataset(loadMnist('train'), 0, 2000);
    for (const params of [initParams(50, new Rng(3)), initParams(50, new Rng(3), 0.5), paramsWithBiases(50, new Rng(3), 0.5)]) {
      expectIdentical(params, train);
      const js = sampleLosses(params, train, 0, train.count, 'js');
      const wasm = sampleLosses(params, train, 0, train.count, 'wasm');
      expect(wasm.correct).toBe(js.correct);
      expect(firstDiff(wasm.losses, js.losses)).toBe(-1);
    }
  });

  it("'auto' keeps small batches on the JS path and gives the same bytes either way", () => {
    const train = loadMnist('train');
    const params = initParams(50, new Rng(3));
    const small = forward(params, train, 100, 110);
    expect(firstDiff(small.a2, forwardWith('wasm', params, train, 100, 110).a2)).toBe(-1);
    const big = forward(params, train, 100, 300);
    expect(firstDiff(big.a2, forwardWith('js', params, train, 100, 300).a2)).toBe(-1);
  });
});
