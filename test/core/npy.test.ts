import { describe, it, expect } from 'vitest';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { encodeNpy, parseFloatVector, parseIndexVector, parseNpy } from '../../src/core/npy.js';
import { FormatError, ValidationError } from '../../src/core/errors.js';
import { readIndicesFile, readNpyFile, readParamsFile, writeNpyFile } from '../../src/io/npy-file.js';

/** A hand-made .npy: magic, version, little-endian header length, header text, data bytes. */
function npy(header: string, data: Uint8Array = new Uint8Array(0), version: [number, number] = [1, 0]): Uint8Array {
  const prefix = version[0] === 1 ? 10 : 12;
  const out = new Uint8Array(prefix + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version[0], version[1]]);
  const view = new DataView(out.buffer);
  if (version[0] === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  for (let i = 0; i < header.length; i++) out[prefix + i] = header.charCodeAt(i);
  out.set(data, prefix + header.length);
  return out;
}
const dict = (descr: string, shape: string, fortran = 'False') => `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }\n`;
const bytesOf = (a: ArrayBufferView) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const hex = (a: ArrayBufferView) => Buffer.from(bytesOf(a)).toString('hex');
function int64s(values: bigint[]): Uint8Array {
  const out = new Uint8Array(8 * values.length);
  values.forEach((v, i) => new DataView(out.buffer).setBigInt64(8 * i, v, true));
  return out;
}
/** Bitwise equality, so -0 vs 0 and NaN payloads count. */
function expectSameBits(a: Float64Array | Int32Array, b: Float64Array | Int32Array): void {
  expect(a.length).toBe(b.length);
  for (let i = 0; i < a.length; i++) expect(Object.is(a[i], b[i])).toBe(true);
  expect(hex(a)).toBe(hex(b));
}

/** Values that catch sloppy copying: signed zero, subnormal, infinities, a NaN with a payload. */
function awkwardFloats(): Float64Array {
  const a = new Float64Array([0.1, -0, 5e-324, 1e-310, Infinity, -Infinity, 0, 1 / 3, -1.5e300]);
  new DataView(a.buffer).setBigUint64(6 * 8, 0x7ff8000000000123n, true); // NaN with payload
  return a;
}

describe('encodeNpy / parseNpy round trip', () => {
  it('float64 1-D, bit for bit', () => {
    const data = awkwardFloats();
    const a = parseNpy(encodeNpy(data), 'v.npy');
    expect(a.dtype).toBe('float64');
    expect(a.shape).toEqual([data.length]);
    expectSameBits(a.data, data);
  });

  it('float64 2-D', () => {
    const data = Float64Array.from({ length: 12 }, (_, i) => i / 7 - 0.5);
    const a = parseNpy(encodeNpy(data, [3, 4]), 'm.npy');
    expect(a.shape).toEqual([3, 4]);
    expectSameBits(a.data, data);
  });

  it('int32, including the extremes', () => {
    const data = new Int32Array([0, -1, 2147483647, -2147483648, 42]);
    const a = parseNpy(encodeNpy(data), 'i.npy');
    expect(a.dtype).toBe('int32');
    expectSameBits(a.data, data);
    expect(parseIndexVector(encodeNpy(data), 'i.npy')).toEqual(data);
  });

  it('empty arrays', () => {
    expect(parseNpy(encodeNpy(new Float64Array(0)), 'e').shape).toEqual([0]);
  });

  it('pads the header so the data starts at a multiple of 64 bytes, ending in a newline', () => {
    for (const shape of [[0], [1], [7], [39760], [3, 4], [1000, 10]]) {
      const bytes = encodeNpy(new Float64Array(shape.reduce((a, b) => a * b, 1)), shape);
      const headerLength = new DataView(bytes.buffer).getUint16(8, true);
      expect((10 + headerLength) % 64).toBe(0);
      expect(bytes[10 + headerLength - 1]).toBe(0x0a);
    }
  });

  it('reads a subarray of a larger buffer (unaligned data offset)', () => {
    const file = encodeNpy(new Float64Array([1.25, -2.5]));
    const shifted = new Uint8Array(file.length + 3);
    shifted.set(file, 3);
    expect(Array.from(parseFloatVector(shifted.subarray(3), 's'))).toEqual([1.25, -2.5]);
  });

  it('rejects bad shapes and data types when encoding', () => {
    expect(() => encodeNpy(new Float64Array(6), [4, 2])).toThrow(ValidationError);
    expect(() => encodeNpy(new Float64Array(6), [4, 2])).toThrow(/encodeNpy: shape must be dimensions whose product is data\.length 6/);
    expect(() => encodeNpy(new Float64Array(8), [2, 2, 2, 1])).toThrow(/shape must be 1 to 3 non-negative integers/);
    expect(() => encodeNpy(new Float32Array(2) as unknown as Float64Array)).toThrow(/data must be a Float64Array or Int32Array/);
  });
});

