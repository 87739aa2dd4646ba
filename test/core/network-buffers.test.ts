import { describe, expect, it } from 'vitest';
import { forward, forwardBuffers, probabilities, sampleLosses } from '../../src/core/network.js';
import { sliceDataset } from '../../src/core/dataset.js';
import { loadMnist } from '../../src/io/mnist.js';
import { bytesOf, seededCase } from '../helpers/data.js';

describe('forward pass into reused buffers', () => {
  it('gives the bytes of fresh arrays, however often the buffers are reused and whatever they held', () => {
    const { params, batch } = seededCase(31, 50);
    const buffers = forwardBuffers(100, 50);
    for (const b of Object.values(buffers)) b.fill(Number.NaN); // garbage from an earlier use
    for (const [a, z] of [[0, 100], [10, 73], [0, 1], [99, 100]] as const) {
      const fresh = forward(params, batch, a, z);
      const reused = forward(params, batch, a, z, buffers);
      for (const k of ['a1', 'z', 'a2'] as const) expect(bytesOf(reused[k]).equals(bytesOf(fresh[k])), `${k} [${a}, ${z})`).toBe(true);
      expect(bytesOf(probabilities(reused, buffers)).equals(bytesOf(probabilities(fresh))), `probabilities [${a}, ${z})`).toBe(true);
    }
  });

  it('sampleLosses in blocks gives each sample the loss of its own forward pass', () => {
    const { params } = seededCase(32, 50);
    const test = loadMnist('test');
    const part = sliceDataset(test, 0, 2500); // more than two blocks of 1024, the last one short
    const { losses, correct } = sampleLosses(params, part);
    const y = probabilities(forward(params, part));
    let right = 0;
    for (let s = 0; s < part.count; s++) {
      const t = part.labels[s];
      expect(losses[s]).toBe(-Math.log(y[s * 10 + t] + 1e-7));
      let best = 0;
      for (let k = 1; k < 10; k++) if (y[s * 10 + k] > y[s * 10 + best]) best = k;
      if (best === t) right++;
    }
    expect(correct).toBe(right);
  });

  it('refuses buffers too small for the samples, naming the buffer', () => {
    const { params, batch } = seededCase(33, 50);
    expect(() => forward(params, batch, 0, 100, forwardBuffers(99, 50))).toThrow(/forward: buffers\.a1 must be of length ≥ 5000 for 100 samples, got 4950/);
    const f = forward(params, batch, 0, 10);
    expect(() => probabilities(f, { ...forwardBuffers(10, 50), S: new Float64Array(3) })).toThrow(/softmaxParts: buffers\.S must be/);
  });
});
