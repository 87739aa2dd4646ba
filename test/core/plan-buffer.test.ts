import { describe, expect, it } from 'vitest';
import { FdEngine, fdGradient, planGradient } from '../../src/core/fd-engine.js';
import { packPlan, unpackPlan } from '../../src/core/plan-buffer.js';
import { bytesOf, seededCase } from '../helpers/data.js';

describe('plan buffer', () => {
  it('round-trips a plan: an engine over the unpacked views gives the inline bytes', () => {
    const { params, batch } = seededCase(21, 50);
    const buf = packPlan(planGradient(params, batch), (n) => new SharedArrayBuffer(n));
    const { plan, memory } = unpackPlan(buf);
    expect(bytesOf(new FdEngine(plan, memory).shard(0, params.length) as Float64Array).equals(bytesOf(fdGradient(params, batch)))).toBe(true);
  });

  it('reuses a larger buffer that held another plan: its memo starts empty, the bytes are the fresh ones', () => {
    const a = seededCase(22, 50);
    const b = seededCase(23, 50);
    const first = packPlan(planGradient(a.params, a.batch), (n) => new SharedArrayBuffer(n * 2));
    const one = unpackPlan(first);
    new FdEngine(one.plan, one.memory).shard(0, a.params.length); // every row done, memo full of a's values
    expect(Array.from(one.memory.done).every((d) => d === 1)).toBe(true);
    const again = packPlan(planGradient(b.params, b.batch), () => first);
    const two = unpackPlan(again);
    expect(Array.from(two.memory.done).every((d) => d === 0)).toBe(true);
    const g = new FdEngine(two.plan, two.memory).shard(0, b.params.length) as Float64Array;
    expect(bytesOf(g).equals(bytesOf(fdGradient(b.params, b.batch)))).toBe(true);
  });

  it('refuses a buffer too small for the plan, and a buffer that holds no plan', () => {
    const { params, batch } = seededCase(24, 10, 5);
    expect(() => packPlan(planGradient(params, batch), () => new SharedArrayBuffer(64))).toThrow(/plan buffer.*alloc returned 64 bytes/);
    expect(() => unpackPlan(new SharedArrayBuffer(4096))).toThrow(/not a numgrad plan/);
    expect(() => unpackPlan(new SharedArrayBuffer(8))).toThrow(/too short/);
  });
});