describe('parseNpy of hand-made files', () => {
  it("reads '<i8' into Int32Array, version 1.0 and 2.0", () => {
    for (const version of [[1, 0], [2, 0]] as [number, number][]) {
      const a = parseNpy(npy(dict('<i8', '(4,)'), int64s([0n, -7n, 2147483647n, -2147483648n]), version), 'i8.npy');
      expect(a.dtype).toBe('int64');
      expect(a.shape).toEqual([4]);
      expect(Array.from(a.data)).toEqual([0, -7, 2147483647, -2147483648]);
      expect(a.data).toBeInstanceOf(Int32Array);
    }
  });

  it('accepts Python 2 long shapes and double-quoted strings', () => {
    const a = parseNpy(npy(`{"descr": "<i8", "fortran_order": False, "shape": (1L,)}`, int64s([3n])), 'old.npy');
    expect(Array.from(a.data)).toEqual([3]);
  });

  it('rejects int64 values outside int32, naming index and value', () => {
    expect(() => parseNpy(npy(dict('<i8', '(2,)'), int64s([1n, 2147483648n])), 'big.npy')).toThrow(
      /^big\.npy: int64 value 2147483648 at index 1: expected an integer in \[-2\^31, 2\^31\)$/,
    );
    expect(() => parseNpy(npy(dict('<i8', '(1,)'), int64s([-(2n ** 40n)])), 'neg.npy')).toThrow(/int64 value -1099511627776 at index 0/);
  });

  it('rejects a bad magic', () => {
    expect(() => parseNpy(new TextEncoder().encode('PK\x03\x04 this is a zip'), 'a.npz')).toThrow(FormatError);
    expect(() => parseNpy(new TextEncoder().encode('PK\x03\x04 this is a zip'), 'a.npz')).toThrow(
      /^a\.npz: bad magic: expected a \.npy file starting with "\\x93NUMPY", got 50 4b 03 04 20 74$/,
    );
    expect(() => parseNpy(new Uint8Array(0), 'e.npy')).toThrow(/e\.npy: bad magic: .*got an empty file/);
  });

  it('rejects unsupported versions', () => {
    expect(() => parseNpy(npy(dict('<f8', '(0,)'), undefined, [3, 0]), 'v3.npy')).toThrow(
      /^v3\.npy: unsupported \.npy format version 3\.0: expected 1\.0 or 2\.0$/,
    );
  });

  it('rejects headers that are not a dict or do not parse', () => {
    expect(() => parseNpy(npy('[1, 2, 3]\n'), 'h')).toThrow(/^h: header is not a dict: expected "\{'descr': \.\.\./);
    expect(() => parseNpy(npy("{'descr': '<f8', 'shape': (3,\n"), 'h')).toThrow(/^h: unparsable header .*: expected a string, True\/False/);
    expect(() => parseNpy(npy("{'descr': '<f8' 'shape': (3,)}\n"), 'h')).toThrow(/^h: unparsable header .*expected ',' or '\}' at character 16/);
    expect(() => parseNpy(npy("{'descr': '<f8', 'shape': (3,), }\n"), 'h')).toThrow(
      /^h: header keys \[descr, shape\]: expected exactly descr, fortran_order, shape$/,
    );
    // The declared header runs past the end of the file.
    expect(() => parseNpy(npy(dict('<f8', '(1,)')).subarray(0, 20), 'h')).toThrow(/^h: truncated: expected a \d+-byte header ending at byte \d+, got 20 bytes$/);
  });

  it('rejects unsupported dtypes, listing the supported ones', () => {
    for (const descr of ['<f4', '>f8', '|u1', '<i2', '<U3']) {
      expect(() => parseNpy(npy(dict(descr, '(1,)'), new Uint8Array(8)), 'd.npy')).toThrow(
        new RegExp(`^d\\.npy: unsupported dtype '${descr.replace('|', '\\|')}': supported are '<f8' \\(float64\\), '<i4' \\(int32\\), '<i8' \\(int64\\)$`),
      );
    }
    expect(() => parseNpy(npy("{'descr': [('x', '<f8')], 'fortran_order': False, 'shape': (1,), }"), 's')).toThrow(
      /^s: unsupported dtype \(\('x', '<f8'\),\) \(a structured dtype\)/,
    );
  });

  it('rejects fortran_order True', () => {
    expect(() => parseNpy(npy(dict('<f8', '(2, 2)', 'True'), new Uint8Array(32)), 'f.npy')).toThrow(
      /^f\.npy: fortran_order True: expected False/,
    );
  });

  it('rejects more than 2 dimensions and scalars', () => {
    expect(() => parseNpy(npy(dict('<f8', '(2, 2, 2)'), new Uint8Array(64)), 't.npy')).toThrow(/^t\.npy: shape \(2, 2, 2\): expected 1 or 2 dimensions, got 3$/);
    expect(() => parseNpy(npy(dict('<f8', '()'), new Uint8Array(8)), 's.npy')).toThrow(/shape \(\): expected 1 or 2 dimensions, got 0/);
  });

  it('rejects truncated data and trailing bytes, saying expected vs got', () => {
    expect(() => parseNpy(npy(dict('<f8', '(3,)'), new Uint8Array(23)), 'd.npy')).toThrow(
      /^d\.npy: truncated data: expected 24 data bytes \(3 × 8-byte float64\), got 23$/,
    );
    expect(() => parseNpy(npy(dict('<i4', '(2, 3)'), new Uint8Array(26)), 'd.npy')).toThrow(
      /^d\.npy: 2 trailing bytes: expected 24 data bytes \(6 × 4-byte int32\), got 26$/,
    );
  });
});

describe('parseFloatVector / parseIndexVector', () => {
  it('accepts (n,), (n, 1) and (1, n) float64; rejects matrices and ints', () => {
    const v = new Float64Array([1, 2, 3]);
    for (const shape of [[3], [3, 1], [1, 3]]) expect(parseFloatVector(encodeNpy(v, shape), 'p')).toEqual(v);
    expect(() => parseFloatVector(encodeNpy(new Float64Array(6), [2, 3]), 'p.npy')).toThrow(/^p\.npy: shape \(2, 3\): expected a vector/);
    expect(() => parseFloatVector(encodeNpy(new Int32Array(2)), 'p.npy')).toThrow(/^p\.npy: dtype int32: expected a float64 \('<f8'\) vector$/);
  });

  it('accepts int32/int64 vectors; rejects floats and matrices', () => {
    expect(Array.from(parseIndexVector(npy(dict('<i8', '(2,)'), int64s([5n, 9n])), 'i'))).toEqual([5, 9]);
    expect(() => parseIndexVector(encodeNpy(new Float64Array([1, 2])), 'i.npy')).toThrow(/^i\.npy: dtype float64: expected integer indices/);
    expect(() => parseIndexVector(encodeNpy(new Int32Array(4), [2, 2]), 'i.npy')).toThrow(/^i\.npy: shape \(2, 2\): expected a 1-D index vector/);
  });
});

describe('npy files (src/io/npy-file.ts)', () => {
  it('writes into a new nested directory and reads params, indices and arrays back', () => {
    const dir = mkdtempSync(join(tmpdir(), 'numgrad-npyfile-'));
    try {
      const params = awkwardFloats();
      writeNpyFile(join(dir, 'a', 'b', 'params.npy'), params);
      expectSameBits(readParamsFile(join(dir, 'a', 'b', 'params.npy')), params);
      writeNpyFile(join(dir, 'idx.npy'), new Int32Array([4, 2]));
      expect(Array.from(readIndicesFile(join(dir, 'idx.npy')))).toEqual([4, 2]);
      writeNpyFile(join(dir, 'm.npy'), new Float64Array(6), [2, 3]);
      expect(readNpyFile(join(dir, 'm.npy')).shape).toEqual([2, 3]);
      const missing = join(dir, 'nope.npy');
      expect(() => readParamsFile(missing)).toThrow(`${missing}: file not found: expected a .npy file`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

const hasNumpy = spawnSync('python3', ['-c', 'import numpy'], { encoding: 'utf8' }).status === 0;

describe('cross-check with numpy', () => {
  function python(code: string): string {
    const r = spawnSync('python3', ['-c', code], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`python failed: ${r.stderr}`);
    return r.stdout;
  }

  it.skipIf(!hasNumpy)('parses what numpy.save writes, and encodes it byte for byte', () => {
    const dir = mkdtempSync(join(tmpdir(), 'numgrad-npy-'));
    try {
      python(`
import numpy as np
np.save(${JSON.stringify(join(dir, 'f.npy'))}, np.array([0.1, -0.0, 5e-324, 1e-310, np.inf, -np.inf, 0.0, 1/3, -1.5e300]))
np.save(${JSON.stringify(join(dir, 'i.npy'))}, np.array([0, -7, 2**31 - 1, -2**31, 60000], dtype=np.int64))
np.save(${JSON.stringify(join(dir, 'm.npy'))}, np.arange(12, dtype=np.float64).reshape(3, 4) / 7 - 0.5)
np.save(${JSON.stringify(join(dir, 'i4.npy'))}, np.array([3, -1, 4], dtype=np.int32))
`);
      const fBytes = readFileSync(join(dir, 'f.npy'));
      const f = parseNpy(fBytes, 'f.npy');
      const expected = awkwardFloats();
      new DataView(expected.buffer).setFloat64(6 * 8, 0, true); // numpy side wrote 0.0 there, not a NaN
      expect(f.shape).toEqual([9]);
      expectSameBits(f.data, expected);
      expect(Buffer.from(encodeNpy(expected)).equals(fBytes)).toBe(true);

      const i = parseNpy(readFileSync(join(dir, 'i.npy')), 'i.npy');
      expect(i.dtype).toBe('int64');
      expect(Array.from(i.data)).toEqual([0, -7, 2147483647, -2147483648, 60000]);

      const mBytes = readFileSync(join(dir, 'm.npy'));
      const m = parseNpy(mBytes, 'm.npy');
      expect(m.shape).toEqual([3, 4]);
      expectSameBits(m.data, Float64Array.from({ length: 12 }, (_, k) => k / 7 - 0.5));
      expect(Buffer.from(encodeNpy(m.data, [3, 4])).equals(mBytes)).toBe(true);

      const i4Bytes = readFileSync(join(dir, 'i4.npy'));
      expect(Buffer.from(encodeNpy(new Int32Array([3, -1, 4]))).equals(i4Bytes)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it.skipIf(!hasNumpy)('numpy.load reads what encodeNpy writes, bit for bit', () => {
    const dir = mkdtempSync(join(tmpdir(), 'numgrad-npy-'));
    try {
      const f = awkwardFloats();
      const m = Float64Array.from({ length: 6 }, (_, k) => Math.sqrt(k) - 1);
      const i = new Int32Array([0, -1, 2147483647, -2147483648]);
      writeFileSync(join(dir, 'f.npy'), encodeNpy(f));
      writeFileSync(join(dir, 'm.npy'), encodeNpy(m, [2, 3]));
      writeFileSync(join(dir, 'i.npy'), encodeNpy(i));
      const out = python(`
import json, numpy as np
r = {}
for name in ['f', 'm', 'i']:
    a = np.load(${JSON.stringify(dir)} + '/' + name + '.npy')
    r[name] = {'dtype': str(a.dtype), 'shape': list(a.shape), 'hex': a.tobytes().hex(),
               'repr': [repr(x) for x in a.ravel().tolist()]}
print(json.dumps(r))
`);
      const r = JSON.parse(out) as Record<string, { dtype: string; shape: number[]; hex: string; repr: string[] }>;
      expect(r.f).toMatchObject({ dtype: 'float64', shape: [9], hex: hex(f) });
      expect(r.f.repr.slice(0, 6)).toEqual(['0.1', '-0.0', '5e-324', '1e-310', 'inf', '-inf']);
      expect(r.m).toMatchObject({ dtype: 'float64', shape: [2, 3], hex: hex(m) });
      // Python's repr and JS's String agree on the shortest round-trip digits for ordinary floats.
      expect(r.m.repr).toEqual(Array.from(m, (x) => (Number.isInteger(x) ? x.toFixed(1) : String(x))));
      expect(r.i).toMatchObject({ dtype: 'int32', shape: [4], hex: hex(i), repr: ['0', '-1', '2147483647', '-2147483648'] });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("writes k Jacobians (k × m × n) with numpy's header for a 3-D array", () => {
    const file = encodeNpy(new Float64Array(12), [2, 3, 2]);
    // numpy.save(np.zeros((2, 3, 2))): the same header, 128 bytes with its padding.
    const header = new TextDecoder().decode(file.subarray(10, 10 + (file[8] | (file[9] << 8))));
    expect(header.trimEnd()).toBe("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, 2), }");
    expect(header.length).toBe(118);
    expect(header.endsWith(' \n')).toBe(true);
    expect(file.length).toBe(128 + 96);
  });
});
