import { FormatError } from './errors.js';
import type { FdMemory, FdPlan } from './fd-engine.js';

/**
 * One buffer per gradient holds the plan (the cached forward pass at θ, the parameters, the
 * sparsity structure) and the memo of D(n, level, ·) rows with their done flags. Put in a
 * SharedArrayBuffer, it reaches every worker thread once, by reference, and the threads share the
 * memo: a row computed by one thread is reused by all (rows are a pure function of the plan, so two
 * threads racing on one row write the same bits).
 */
const MAGIC = 0x6e677031; // "ngp1"
const HEADER = 8; // float64 slots

type Kind = 'f64' | 'i32' | 'u8';
const FIELDS: ReadonlyArray<[keyof FdPlan, Kind]> = [
  ['params', 'f64'], ['a1', 'f64'], ['z', 'f64'], ['u', 'f64'], ['e', 'f64'], ['S', 'f64'],
  ['colStart', 'i32'], ['colRow', 'i32'], ['rowSample', 'i32'], ['rowOf255', 'i32'],
  ['labels', 'u8'], ['rowLevel', 'u8'],
];
const SIZE: Record<Kind, number> = { f64: 8, i32: 4, u8: 1 };

function view(buf: ArrayBufferLike, kind: Kind, offset: number, length: number): Float64Array | Int32Array | Uint8Array {
  if (kind === 'f64') return new Float64Array(buf, offset, length);
  if (kind === 'i32') return new Int32Array(buf, offset, length);
  return new Uint8Array(buf, offset, length);
}

const align8 = (n: number): number => (n + 7) & ~7;

/**
 * Copies a plan into a buffer from `alloc` (e.g. `(n) => new SharedArrayBuffer(n)`), which may
 * return a larger buffer (a reused one): the plan takes its first bytes and its memo starts empty.
 */
export function packPlan(plan: FdPlan, alloc: (bytes: number) => ArrayBufferLike): ArrayBufferLike {
  const lengths = FIELDS.map(([name]) => (plan[name] as ArrayLike<number>).length);
  const rows = plan.rowSample.length;
  let bytes = HEADER * 8 + lengths.length * 8;
  for (let f = 0; f < FIELDS.length; f++) bytes += align8(lengths[f] * SIZE[FIELDS[f][1]]);
  bytes += align8(rows * plan.hidden * 8) + align8(rows * 4);
  const buf = alloc(bytes);
  if (buf.byteLength < bytes) throw new FormatError('plan buffer', `alloc returned ${buf.byteLength} bytes for a plan of ${bytes}`);
  const head = new Float64Array(buf, 0, HEADER + lengths.length);
  head.set([MAGIC, plan.hidden, plan.count, plan.h, rows, bytes, 0, 0]);
  let offset = (HEADER + lengths.length) * 8;
  for (let f = 0; f < FIELDS.length; f++) {
    const [name, kind] = FIELDS[f];
    head[HEADER + f] = lengths[f];
    view(buf, kind, offset, lengths[f]).set(plan[name] as ArrayLike<number>);
    offset += align8(lengths[f] * SIZE[kind]);
  }
  offset += align8(rows * plan.hidden * 8);
  new Int32Array(buf, offset, rows).fill(0); // no memo row is done yet (a reused buffer holds old flags)
  return buf;
}

/** Views over a packed buffer: the plan and the (shared) memo, no copies. */
export function unpackPlan(buf: ArrayBufferLike): { plan: FdPlan; memory: FdMemory } {
  if (buf.byteLength < HEADER * 8) throw new FormatError('plan buffer', `too short (${buf.byteLength} bytes)`);
  const head = new Float64Array(buf, 0, HEADER + FIELDS.length);
  if (head[0] !== MAGIC || !(head[5] <= buf.byteLength)) throw new FormatError('plan buffer', 'not a numgrad plan (bad magic or size)');
  const hidden = head[1];
  const rows = head[4];
  const out: Record<string, unknown> = { hidden, count: head[2], h: head[3] };
  let offset = (HEADER + FIELDS.length) * 8;
  for (let f = 0; f < FIELDS.length; f++) {
    const [name, kind] = FIELDS[f];
    const length = head[HEADER + f];
    out[name] = view(buf, kind, offset, length);
    offset += align8(length * SIZE[kind]);
  }
  const memo = new Float64Array(buf, offset, rows * hidden);
  offset += align8(rows * hidden * 8);
  const done = new Int32Array(buf, offset, rows);
  return { plan: out as unknown as FdPlan, memory: { memo, done } };
}
