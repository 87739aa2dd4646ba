/**
 * A tiny WebAssembly binary emitter: just enough of the format (LEB128, the type / import / function /
 * memory / export / code sections, a few dozen opcodes including the 128-bit SIMD ones) to build small
 * numeric kernels at run time, with no external toolchain. Reference: the WebAssembly core spec,
 * "Binary Format", and the fixed-width SIMD proposal's opcode table (all merged into WebAssembly 2.0).
 */

/**
 * The slice of the WebAssembly JS API that numgrad uses. The project compiles with lib ES2022 and no
 * DOM, which declare no `WebAssembly` global, so it is typed here and read from globalThis.
 */
export interface WasmMemory {
  readonly buffer: ArrayBuffer;
  grow(pages: number): number;
}
export interface WasmInstance {
  readonly exports: Readonly<Record<string, unknown>>;
}
export interface WasmApi {
  validate(bytes: Uint8Array): boolean;
  readonly Module: new (bytes: Uint8Array) => object;
  readonly Instance: new (module: object, imports?: Record<string, Record<string, unknown>>) => WasmInstance;
  readonly Memory: new (descriptor: { initial: number; maximum?: number }) => WasmMemory;
}

/** The engine's WebAssembly API, or undefined where there is none. */
export const wasmApi: WasmApi | undefined = (globalThis as { WebAssembly?: WasmApi }).WebAssembly;

/** Value types. */
export const i32 = 0x7f;
export const i64 = 0x7e;
export const f32 = 0x7d;
export const f64 = 0x7c;
export const v128 = 0x7b;
export type ValType = typeof i32 | typeof i64 | typeof f32 | typeof f64 | typeof v128;

/** Unsigned LEB128 (u32). */
export function uleb(n: number): number[] {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new RangeError(`uleb: ${n} is not a u32`);
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

/** Signed LEB128 (i32). */
export function sleb(n: number): number[] {
  if (!Number.isInteger(n) || n < -(2 ** 31) || n >= 2 ** 31) throw new RangeError(`sleb: ${n} is not an i32`);
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7; // arithmetic shift keeps the sign
    const done = (n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0);
    out.push(done ? b : b | 0x80);
    if (done) return out;
  }
}

/** A name / string: its UTF-8 byte count, then the bytes. */
export function str(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...uleb(b.length), ...b];
}

/** A vector: element count, then the elements' bytes. */
export function vec(items: readonly number[][]): number[] {
  return [...uleb(items.length), ...items.flat()];
}

/** Little-endian IEEE-754 bytes of an f64. */
export function f64Bytes(x: number): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setFloat64(0, x, true);
  return [...b];
}

/** Block type of a structured instruction that leaves nothing on the stack. */
const EMPTY = 0x40;

/**
 * One function body: locals plus an instruction stream, built with chained calls. Each method emits
 * exactly one instruction, named as in the text format (`i32.add` → `i32Add`). Memory accesses take
 * the static `offset` of their memarg (the natural alignment is always claimed as a hint only:
 * unaligned accesses are still correct).
 */
export class Body {
  readonly code: number[] = [];
  private readonly locals: ValType[] = [];

  /** @param params the function's parameter count: locals are numbered after them. */
  constructor(private readonly params: number) {}

  /** Declares a new local, returning its index. */
  local(type: ValType): number {
    this.locals.push(type);
    return this.params + this.locals.length - 1;
  }

  /** Raw bytes (for anything without a helper). */
  op(...bytes: number[]): this {
    this.code.push(...bytes);
    return this;
  }

  // Control.
  block(): this { return this.op(0x02, EMPTY); }
  loop(): this { return this.op(0x03, EMPTY); }
  if(): this { return this.op(0x04, EMPTY); }
  else(): this { return this.op(0x05); }
  end(): this { return this.op(0x0b); }
  /** Branch to the `depth`-th enclosing block/loop/if (0 = innermost). */
  br(depth: number): this { return this.op(0x0c, ...uleb(depth)); }
  brIf(depth: number): this { return this.op(0x0d, ...uleb(depth)); }
  return(): this { return this.op(0x0f); }
  drop(): this { return this.op(0x1a); }

  // Locals.
  localGet(i: number): this { return this.op(0x20, ...uleb(i)); }
  localSet(i: number): this { return this.op(0x21, ...uleb(i)); }
  localTee(i: number): this { return this.op(0x22, ...uleb(i)); }

  // Memory (memarg = alignment exponent, static offset).
  private mem(opcode: number, align: number, offset: number): this { return this.op(opcode, ...uleb(align), ...uleb(offset)); }
  i32Load(offset = 0): this { return this.mem(0x28, 2, offset); }
  f64Load(offset = 0): this { return this.mem(0x2b, 3, offset); }
  i32Load8U(offset = 0): this { return this.mem(0x2d, 0, offset); }
  i32Store(offset = 0): this { return this.mem(0x36, 2, offset); }
  f64Store(offset = 0): this { return this.mem(0x39, 3, offset); }

  // Constants.
  i32Const(n: number): this { return this.op(0x41, ...sleb(n)); }
  f64Const(x: number): this { return this.op(0x44, ...f64Bytes(x)); }

