import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatherBatch } from '../../src/core/dataset.js';
import { FormatError, ValidationError } from '../../src/core/errors.js';
import { miniBatchIndices } from '../../src/core/prng.js';
import { loadMnist, mnistDir, openMnistRows } from '../../src/io/mnist.js';

const FILES = ['train-images-idx3-ubyte', 'train-labels-idx1-ubyte', 't10k-images-idx3-ubyte', 't10k-labels-idx1-ubyte'];
let dir: string;

beforeAll(() => {
  // The real files under another directory name: loadMnist's cache (keyed by directory) cannot answer for them.
  dir = mkdtempSync(join(tmpdir(), 'numgrad-mnist-rows-'));
  for (const f of FILES) symlinkSync(join(mnistDir(), f), join(dir, f));
});
afterAll(() => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('openMnistRows: only the batch images are read', () => {
  it('gives the bytes of gatherBatch(loadMnist(...)) for a seeded batch, duplicates and the last image', () => {
    const train = loadMnist('train');
    const rows = openMnistRows('train', dir);
    expect(rows.count).toBe(60000);
    const indices = [...miniBatchIndices(0, 0, 100, 60000), 59999, 0, 0];
    const got = rows.gather('test', indices);
    const want = gatherBatch(train, indices);
    expect(got.count).toBe(want.count);
    expect(Buffer.from(got.pixels).equals(Buffer.from(want.pixels))).toBe(true);
    expect(Buffer.from(got.labels).equals(Buffer.from(want.labels))).toBe(true);
    const test = openMnistRows('test', dir);
    expect(test.count).toBe(10000);
    expect(Buffer.from(test.gather('test', [9999, 3]).pixels).equals(Buffer.from(gatherBatch(loadMnist('test'), [9999, 3]).pixels))).toBe(true);
  });

  it('an index out of range is a ValidationError naming the command and the field', () => {
    const rows = openMnistRows('test', dir);
    expect(() => rows.gather('numgrad gradient', [0, 10000], '--indices')).toThrow(ValidationError);
    expect(() => rows.gather('numgrad gradient', [0, 10000], '--indices')).toThrow(/numgrad gradient: --indices\[1\]/);
  });

  it('checks the images file as loadMnist does: a truncated file, and a labels count that differs', () => {
    const bad = mkdtempSync(join(tmpdir(), 'numgrad-mnist-bad-'));
    try {
      const images = readFileSync(join(mnistDir(), 't10k-images-idx3-ubyte'));
      const labels = readFileSync(join(mnistDir(), 't10k-labels-idx1-ubyte'));
      writeFileSync(join(bad, 't10k-images-idx3-ubyte'), images.subarray(0, images.length - 1));
      writeFileSync(join(bad, 't10k-labels-idx1-ubyte'), labels);
      expect(() => openMnistRows('test', bad)).toThrow(FormatError);
      expect(() => openMnistRows('test', bad)).toThrow(/truncated: expected 7840016 bytes .* got 7840015/);
      // 9999 images (header and length agree), 10000 labels.
      const fewer = Buffer.from(images.subarray(0, images.length - 784));
      fewer.writeUInt32BE(9999, 4);
      writeFileSync(join(bad, 't10k-images-idx3-ubyte'), fewer);
      expect(() => openMnistRows('test', bad)).toThrow(/holds 10000 labels but .* holds 9999 images/);
    } finally {
      rmSync(bad, { recursive: true, force: true });
    }
  });
});
