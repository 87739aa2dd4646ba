import { INPUTS } from '../layout.js';
import { Body, type WasmMemory, emitModule, f64, i32, v128, wasmApi } from './emit.js';
import { NumgradError, ValidationError } from '../errors.js';

/**
 * The first layer of the net, a1 = x·W1 + b1, as a WebAssembly SIMD kernel that is bitwise identical
 * to the scalar JS loop of network.ts:
 *
 *   for each sample, for each non-zero pixel i in increasing order: a1[j] += (v/255) · W1[i·H + j]
 *   then a1[j] = a1[j] + b1[j]
 *
 * Every a1[j] starts at +0 and receives exactly the same separately rounded products (f64x2.mul, then
 * f64x2.add — never a fused multiply-add, never relaxed SIMD) in the same order; x = v/255 is computed
 * with f64.convert_i32_u and f64.div by 255, the same correctly rounded division JS performs. Zero
 * pixels are skipped as in JS. The only freedom taken is *which* j are processed together: a1 is cut
 * into column tiles held in v128 locals (registers) for the whole pixel loop, which changes no term
 * and no order for any single a1[j].
 *
 * Per sample the kernel first gathers the non-zero pixels into records [x: f64, &W1[i][0]: i32] (16
 * bytes each), then for each column tile walks the records. Tiles: `TILE` vectors (2·TILE columns)
 * as long as they fit, then at most one tile of each power of two below TILE (4, 2, 1 vectors for
 * TILE = 5), then one scalar column (odd H).
 */

/**
 * Vectors (of 2 doubles) per main column tile. V8's TurboFan loads the whole W1 slice before the
 * multiplies, so a tile needs 2·TILE + 1 xmm registers (of 15 usable on x64): at 8 one accumulator is
 * spilled and every record pays a store→load round trip (~20 % slower); 4..7 run alike. 5 covers
 * H = 50 (25 vectors) in 5 tiles exactly.
 */
const TILE = 5;
/** Gathered non-zero pixel records: 784 × 16 bytes at address 0. */
const REC_BYTES = INPUTS * 16;
const PAGE = 65536;

type Run = (n: number, hidden: number, px: number, w1: number, b1: number, a1: number) => void;

