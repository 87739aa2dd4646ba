import { FormatError, ValidationError } from './errors.js';

/**
 * numpy's .npy format (https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html):
 * "\x93NUMPY", major, minor, a little-endian header length (uint16 in 1.0, uint32 in 2.0), an ASCII
 * Python dict literal {'descr', 'fortran_order', 'shape'}, then the raw elements. Only what numgrad
 * exchanges with numpy is supported: little-endian float64 vectors/matrices and int32/int64 index
 * vectors. Pure: callers do the file I/O.
 */

export type NpyArray =
  | { readonly dtype: 'float64'; readonly shape: number[]; readonly data: Float64Array }
  /** int64 files are narrowed to Int32Array (indices never need more); `dtype` records what was stored. */
  | { readonly dtype: 'int32' | 'int64'; readonly shape: number[]; readonly data: Int32Array };

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY
const DTYPES = { '<f8': 'float64', '<i4': 'int32', '<i8': 'int64' } as const;
const ITEMSIZE = { float64: 8, int32: 4, int64: 8 } as const;
const SUPPORTED = "'<f8' (float64), '<i4' (int32), '<i8' (int64)";
/** Typed arrays use host byte order; .npy here is little-endian. Copy bytes directly when they agree. */
const HOST_LE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  const fail: (detail: string) => never = (detail) => {
    throw new FormatError(source, detail);
  };
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) {
    fail(`bad magic: expected a .npy file starting with "\\x93NUMPY", got ${describeStart(bytes)}`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const minor = bytes[7];
  if ((major !== 1 && major !== 2) || minor !== 0) fail(`unsupported .npy format version ${major}.${minor}: expected 1.0 or 2.0`);
  const prefix = major === 1 ? 10 : 12;
  if (bytes.length < prefix) fail(`truncated: expected at least ${prefix} bytes of .npy preamble, got ${bytes.length}`);
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const dataOffset = prefix + headerLength;
  if (bytes.length < dataOffset) fail(`truncated: expected a ${headerLength}-byte header ending at byte ${dataOffset}, got ${bytes.length} bytes`);

  let header = '';
  for (let i = prefix; i < dataOffset; i++) header += String.fromCharCode(bytes[i]); // latin1, as numpy writes 1.0/2.0
  const dict = parseHeader(header, fail);

  const descr = dict.descr;
  if (typeof descr !== 'string') fail(`unsupported dtype ${show(descr)} (a structured dtype): supported are ${SUPPORTED}`);
  const dtype = DTYPES[descr as keyof typeof DTYPES];
  if (dtype === undefined) fail(`unsupported dtype '${descr}': supported are ${SUPPORTED}`);
  if (dict.fortran_order !== false) {
    fail(`fortran_order ${show(dict.fortran_order)}: expected False (save a C-contiguous array, e.g. np.ascontiguousarray)`);
  }
  const shape = dict.shape;
  if (!Array.isArray(shape) || !shape.every((d) => typeof d === 'number' && d >= 0)) fail(`shape ${show(shape)}: expected a tuple of non-negative integers`);
  const dims = shape as number[];
  if (dims.length < 1 || dims.length > 2) fail(`shape (${dims.join(', ')}): expected 1 or 2 dimensions, got ${dims.length}`);

  const count = dims.reduce((a, b) => a * b, 1);
  const itemsize = ITEMSIZE[dtype];
  const expected = count * itemsize;
  const got = bytes.length - dataOffset;
  if (got !== expected) {
    const what = got < expected ? 'truncated data' : `${got - expected} trailing byte${got - expected === 1 ? '' : 's'}`;
    fail(`${what}: expected ${expected} data bytes (${count} × ${itemsize}-byte ${dtype}), got ${got}`);
  }

  if (dtype === 'float64') {
    const data = new Float64Array(count);
    // Copy into a fresh buffer: the data offset (10 + header length) is not 8-byte aligned in general.
    if (HOST_LE) new Uint8Array(data.buffer).set(bytes.subarray(dataOffset, dataOffset + expected));
    else for (let i = 0; i < count; i++) data[i] = view.getFloat64(dataOffset + 8 * i, true);
    return { dtype, shape: dims, data };
  }
  const data = new Int32Array(count);
  if (dtype === 'int32') {
    if (HOST_LE) new Uint8Array(data.buffer).set(bytes.subarray(dataOffset, dataOffset + expected));
    else for (let i = 0; i < count; i++) data[i] = view.getInt32(dataOffset + 4 * i, true);
    return { dtype, shape: dims, data };
  }
  for (let i = 0; i < count; i++) {
    // An int64 fits int32 iff its high word is the sign extension of its low word; avoids BigInt per element.
    const lo = view.getInt32(dataOffset + 8 * i, true);
    const hi = view.getInt32(dataOffset + 8 * i + 4, true);
    if (hi !== lo >> 31) {
      fail(`int64 value ${view.getBigInt64(dataOffset + 8 * i, true)} at index ${i}: expected an integer in [-2^31, 2^31)`);
    }
    data[i] = lo;
  }
  return { dtype, shape: dims, data };
}

/** A float64 vector: shape (n,), or (n, 1) / (1, n) flattened. */
export function parseFloatVector(bytes: Uint8Array, source: string): Float64Array {
  const a = parseNpy(bytes, source);
  if (a.dtype !== 'float64') throw new FormatError(source, `dtype ${a.dtype}: expected a float64 ('<f8') vector`);
  if (a.shape.length === 2 && a.shape[0] !== 1 && a.shape[1] !== 1) {
    throw new FormatError(source, `shape (${a.shape.join(', ')}): expected a vector (n,), (n, 1) or (1, n)`);
  }
  return a.data;
}

/** An index vector: int32 or int64, shape (n,). Floats are refused: silently truncating 3.7 to 3 would hide a bug. */
export function parseIndexVector(bytes: Uint8Array, source: string): Int32Array {
  const a = parseNpy(bytes, source);
  if (a.dtype === 'float64') {
    throw new FormatError(source, `dtype float64: expected integer indices, int32 ('<i4') or int64 ('<i8'); save with .astype(np.int64)`);
  }
  if (a.shape.length !== 1) throw new FormatError(source, `shape (${a.shape.join(', ')}): expected a 1-D index vector (n,)`);
  return a.data;
}

/**
 * A version 1.0 .npy file, byte-identical to numpy.save of the same array: header padded with spaces
 * (including numpy's 21-digit growth room) and a newline to a multiple of 64 bytes.
 */
export function encodeNpy(data: Float64Array | Int32Array, shape: number[] = [data.length]): Uint8Array {
  const isFloat = data instanceof Float64Array;
  if (!isFloat && !(data instanceof Int32Array)) throw new ValidationError('encodeNpy', 'data', 'a Float64Array or Int32Array', data);
  if (shape.length < 1 || shape.length > 3 || !shape.every((d) => Number.isInteger(d) && d >= 0)) {
    throw new ValidationError('encodeNpy', 'shape', '1 to 3 non-negative integers', `[${shape.join(', ')}]`);
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== data.length) throw new ValidationError('encodeNpy', 'shape', `dimensions whose product is data.length ${data.length}`, `[${shape.join(', ')}]`);

  const shapeRepr = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${isFloat ? '<f8' : '<i4'}', 'fortran_order': False, 'shape': ${shapeRepr}, }`;
  header += ' '.repeat(21 - String(shape[0]).length);
  const hlen = header.length + 1; // + the final newline
  const padlen = 64 - ((10 + hlen) % 64); // numpy pads a full 64 when already aligned; match it
  header += ' '.repeat(padlen) + '\n';

  const itemsize = isFloat ? 8 : 4;
  const out = new Uint8Array(10 + header.length + count * itemsize);
  out.set(MAGIC, 0);
  out[6] = 1;
  out[7] = 0;
  const view = new DataView(out.buffer);
  view.setUint16(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[10 + i] = header.charCodeAt(i);
  const offset = 10 + header.length;
  if (HOST_LE) out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
  else if (isFloat) for (let i = 0; i < count; i++) view.setFloat64(offset + 8 * i, data[i], true);
  else for (let i = 0; i < count; i++) view.setInt32(offset + 4 * i, data[i], true);
  return out;
}

// --- header: the Python literal subset numpy writes (dict of str keys; str, bool, int-tuple values) ---

type Literal = string | boolean | number | Literal[] | { [k: string]: Literal };

function parseHeader(text: string, fail: (detail: string) => never): Record<string, Literal> {
  let pos = 0;
  // numpy's header nests two deep (the dict, the shape tuple); a header of 60000 '(' would otherwise
  // overflow the stack (a RangeError, not a FormatError naming the file).
  let depth = 0;
  const MAX_DEPTH = 8;
  const bad: (what: string) => never = (what) => fail(`unparsable header ${JSON.stringify(text.trim().slice(0, 80))}: ${what} at character ${pos}`);
  const skip = (): void => {
    while (pos < text.length && ' \t\r\n'.includes(text[pos])) pos++;
  };
  const value = (): Literal => {
    skip();
    const c = text[pos];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, pos + 1);
      if (end < 0) bad('unterminated string');
      const s = text.slice(pos + 1, end);
      pos = end + 1;
      return s;
    }
    if (c === '{' || c === '(' || c === '[') {
      if (++depth > MAX_DEPTH) bad(`nested deeper than ${MAX_DEPTH} levels`);
      const v = c === '{' ? dict() : sequence(c === '(' ? ')' : ']');
      depth--;
      return v;
    }
    // `3L`: Python 2 numpy wrote shapes as longs.
    const m = /^(True|False|(-?\d+)L?)/.exec(text.slice(pos));
    if (m === null) return bad('expected a string, True/False, an integer, a tuple or a dict');
    pos += m[0].length;
    return m[0] === 'True' ? true : m[0] === 'False' ? false : Number(m[2]);
  };
  const sequence = (close: string): Literal[] => {
    pos++;
    const items: Literal[] = [];
    for (;;) {
      skip();
      if (text[pos] === close) {
        pos++;
        return items;
      }
      items.push(value());
      skip();
      if (text[pos] === ',') pos++;
      else if (text[pos] !== close) bad(`expected ',' or '${close}'`);
    }
  };
  const dict = (): { [k: string]: Literal } => {
    pos++;
    const d: { [k: string]: Literal } = {};
    for (;;) {
      skip();
      if (text[pos] === '}') {
        pos++;
        return d;
      }
      const k = value();
      if (typeof k !== 'string') bad('expected a string key');
      skip();
      if (text[pos] !== ':') bad("expected ':'");
      pos++;
      d[k as string] = value();
      skip();
      if (text[pos] === ',') pos++;
      else if (text[pos] !== '}') bad("expected ',' or '}'");
    }
  };

  skip();
  if (text[pos] !== '{') fail(`header is not a dict: expected "{'descr': ..., 'fortran_order': ..., 'shape': ...}", got ${JSON.stringify(text.trim().slice(0, 80))}`);
  const d = dict();
  skip();
  if (pos !== text.length) bad('unexpected text after the dict');
  const keys = Object.keys(d).sort();
  if (keys.join() !== 'descr,fortran_order,shape') {
    fail(`header keys [${keys.join(', ')}]: expected exactly descr, fortran_order, shape`);
  }
  return d;
}

/** A header value as Python would print it, so messages quote what numpy users wrote. */
function show(v: unknown): string {
  const s = pyRepr(v);
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function pyRepr(v: unknown): string {
  if (typeof v === 'string') return `'${v}'`;
  if (typeof v === 'boolean') return v ? 'True' : 'False';
  if (Array.isArray(v)) return `(${v.map(pyRepr).join(', ')}${v.length === 1 ? ',' : ''})`;
  if (typeof v === 'object' && v !== null) return `{${Object.entries(v).map(([k, x]) => `'${k}': ${pyRepr(x)}`).join(', ')}}`;
  return String(v);
}

function describeStart(bytes: Uint8Array): string {
  if (bytes.length === 0) return 'an empty file';
  const head = Array.from(bytes.subarray(0, 6), (b) => b.toString(16).padStart(2, '0')).join(' ');
  return `${bytes.length < 10 ? `only ${bytes.length} bytes: ` : ''}${head}`;
}
