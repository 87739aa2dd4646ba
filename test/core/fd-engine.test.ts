import { describe, expect, it } from 'vitest';
import { FdEngine, expm1Small, fdGradient, naiveGradientShard, planGradient, planLoss } from '../../src/core/fd-engine.js';
import { analyticGradient, loss } from '../../src/core/network.js';
import { layout } from '../../src/core/layout.js';
import { bytesOf, maxRelErr, scaledCase, seededCase } from '../helpers/data.js';

describe('finite-difference engine', () => {
  it('incremental and naive (two full forward passes per coordinate) agree to 1e-10 on small nets', () => {
    for (const [seed, H, n, scale] of [[1, 3, 8, 0.01], [2, 10, 6, 0.01], [3, 4, 10, 0.5]] as const) {
      const { params, batch } = scaledCase(seed, H, n, scale);
      const g = fdGradient(params, batch);
      const ref = naiveGradientShard(params, batch, 0, params.length);
      expect(maxRelErr(g, ref)).toBeLessThanOrEqual(1e-10);
    }
  });

  // At h = 1e-4 every exact central difference carries the truncation error h²/6·L''' ≈ 2.3e-9 of
  // max|g| on the b2 coordinates (the textbook's own ~2.6e-9 is this term, not rounding). So the
  // comparison with the exact gradient is made (a) at h = 1e-5, where truncation is 100× smaller,
  // and (b) at h = 1e-4 after Richardson extrapolation (4·g(h) − g(2h))/3, which cancels the h² term
  // and leaves the engine's rounding and O(h⁴) — both must be under 1e-9.
  for (const H of [50, 10]) {
    for (const seed of [1, 2, 3]) {
      it(`matches the analytic gradient to 1e-9 (H = ${H}, seed ${seed})`, () => {
        const { params, batch } = seededCase(seed, H);
        const exact = analyticGradient(params, batch);
        expect(maxRelErr(fdGradient(params, batch, 1e-5), exact)).toBeLessThanOrEqual(1e-9);
        const g1 = fdGradient(params, batch, 1e-4);
        const g2 = fdGradient(params, batch, 2e-4);
        const rich = g1.map((v, c) => (4 * v - g2[c]) / 3);
        expect(maxRelErr(rich, exact)).toBeLessThanOrEqual(1e-9);
        // The raw h = 1e-4 error is the truncation term, no more (the textbook's is ~2.6e-9 + rounding).
        expect(maxRelErr(g1, exact)).toBeLessThanOrEqual(3e-9);
      });
    }
  }

  it('gives every coordinate bitwise the same value whichever shard computes it', () => {
    const { params, batch } = seededCase(5, 50);
    const full = fdGradient(params, batch);
    const L = params.length;
    const cuts = [0, 1, 49, 50, 51, 777, 20_000, 39_199, 39_200, 39_249, 39_250, 39_251, 39_749, 39_750, 39_759, L];
    const plan = planGradient(params, batch);
    const parts: Float64Array[] = [];
    for (let k = 0; k + 1 < cuts.length; k++) parts.push(new FdEngine(plan).shard(cuts[k], cuts[k + 1]));
    const joined = new Float64Array(L);
    let o = 0;
    for (const p of parts) {
      joined.set(p, o);
      o += p.length;
    }
    expect(bytesOf(joined).equals(bytesOf(full))).toBe(true);
    // One engine reused for many shards (memo warm) gives the same bytes too.
    const eng = new FdEngine(plan);
    const again = new Float64Array(L);
    for (let s = L; s > 0; s -= 997) again.set(eng.shard(Math.max(0, s - 997), s), Math.max(0, s - 997));
    expect(bytesOf(again).equals(bytesOf(full))).toBe(true);
  });

  it("plan's loss at θ is bitwise loss(params, batch)", () => {
    for (const [seed, H] of [[1, 50], [2, 10]] as const) {
      const { params, batch } = scaledCase(seed, H, 37, 0.2);
      expect(Object.is(planLoss(planGradient(params, batch)), loss(params, batch))).toBe(true);
    }
  });

  it('gives exactly 0 for a pixel that is zero in every sample of the batch', () => {
    const { params, batch } = seededCase(1, 50);
    const g = fdGradient(params, batch);
    // Pixel 0 (a corner) is 0 in every MNIST image.
    for (let j = 0; j < 50; j++) expect(Object.is(g[j], 0)).toBe(true);
  });

  it('evaluates exp exactly enough on the small arguments it sees', () => {
    for (let k = -2000; k <= 2000; k++) {
      const x = (k / 2000) * 2 ** -11;
      const a = expm1Small(x);
      const b = Math.expm1(x);
      // Within 2 ulps of V8's own expm1 (itself within 1 ulp of the true value).
      const ulp = x === 0 ? Number.MIN_VALUE : 2 ** (Math.floor(Math.log2(Math.abs(b))) - 52);
      expect(Math.abs(a - b)).toBeLessThanOrEqual(2 * ulp);
    }
    expect(expm1Small(0.5)).toBe(Math.expm1(0.5));
  });

  it('rejects bad input with errors naming the argument', () => {
    const { params, batch } = seededCase(1, 10, 5);
    expect(() => fdGradient(new Float64Array(1000), batch)).toThrow(/params must be of length 795·H \+ 10/);
    const bad = Float64Array.from(params);
    bad[123] = Number.NaN;
    expect(() => fdGradient(bad, batch)).toThrow(/params\[123\] must be a finite number, got NaN/);
    bad[123] = Infinity;
    expect(() => fdGradient(bad, batch)).toThrow(/params\[123\] must be a finite number, got Infinity/);
    expect(() => fdGradient(params, { count: 0, pixels: new Uint8Array(0), labels: new Uint8Array(0) })).toThrow(/batch must be a non-empty batch/);
    expect(() => fdGradient(params, batch, 0)).toThrow(/h must be a finite number > 0, got 0/);
    expect(() => fdGradient(params, batch, -1e-4)).toThrow(/h must be/);
    const eng = new FdEngine(planGradient(params, batch));
    expect(() => eng.shard(5, layout(10).length + 1)).toThrow(/range must be integers/);
  });
});
