import { ValidationError } from './errors.js';

/**
 * Seeded randomness: xoshiro128** seeded through splitmix32. The same seed gives the same stream on
 * every machine (32-bit integer ops only; normals use Math.log/cos/sqrt, which V8 computes with its
 * own portable fdlibm port). Anything random in numgrad takes an Rng as an argument.
 */
export class Rng {
  private s0: number;
  private s1: number;
  private s2: number;
  private s3: number;
  private spare: number | undefined;

  constructor(seed: number) {
    if (!Number.isSafeInteger(seed)) throw new ValidationError('Rng', 'seed', 'a safe integer', seed);
    // Fold the full safe-integer range into two 32-bit words, then expand with splitmix32.
    let x = (seed >>> 0) ^ Math.imul(Math.floor(seed / 2 ** 32) | 0, 0x9e3779b9);
    const next = (): number => {
      x = (x + 0x9e3779b9) | 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      return (z ^ (z >>> 16)) >>> 0;
    };
    this.s0 = next();
    this.s1 = next();
    this.s2 = next();
    this.s3 = next();
    if ((this.s0 | this.s1 | this.s2 | this.s3) === 0) this.s0 = 1;
  }

  /** Next 32-bit unsigned integer. */
  nextUint32(): number {
    const result = Math.imul(rotl(Math.imul(this.s1, 5), 7), 9) >>> 0;
    const t = this.s1 << 9;
    this.s2 ^= this.s0;
    this.s3 ^= this.s1;
    this.s1 ^= this.s2;
    this.s0 ^= this.s3;
    this.s2 ^= t;
    this.s3 = rotl(this.s3, 11);
    return result;
  }

  /** Uniform in [0, 1) with 53 random bits. */
  nextFloat(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992;
  }

  /** Uniform integer in [0, n), unbiased (rejection sampling). */
  int(n: number): number {
    if (!Number.isInteger(n) || n < 1 || n > 2 ** 32) throw new ValidationError('Rng.int', 'n', 'an integer in [1, 2^32]', n);
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const r = this.nextUint32();
      if (r < limit) return r % n;
    }
  }

  /** Standard normal (Box–Muller, both values used). */
  normal(): number {
    if (this.spare !== undefined) {
      const s = this.spare;
      this.spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = this.nextFloat();
    const v = this.nextFloat();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

/** A 32-bit mix of (seed, step): the per-step stream of a training run, recomputable anywhere. */
export function streamSeed(seed: number, step: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x243f6a88, 0x9e3779b1) ^ Math.imul(Math.floor(seed / 2 ** 32) | 0, 0x85ebca77);
  h = Math.imul(h ^ (step >>> 0), 0xc2b2ae3d) ^ Math.imul(Math.floor(step / 2 ** 32) | 0, 0x27d4eb2f);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return h >>> 0;
}

/**
 * The mini-batch of a training step: `size` indices drawn with replacement from [0, datasetSize),
 * as the book's `np.random.choice(train_size, batch_size)` does. A pure function of (seed, step), so
 * any worker on any machine computes the same batch from the run's seed and the step number.
 */
export function miniBatchIndices(seed: number, step: number, size: number, datasetSize: number): Int32Array {
  if (!Number.isInteger(size) || size < 1) throw new ValidationError('miniBatchIndices', 'size', 'an integer ≥ 1', size);
  if (!Number.isInteger(datasetSize) || datasetSize < 1) throw new ValidationError('miniBatchIndices', 'datasetSize', 'an integer ≥ 1', datasetSize);
  if (!Number.isSafeInteger(step) || step < 0) throw new ValidationError('miniBatchIndices', 'step', 'an integer ≥ 0', step);
  const rng = new Rng(streamSeed(seed, step));
  const out = new Int32Array(size);
  for (let k = 0; k < size; k++) out[k] = rng.int(datasetSize);
  return out;
}
