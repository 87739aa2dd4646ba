import type { Dataset } from './dataset.js';
import { FormatError } from './errors.js';
import { CLASSES } from './layout.js';

/**
 * The IDX format of the MNIST files (http://yann.lecun.com/exdb/mnist/): a big-endian magic number
 * 0x0000TTDD (TT = element type, DD = number of dimensions), DD big-endian uint32 sizes, then the
 * elements. Pure: callers read the bytes; we only check them, so every failure names `source`.
 */

/** Element type codes the format defines. Only ubyte occurs in MNIST, so only ubyte is accepted. */
const IDX_TYPES: Record<number, string> = {
  0x08: 'ubyte',
  0x09: 'byte',
  0x0b: 'short',
  0x0c: 'int',
  0x0d: 'float',
  0x0e: 'double',
};
const UBYTE = 0x08;

export interface IdxArray {
  readonly dtype: 'uint8';
  readonly shape: number[];
  /** A view over the input bytes (no copy: the training images are 47 MB). */
  readonly data: Uint8Array;
}

export interface IdxExpect {
  readonly dims?: number;
  readonly dtype?: 'uint8';
  /** Expected sizes; `undefined` entries (e.g. the sample count) may be anything. */
  readonly shape?: (number | undefined)[];
  /** What the file should hold ('images', 'labels'), for messages. */
  readonly what?: string;
}

const hex = (n: number, digits: number): string => `0x${n.toString(16).toUpperCase().padStart(digits, '0')}`;
const typeName = (code: number): string => IDX_TYPES[code] ?? 'unknown type';
const plural = (n: number, word: string): string => `${n} ${word}${n === 1 ? '' : 's'}`;

export function parseIdx(bytes: Uint8Array, source: string, expect: IdxExpect = {}): IdxArray {
  const { shape, headerLength, elements } = parseIdxHeader(bytes, bytes.length, source, expect);
  // A plain Uint8Array view even when `bytes` is a Node Buffer, so datasets are one concrete type.
  return { dtype: 'uint8', shape, data: new Uint8Array(bytes.buffer, bytes.byteOffset + headerLength, elements) };
}

/**
 * The checks of parseIdx on the first bytes of a file of `fileLength` bytes (at least the header:
 * 4 + 4·dims bytes; more is ignored), so a caller can read only some elements of a large file.
 */
export function parseIdxHeader(bytes: Uint8Array, fileLength: number, source: string, expect: IdxExpect = {}): { shape: number[]; headerLength: number; elements: number } {
  const fail: (detail: string) => never = (detail) => {
    throw new FormatError(source, detail);
  };
  const forWhat = expect.what === undefined ? '' : ` for ${expect.what}`;
  if (fileLength < 4 || bytes.length < 4) fail(`truncated: expected at least 4 bytes (the IDX magic number), got ${fileLength}`);

  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = view.getUint32(0, false);
  const type = bytes[2];
  const dims = bytes[3];
  if (bytes[0] !== 0 || bytes[1] !== 0) {
    // gzip starts 1F 8B: the commonest mistake is an archive that was never unpacked.
    const gz = bytes[0] === 0x1f && bytes[1] === 0x8b ? ' (this is a gzip file: gunzip it first)' : '';
    const want = expect.dims === undefined ? 'first two bytes 0x00 0x00' : hex((UBYTE << 8) | expect.dims, 8);
    fail(`bad magic number ${hex(magic, 8)}: expected ${want}${forWhat}, not an IDX file${gz}`);
  }
  if (expect.dims !== undefined && (type !== UBYTE || dims !== expect.dims)) {
    fail(
      `bad magic number ${hex(magic, 8)}: expected ${hex((UBYTE << 8) | expect.dims, 8)} ` +
        `(ubyte, ${plural(expect.dims, 'dimension')})${forWhat}, found ${typeName(type)} (${hex(type, 2)}) with ${plural(dims, 'dimension')}`,
    );
  }
  if (type !== UBYTE) {
    const known = IDX_TYPES[type] === undefined ? 'an unknown element type' : `element type ${IDX_TYPES[type]}`;
    fail(`bad magic number ${hex(magic, 8)}: ${known} (${hex(type, 2)}); only ubyte (0x08) is supported`);
  }
  if (dims === 0) fail(`bad magic number ${hex(magic, 8)}: 0 dimensions; expected at least 1`);

  const headerLength = 4 + 4 * dims;
  if (fileLength < headerLength || bytes.length < headerLength) {
    fail(`truncated: expected at least ${headerLength} bytes (header with ${plural(dims, 'dimension')}), got ${fileLength}`);
  }
  const shape: number[] = [];
  for (let d = 0; d < dims; d++) shape.push(view.getUint32(4 + 4 * d, false));

  if (expect.shape !== undefined) {
    const ok = expect.shape.length === dims && expect.shape.every((s, d) => s === undefined || s === shape[d]);
    if (!ok) {
      const want = expect.shape.map((s) => (s === undefined ? '*' : String(s))).join(' × ');
      fail(`shape ${shape.join(' × ')}: expected ${want}${forWhat}`);
    }
  }

  const elements = shape.reduce((a, b) => a * b, 1);
  const expected = headerLength + elements;
  if (fileLength < expected) {
    fail(`truncated: expected ${expected} bytes (${headerLength}-byte header + ${shape.join(' × ')} ubytes), got ${fileLength}`);
  }
  if (fileLength > expected) {
    fail(`${plural(fileLength - expected, 'trailing byte')}: expected ${expected} bytes (${headerLength}-byte header + ${shape.join(' × ')} ubytes), got ${fileLength}`);
  }
  return { shape, headerLength, elements };
}

/** What an images file must hold: count × 28 × 28 ubytes. */
export const IMAGES_EXPECT: IdxExpect = { dims: 3, dtype: 'uint8', shape: [undefined, 28, 28], what: 'images' };

/** An images file: count × 28 × 28 ubytes. */
export function parseImages(bytes: Uint8Array, source: string): { count: number; pixels: Uint8Array } {
  const a = parseIdx(bytes, source, IMAGES_EXPECT);
  return { count: a.shape[0], pixels: a.data };
}

/** A labels file: count ubytes, each a class 0..9. */
export function parseLabels(bytes: Uint8Array, source: string): { count: number; labels: Uint8Array } {
  const a = parseIdx(bytes, source, { dims: 1, dtype: 'uint8', what: 'labels' });
  for (let i = 0; i < a.data.length; i++) {
    if (a.data[i] >= CLASSES) throw new FormatError(source, `label ${a.data[i]} at index ${i}: expected a class 0..${CLASSES - 1}`);
  }
  return { count: a.shape[0], labels: a.data };
}

/** Images and labels files of one split, checked to describe the same samples. */
export function datasetFromIdx(images: Uint8Array, labels: Uint8Array, sourceImages: string, sourceLabels: string): Dataset {
  const im = parseImages(images, sourceImages);
  const lb = parseLabels(labels, sourceLabels);
  if (im.count !== lb.count) {
    throw new FormatError(sourceLabels, `holds ${lb.count} labels but ${sourceImages} holds ${im.count} images: expected equal counts`);
  }
  return { count: im.count, pixels: im.pixels, labels: lb.labels };
}
