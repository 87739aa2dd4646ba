import { describe, it, expect } from 'vitest';
import { datasetFromIdx, parseIdx, parseImages, parseLabels } from '../../src/core/idx.js';
import { FormatError } from '../../src/core/errors.js';

/** An IDX file: magic 0x0000TTDD, big-endian uint32 sizes, then `data` (or as many bytes as the shape says). */
function idx(shape: number[], data?: ArrayLike<number>, type = 0x08): Uint8Array {
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Uint8Array(4 + 4 * shape.length + (data?.length ?? n));
  const view = new DataView(out.buffer);
  out[2] = type;
  out[3] = shape.length;
  shape.forEach((s, d) => view.setUint32(4 + 4 * d, s, false));
  if (data !== undefined) out.set(data, 4 + 4 * shape.length);
  else for (let i = 0; i < n; i++) out[4 + 4 * shape.length + i] = i % 256;
  return out;
}

const images = (count: number) => idx([count, 28, 28]);
const labels = (values: number[]) => idx([values.length], values);

describe('parseIdx', () => {
  it('parses a good file into shape and a view of the data', () => {
    const a = parseIdx(idx([2, 3]), 'm.idx');
    expect(a.dtype).toBe('uint8');
    expect(a.shape).toEqual([2, 3]);
    expect(Array.from(a.data)).toEqual([0, 1, 2, 3, 4, 5]);
    expect(a.data.constructor).toBe(Uint8Array);
  });

  it('works on a Node Buffer at a non-zero offset', () => {
    const padded = Buffer.concat([Buffer.from([9, 9, 9]), idx([4], [1, 2, 3, 4])]).subarray(3);
    expect(Array.from(parseIdx(padded, 'b').data)).toEqual([1, 2, 3, 4]);
  });

  it('rejects a non-IDX magic, naming source and both numbers', () => {
    const bad = idx([3], [1, 2, 3]);
    bad[0] = 0x12;
    expect(() => parseIdx(bad, 'x.idx')).toThrow(FormatError);
    expect(() => parseIdx(bad, 'x.idx')).toThrow(/^x\.idx: bad magic number 0x12000801: expected first two bytes 0x00 0x00/);
    expect(() => parseLabels(bad, 'l.idx')).toThrow(/^l\.idx: bad magic number 0x12000801: expected 0x00000801 for labels/);
  });

  it('recognises a gzip file', () => {
    const gz = new Uint8Array([0x1f, 0x8b, 0x08, 0x08, 0, 0, 0, 0]);
    expect(() => parseIdx(gz, 'train.gz')).toThrow(/train\.gz: bad magic number 0x1F8B0808.*gzip file: gunzip it first/);
  });

  it('rejects known but unsupported element types, saying only ubyte is accepted', () => {
    expect(() => parseIdx(idx([2], [0, 0, 0, 0, 0, 0, 0, 0], 0x0d), 'f.idx')).toThrow(
      /^f\.idx: bad magic number 0x00000D01: element type float \(0x0D\); only ubyte \(0x08\) is supported$/,
    );
    expect(() => parseIdx(idx([2], [0, 0], 0x07), 'u.idx')).toThrow(/u\.idx: .*an unknown element type \(0x07\); only ubyte/);
    expect(() => parseLabels(idx([2], [0, 0, 0, 0, 0, 0, 0, 0], 0x0e), 'l.idx')).toThrow(
      /l\.idx: bad magic number 0x00000E01: expected 0x00000801 \(ubyte, 1 dimension\) for labels, found double \(0x0E\)/,
    );
  });

  it('rejects the wrong number of dimensions (images file given as labels and vice versa)', () => {
    expect(() => parseLabels(images(1), 'imgs')).toThrow(
      /^imgs: bad magic number 0x00000803: expected 0x00000801 \(ubyte, 1 dimension\) for labels, found ubyte \(0x08\) with 3 dimensions$/,
    );
    expect(() => parseImages(labels([1, 2]), 'lbls')).toThrow(/^lbls: bad magic number 0x00000801: expected 0x00000803 \(ubyte, 3 dimensions\) for images/);
    expect(() => parseIdx(idx([], []), 'z')).toThrow(/z: .*0 dimensions; expected at least 1/);
  });

  it('rejects images that are not 28 × 28', () => {
    expect(() => parseImages(idx([1, 28, 27]), 'i')).toThrow(/^i: shape 1 × 28 × 27: expected \* × 28 × 28 for images$/);
  });

  it('rejects truncated files, saying expected vs got', () => {
    const good = images(2);
    expect(() => parseImages(good.subarray(0, good.length - 1), 'i')).toThrow(
      /^i: truncated: expected 1584 bytes \(16-byte header \+ 2 × 28 × 28 ubytes\), got 1583$/,
    );
    expect(() => parseImages(good.subarray(0, 10), 'i')).toThrow(/truncated: expected at least 16 bytes .*got 10/);
    expect(() => parseIdx(new Uint8Array(2), 'e')).toThrow(/^e: truncated: expected at least 4 bytes.*got 2$/);
  });

  it('rejects trailing bytes', () => {
    expect(() => parseLabels(idx([2], [1, 2, 3]), 'l')).toThrow(/^l: 1 trailing byte: expected 10 bytes .*got 11$/);
  });
});

describe('parseLabels / parseImages / datasetFromIdx', () => {
  it('accepts labels 0..9 and names the index of a bad one', () => {
    expect(Array.from(parseLabels(labels([0, 9, 5]), 'l').labels)).toEqual([0, 9, 5]);
    expect(() => parseLabels(labels([3, 1, 4, 10, 5]), 'l.idx')).toThrow(/^l\.idx: label 10 at index 3: expected a class 0\.\.9$/);
  });

  it('builds a dataset when counts agree', () => {
    const d = datasetFromIdx(images(3), labels([1, 2, 3]), 'i', 'l');
    expect(d.count).toBe(3);
    expect(d.pixels.length).toBe(3 * 784);
    expect(Array.from(d.labels)).toEqual([1, 2, 3]);
  });

  it('rejects mismatched counts naming both files', () => {
    expect(() => datasetFromIdx(images(3), labels([1, 2]), 'imgs.idx', 'lbls.idx')).toThrow(
      /^lbls\.idx: holds 2 labels but imgs\.idx holds 3 images: expected equal counts$/,
    );
  });
});
