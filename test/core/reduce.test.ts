/**
 * The reducer's assembly of children that bring their own ranges: placed by range, overlaps accepted
 * only when bitwise equal (compared as bytes, so −0 and 0 differ), gaps found, and a child computed
 * on other inputs than its parent's refused, naming the child and the field.
 */
import { describe, expect, it } from 'vitest';
import type { ShardOrigin } from '../../src/core/contract.js';
import { CoverAssembler, checkOrigin } from '../../src/core/reduce.js';

const v = (...xs: number[]): Float64Array => Float64Array.from(xs);
const bytes = (a: Float64Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.byteLength);

describe('CoverAssembler', () => {
  it('places children by range whatever their order, and finds the first gap', () => {
    const a = new CoverAssembler('gradient', 6);
    expect(a.put('c2', 4, 6, v(5, 6))).toBe('new');
    expect(a.firstGap()).toBe(0);
    expect(a.put('c0', 0, 2, v(1, 2))).toBe('new');
    expect(a.firstGap()).toBe(2);
    expect(a.put('c1', 2, 4, v(3, 4))).toBe('new');
    expect(a.firstGap()).toBe(-1);
    expect(bytes(a.out).equals(bytes(v(1, 2, 3, 4, 5, 6)))).toBe(true);
  });

  it('accepts a bitwise-equal overlap: an exact repeat is a duplicate, a partial one an overlap', () => {
    const a = new CoverAssembler('gradient', 4);
    a.put('c0', 0, 3, v(1, 2, 3));
    expect(a.put('c0-again', 0, 3, v(1, 2, 3))).toBe('duplicate');
    expect(a.put('c1', 2, 4, v(3, 4))).toBe('overlap');
    expect(bytes(a.out).equals(bytes(v(1, 2, 3, 4)))).toBe(true);
  });

  it('refuses an overlap that differs, even by the sign of a zero, naming both children and the index', () => {
    const a = new CoverAssembler('gradient', 4);
    a.put('shards:a', 0, 3, v(1, 0, 3));
    expect(() => a.put('shards:b', 1, 4, v(-0, 3, 4))).toThrow(
      "gradient: data of child shards:b must be bitwise equal to child shards:a's where their ranges [1, 4) and [0, 3) overlap (index 1: -0 here, 0 there)",
    );
    expect(() => a.put('shards:c', 2, 4, v(3.0000000000000004, 4))).toThrow(/^gradient: data of child shards:c must be bitwise equal to child shards:a's .*\(index 2: 3\.0000000000000004 here, 3 there\)$/);
  });

  it('refuses a range outside [0, total) or values of the wrong length', () => {
    const a = new CoverAssembler('evaluation', 4);
    expect(() => a.put('x', 2, 5, v(1, 2, 3))).toThrow('evaluation: range of child x must be within [0, 4), got "[2, 5)"');
    expect(() => a.put('x', 3, 3, v())).toThrow('evaluation: range of child x must be within [0, 4), got "[3, 3)"');
    expect(() => a.put('x', 0, 2, v(1))).toThrow('evaluation: values of child x must be 2 values for [0, 2), got 1');
  });
});

describe('checkOrigin', () => {
  const P = 'a'.repeat(64);
  const Q = 'b'.repeat(64);
  const parent: ShardOrigin = { job: 'fd-shard', params: P, hidden: 10, batch: 's:0:3:100', h: 1e-4 };
  it('passes a child computed on the parent inputs', () => {
    expect(() => checkOrigin('gradient', 'k', parent, { ...parent })).not.toThrow();
  });
  it.each([
    ['job', { ...parent, job: 'ce-shard' as const }, 'gradient: job name of child k must be "fd-shard" (the kind gradient assembles), got "ce-shard"'],
    ['params', { ...parent, params: Q }, 'gradient: data.params of child k must be aaaaaaaaaaaa… (the parent\'s), got "bbbbbbbbbbbb…"'],
    ['hidden', { ...parent, hidden: 11 }, "gradient: data.hidden of child k must be 10 (the parent's), got 11"],
    ['batch', { ...parent, batch: 's:0:4:100' }, 'gradient: data.batch of child k must be "s:0:3:100" (the parent\'s), got "s:0:4:100"'],
    ['h', { ...parent, h: 2e-4 }, "gradient: data.h of child k must be 0.0001 (the parent's), got 0.0002"],
    ['split', { ...parent, split: 'test' as const }, 'gradient: data.split of child k must be absent (the parent\'s), got "test"'],
  ])('names the first field that differs: %s', (_f, child, message) => {
    expect(() => checkOrigin('gradient', 'k', parent, child)).toThrow(message);
  });
});