/** The kernel module's bytes: imports `env.memory`, exports `layer1(n, H, px, w1, b1, a1)`. */
export function layer1ModuleBytes(tile = TILE): Uint8Array {
  if (!Number.isInteger(tile) || tile < 1 || tile > 16) throw new ValidationError('layer1ModuleBytes', 'tile', 'an integer in [1, 16]', tile);
  // Parameters: n samples, H, then byte addresses of the pixels (n×784 u8), W1 (784×H f64),
  // b1 (H f64) and a1 (n×H f64, written).
  const [N, H, PX, W1, B1, A1] = [0, 1, 2, 3, 4, 5];
  const b = new Body(6);
  const rowBytes = b.local(i32); // H·8: one W1 row, one a1 row
  const pxEnd = b.local(i32);
  const i = b.local(i32);
  const v = b.local(i32);
  const w = b.local(i32);
  const e = b.local(i32); // record pointer
  const eEnd = b.local(i32);
  const jb = b.local(i32); // column byte offset of the current tile
  const p = b.local(i32);
  const x = b.local(v128);
  const acc: number[] = [];
  for (let c = 0; c < tile; c++) acc.push(b.local(v128));
  const sacc = b.local(f64);

  b.localGet(H).i32Const(3).i32Shl().localSet(rowBytes);
  b.localGet(PX).localGet(N).i32Const(INPUTS).i32Mul().i32Add().localSet(pxEnd);

  // One column tile of `c` vectors at column byte offset jb (c = 0: one scalar column).
  const emitTile = (c: number): void => {
    if (c === 0) b.f64Const(0).localSet(sacc);
    for (let k = 0; k < c; k++) b.v128Zero().localSet(acc[k]);
    b.i32Const(0).localSet(e);
    b.block();
    b.localGet(e).localGet(eEnd).i32GeU().brIf(0); // no non-zero pixel
    b.loop();
    b.localGet(e).i32Load(8).localGet(jb).i32Add().localSet(p);
    if (c === 0) {
      // sacc = sacc + x · W1[i][j]
      b.localGet(sacc).localGet(e).f64Load(0).localGet(p).f64Load().f64Mul().f64Add().localSet(sacc);
    } else {
      b.localGet(e).f64Load(0).f64x2Splat().localSet(x);
      for (let k = 0; k < c; k++) {
        // acc_k = acc_k + x · W1[i][j..j+2)
        b.localGet(acc[k]).localGet(x).localGet(p).v128Load(16 * k).f64x2Mul().f64x2Add().localSet(acc[k]);
      }
    }
    b.localGet(e).i32Const(16).i32Add().localTee(e).localGet(eEnd).i32LtU().brIf(0);
    b.end(); // loop
    b.end(); // block
    // a1[j] = acc + b1[j]
    if (c === 0) {
      b.localGet(A1).localGet(jb).i32Add();
      b.localGet(sacc).localGet(B1).localGet(jb).i32Add().f64Load().f64Add();
      b.f64Store();
    }
    for (let k = 0; k < c; k++) {
      b.localGet(A1).localGet(jb).i32Add();
      b.localGet(acc[k]).localGet(B1).localGet(jb).i32Add().v128Load(16 * k).f64x2Add();
      b.v128Store(16 * k);
    }
  };

  b.block(); // samples
  b.localGet(PX).localGet(pxEnd).i32GeU().brIf(0);
  b.loop();
  {
    // Gather the non-zero pixels of this sample: records [v/255, &W1[i][0]].
    b.i32Const(0).localSet(e).i32Const(0).localSet(i).localGet(W1).localSet(w);
    b.loop();
    b.localGet(PX).localGet(i).i32Add().i32Load8U().localTee(v);
    b.if();
    b.localGet(e).localGet(v).f64ConvertI32U().f64Const(255).f64Div().f64Store(0);
    b.localGet(e).localGet(w).i32Store(8);
    b.localGet(e).i32Const(16).i32Add().localSet(e);
    b.end();
    b.localGet(w).localGet(rowBytes).i32Add().localSet(w);
    b.localGet(i).i32Const(1).i32Add().localTee(i).i32Const(INPUTS).i32LtU().brIf(0);
    b.end();
    b.localGet(e).localSet(eEnd);

    // Main tiles while 2·tile columns remain.
    b.i32Const(0).localSet(jb);
    b.block().loop();
    b.localGet(jb).i32Const(16 * tile).i32Add().localGet(rowBytes).i32GtU().brIf(1);
    emitTile(tile);
    b.localGet(jb).i32Const(16 * tile).i32Add().localSet(jb);
    b.br(0);
    b.end().end();
    // Fewer than `tile` vectors remain: at most one tile of each power of two below `tile`, then the
    // scalar column.
    let c = 1;
    while (c * 2 < tile) c *= 2;
    for (; c >= 1; c >>= 1) {
      b.localGet(jb).i32Const(16 * c).i32Add().localGet(rowBytes).i32LeU().if();
      emitTile(c);
      b.localGet(jb).i32Const(16 * c).i32Add().localSet(jb);
      b.end();
    }
    b.localGet(jb).localGet(rowBytes).i32LtU().if();
    emitTile(0);
    b.end();

    b.localGet(A1).localGet(rowBytes).i32Add().localSet(A1);
    b.localGet(PX).i32Const(INPUTS).i32Add().localTee(PX).localGet(pxEnd).i32LtU().brIf(0);
  }
  b.end(); // loop
  b.end(); // block

  return emitModule({
    memory: { import: { module: 'env', field: 'memory' }, min: 1 },
    funcs: [{ name: 'layer1', params: [i32, i32, i32, i32, i32, i32], results: [], body: b }],
  });
}