  // i32 comparison and arithmetic.
  i32Eqz(): this { return this.op(0x45); }
  i32Eq(): this { return this.op(0x46); }
  i32Ne(): this { return this.op(0x47); }
  i32LtU(): this { return this.op(0x49); }
  i32GtU(): this { return this.op(0x4b); }
  i32LeU(): this { return this.op(0x4d); }
  i32GeU(): this { return this.op(0x4f); }
  i32Add(): this { return this.op(0x6a); }
  i32Sub(): this { return this.op(0x6b); }
  i32Mul(): this { return this.op(0x6c); }
  i32Shl(): this { return this.op(0x74); }

  // f64 arithmetic (IEEE-754 binary64, round to nearest: the same operations JS numbers use).
  f64Add(): this { return this.op(0xa0); }
  f64Sub(): this { return this.op(0xa1); }
  f64Mul(): this { return this.op(0xa2); }
  f64Div(): this { return this.op(0xa3); }
  f64ConvertI32U(): this { return this.op(0xb8); }

  // 128-bit SIMD: prefix 0xFD, then the opcode as a u32 LEB128.
  private simd(opcode: number, ...imm: number[]): this { return this.op(0xfd, ...uleb(opcode), ...imm); }
  v128Load(offset = 0): this { return this.simd(0x00, ...uleb(4), ...uleb(offset)); }
  v128Store(offset = 0): this { return this.simd(0x0b, ...uleb(4), ...uleb(offset)); }
  /** v128.const with all 16 bytes zero: f64x2 (+0, +0). */
  v128Zero(): this { return this.simd(0x0c, ...new Array<number>(16).fill(0)); }
  f64x2Splat(): this { return this.simd(0x14); }
  f64x2ExtractLane(lane: 0 | 1): this { return this.simd(0x21, lane); }
  /** Lane-wise IEEE add / multiply: two separately rounded operations (no fusion). */
  f64x2Add(): this { return this.simd(0xf0); }
  f64x2Sub(): this { return this.simd(0xf1); }
  f64x2Mul(): this { return this.simd(0xf2); }
  /** Lane-wise IEEE division (correctly rounded, as JS `/`). */
  f64x2Div(): this { return this.simd(0xf3); }
  f64x2Abs(): this { return this.simd(0xec); }
  /** Lane-wise `a > b`: all ones where true, zero where false (NaN compares false). */
  f64x2Gt(): this { return this.simd(0x4a); }
  /** One f64 from memory in both lanes. */
  v128Load64Splat(offset = 0): this { return this.simd(0x0a, ...uleb(3), ...uleb(offset)); }
  v128Or(): this { return this.simd(0x50); }
  /** i32 1 when any bit of the vector is set. */
  v128AnyTrue(): this { return this.simd(0x53); }
  /** `select` over two v128 operands (the typed form `select (result v128)`): the first when the i32 is non-zero. */
  selectV128(): this { return this.op(0x1c, 0x01, v128); }

  /** The body as the code section wants it: size, local declarations (runs of one type), code, `end`. */
  encode(): number[] {
    const runs: number[][] = [];
    for (let k = 0; k < this.locals.length; ) {
      let m = k;
      while (m < this.locals.length && this.locals[m] === this.locals[k]) m++;
      runs.push([...uleb(m - k), this.locals[k]]);
      k = m;
    }
    const body = [...vec(runs), ...this.code, 0x0b];
    return [...uleb(body.length), ...body];
  }
}

export interface FuncDef {
  readonly name?: string; // exported under this name when given
  readonly params: readonly ValType[];
  readonly results: readonly ValType[];
  readonly body: Body;
}

export interface ModuleDef {
  /** Memory in 64 KiB pages: imported as `module.field` (the host owns and grows it), or defined and exported. */
  readonly memory?:
    | { readonly import: { readonly module: string; readonly field: string }; readonly min: number; readonly max?: number }
    | { readonly export: string; readonly min: number; readonly max?: number };
  readonly funcs: readonly FuncDef[];
}

function section(id: number, content: number[]): number[] {
  return [id, ...uleb(content.length), ...content];
}

function limits(min: number, max?: number): number[] {
  return max === undefined ? [0x00, ...uleb(min)] : [0x01, ...uleb(min), ...uleb(max)];
}

/** The module's bytes: magic, version 1, then the sections in their required order. */
export function emitModule(def: ModuleDef): Uint8Array {
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  // One type per function (duplicates are legal and keep this simple).
  out.push(...section(1, vec(def.funcs.map((f) => [0x60, ...vec(f.params.map((t) => [t])), ...vec(f.results.map((t) => [t]))]))));
  const mem = def.memory;
  if (mem !== undefined && 'import' in mem) {
    out.push(...section(2, vec([[...str(mem.import.module), ...str(mem.import.field), 0x02, ...limits(mem.min, mem.max)]])));
  }
  out.push(...section(3, vec(def.funcs.map((_, k) => uleb(k)))));
  if (mem !== undefined && 'export' in mem) out.push(...section(5, vec([limits(mem.min, mem.max)])));
  const exports: number[][] = [];
  def.funcs.forEach((f, k) => {
    if (f.name !== undefined) exports.push([...str(f.name), 0x00, ...uleb(k)]);
  });
  if (mem !== undefined && 'export' in mem) exports.push([...str(mem.export), 0x02, 0x00]);
  out.push(...section(7, vec(exports)));
  out.push(...section(10, vec(def.funcs.map((f) => f.body.encode()))));
  return Uint8Array.from(out);
}