/** A tiny module using v128 and f64x2 ops: WebAssembly.validate says whether this engine has SIMD. */
export function simdProbeBytes(): Uint8Array {
  const b = new Body(1);
  b.localGet(0).f64x2Splat().localGet(0).f64x2Splat().f64x2Mul().f64x2ExtractLane(0);
  return emitModule({ funcs: [{ name: 'probe', params: [f64], results: [f64], body: b }] });
}

let simd: boolean | undefined;

/** Whether WebAssembly with 128-bit SIMD is available (checked once). */
export function wasmSimdAvailable(): boolean {
  if (simd === undefined) {
    try {
      simd = wasmApi !== undefined && wasmApi.validate(simdProbeBytes());
    } catch {
      simd = false;
    }
  }
  return simd;
}

const pad16 = (n: number): number => Math.ceil(n / 16) * 16;

/**
 * Owns a WebAssembly.Memory and an instance of the kernel. `compute` copies W1 and b1 in (every call:
 * 784·H doubles, ~313 KB for H = 50 — negligible next to the samples, and always current however the
 * caller mutates params), then runs blocks of `block` samples: pixels in, a1 (b1 included) out.
 */
export class Layer1Kernel {
  private readonly memory: WasmMemory;
  private readonly run: Run;

  constructor(readonly block = 512, tile = TILE) {
    if (!Number.isInteger(block) || block < 1) throw new ValidationError('Layer1Kernel', 'block', 'an integer ≥ 1', block);
    const api = wasmApi;
    if (api === undefined) throw new NumgradError('Layer1Kernel: this engine has no WebAssembly');
    this.memory = new api.Memory({ initial: 1 });
    const instance = new api.Instance(new api.Module(layer1ModuleBytes(tile)), { env: { memory: this.memory } });
    this.run = instance.exports.layer1 as Run;
  }

  /**
   * a1[s·H + j] for samples [start, start+n) of `pixels` (count×784 bytes): x·W1 + b1 where W1 and b1
   * are read from params in the flat layout (W1 at 0, b1 at 784·H).
   */
  compute(params: Float64Array, hidden: number, pixels: Uint8Array, start: number, n: number, a1: Float64Array): void {
    const H = hidden;
    const w1Len = INPUTS * H;
    const B = Math.min(this.block, Math.max(n, 1));
    const b1Off = REC_BYTES;
    const w1Off = b1Off + pad16(H * 8);
    const pxOff = w1Off + w1Len * 8;
    const a1Off = pxOff + pad16(B * INPUTS);
    const need = a1Off + B * H * 8;
    const have = this.memory.buffer.byteLength;
    if (need > have) this.memory.grow(Math.ceil((need - have) / PAGE));
    const buf = this.memory.buffer;
    new Float64Array(buf, w1Off, w1Len).set(params.subarray(0, w1Len));
    new Float64Array(buf, b1Off, H).set(params.subarray(w1Len, w1Len + H));
    const px = new Uint8Array(buf, pxOff, B * INPUTS);
    const out = new Float64Array(buf, a1Off, B * H);
    for (let s = 0; s < n; s += B) {
      const m = Math.min(B, n - s);
      px.set(pixels.subarray((start + s) * INPUTS, (start + s + m) * INPUTS));
      this.run(m, H, pxOff, w1Off, b1Off, a1Off);
      a1.set(m === B ? out : out.subarray(0, m * H), s * H);
    }
  }
}

/**
 * A kernel per process (per thread), made by `make` on first use; undefined when wasm SIMD is
 * unavailable or the kernel cannot be made (callers then take the JS loop: same bits).
 */
export function kernelOnFirstUse<K>(make: () => K): () => K | undefined {
  let kernel: K | null | undefined;
  return () => {
    if (kernel === undefined) {
      try {
        kernel = wasmSimdAvailable() ? make() : null;
      } catch {
        kernel = null;
      }
    }
    return kernel ?? undefined;
  };
}

/** The process's (thread's) layer-1 kernel, created on first use; undefined when wasm SIMD is unavailable. */
export const sharedLayer1Kernel: () => Layer1Kernel | undefined = kernelOnFirstUse(() => new Layer1Kernel());
