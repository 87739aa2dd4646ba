import { describe, expect, it } from 'vitest';
import { FdEngine, fdGradient, fdMemory, planGradient } from '../../src/core/fd-engine.js';
import { UNIT_COORDS, UNIT_ROWS, runSchedule, scheduleGradient, scheduleLength } from '../../src/core/fd-schedule.js';
import { layout } from '../../src/core/layout.js';
import { bytesOf, seededCase } from '../helpers/data.js';

type Unit = { kind: number; start: number; end: number };
const unitsOf = (s: Int32Array): Unit[] => Array.from({ length: scheduleLength(s) }, (_, u) => ({ kind: s[3 * u], start: s[3 * u + 1], end: s[3 * u + 2] }));

/** The coordinate units, sorted, must tile [start, end) with no gap and no overlap. */
function expectTiles(units: Unit[], kind: number, start: number, end: number): void {
  const parts = units.filter((u) => u.kind === kind).sort((a, b) => a.start - b.start);
  let at = start;
  const bad: string[] = [];
  for (const p of parts) {
    if (p.start !== at || p.end < p.start) bad.push(`[${p.start}, ${p.end}) after ${at}`);
    at = p.end;
  }
  expect(bad).toEqual([]);
  expect(at).toBe(end);
}

describe('gradient schedule (units claimed from shared memory)', () => {
  const L = layout(50);

  it('covers every coordinate once and every memo row once, for any worker count and shard size', () => {
    for (const workers of [1, 2, 3, 4, 16]) {
      for (const size of [undefined, 1, 7, 997, L.length]) {
        const units = unitsOf(scheduleGradient(50, 6_500, 0, L.length, workers, size));
        expectTiles(units, UNIT_COORDS, 0, L.length);
        expectTiles(units, UNIT_ROWS, 0, 6_500);
        if (size !== undefined) expect(units.filter((u) => u.kind === UNIT_COORDS && u.end - u.start > size)).toEqual([]);
      }
    }
  });

  it('puts W2/b2 first, then the memo rows, then W1/b1 (which read the memo)', () => {
    const units = unitsOf(scheduleGradient(50, 6_500, 0, L.length, 2));
    const firstRow = units.findIndex((u) => u.kind === UNIT_ROWS);
    const lastRow = units.length - 1 - [...units].reverse().findIndex((u) => u.kind === UNIT_ROWS);
    expect(units.slice(0, firstRow).every((u) => u.kind === UNIT_COORDS && u.start >= L.w2)).toBe(true);
    expect(units.slice(lastRow + 1).every((u) => u.kind === UNIT_COORDS && u.end <= L.w2)).toBe(true);
    // Enough units to balance two threads, in both coordinate phases and the memo.
    expect(units.filter((u) => u.kind === UNIT_ROWS).length).toBeGreaterThanOrEqual(16);
    expect(units.filter((u) => u.kind === UNIT_COORDS && u.start >= L.w2).length).toBeGreaterThanOrEqual(2);
  });

  it('gives a part of the gradient coordinate units only (its rows are computed on demand)', () => {
    const units = unitsOf(scheduleGradient(50, 6_500, 100, 39_300, 2));
    expect(units.some((u) => u.kind === UNIT_ROWS)).toBe(false);
    expectTiles(units, UNIT_COORDS, 100, 39_300);
    expectTiles(unitsOf(scheduleGradient(50, 6_500, 5, 5, 2)), UNIT_COORDS, 5, 5);
  });

  it('gives the inline engine\'s bytes, whole or in parts, with engines sharing one memo taking turns', () => {
    const { params, batch } = seededCase(7, 50);
    const full = fdGradient(params, batch);
    const plan = planGradient(params, batch);
    for (const [workers, size] of [[1, undefined], [2, undefined], [3, 997]] as const) {
      const schedule = scheduleGradient(50, plan.rowSample.length, 0, params.length, workers, size);
      const memory = fdMemory(plan);
      const engines = Array.from({ length: workers }, () => new FdEngine(plan, memory));
      const out = new Float64Array(params.length);
      // Engines claim one unit at a time in turn (a one-unit window on the counter), as threads would.
      const next = new Int32Array(1);
      const count = scheduleLength(schedule);
      let ran = 0;
      for (let u = 0; u < count; u++) {
        const window = Int32Array.from(schedule.subarray(3 * u, 3 * u + 3));
        ran += runSchedule(engines[u % workers], window, next.fill(0), out, 0);
      }
      expect(ran).toBe(count);
      expect(bytesOf(out).equals(bytesOf(full)), `workers ${workers}, size ${size}`).toBe(true);
    }
    // A part [start, end) lands at out[c − start].
    const part = new Float64Array(39_300 - 100);
    const ranPart = runSchedule(new FdEngine(plan), scheduleGradient(50, plan.rowSample.length, 100, 39_300, 2), new Int32Array(1), part, 100);
    expect(ranPart).toBeGreaterThan(1);
    expect(bytesOf(part).equals(bytesOf(full.subarray(100, 39_300)))).toBe(true);
  });

  it('a caller that stops (`more` says false) claims nothing more and leaves no claimed unit unrun; called again, it goes on', () => {
    const { params, batch } = seededCase(9, 50);
    const full = fdGradient(params, batch);
    const plan = planGradient(params, batch);
    const schedule = scheduleGradient(50, plan.rowSample.length, 0, params.length, 2);
    const count = scheduleLength(schedule);
    const engine = new FdEngine(plan);
    const out = new Float64Array(params.length);
    const next = new Int32Array(1);
    expect(runSchedule(engine, schedule, next, out, 0, () => false)).toBe(0);
    expect(next[0]).toBe(0);
    // Three units per call, then stop: as the one-off command's main thread runs slices between yields.
    let ran = 0;
    let calls = 0;
    while (Atomics.load(next, 0) < count) {
      let budget = 3;
      const got = runSchedule(engine, schedule, next, out, 0, () => budget-- > 0);
      expect(got).toBe(Math.min(3, count - ran));
      ran += got;
      // Stopped by `more`, the counter is at the units run; stopped by the end, one claim past it.
      expect(next[0]).toBe(got === 3 ? ran : count + 1);
      calls++;
    }
    expect(ran).toBe(count);
    expect(calls).toBe(Math.ceil(count / 3));
    expect(bytesOf(out).equals(bytesOf(full))).toBe(true);
  });

  it('fills memo rows in order, once, whichever engine sharing the memory gets there first', () => {
    const { params, batch } = seededCase(8, 10, 20);
    const plan = planGradient(params, batch);
    const memory = fdMemory(plan);
    const a = new FdEngine(plan, memory);
    const b = new FdEngine(plan, memory);
    a.fillRows(0, 5);
    b.fillRows(0, a.rows);
    expect(a.rowsComputed).toBe(5);
    expect(b.rowsComputed).toBe(a.rows - 5);
    expect(Array.from(memory.done).every((d) => d === 1)).toBe(true);
  });

  it('rejects bad ranges with errors naming the field', () => {
    expect(() => scheduleGradient(50, 10, 0, L.length + 1, 2)).toThrow(/gradientRange: range must be integers 0 ≤ start ≤ end ≤ 39760/);
    expect(() => scheduleGradient(50, 10, 9, 3, 2)).toThrow(/range/);
    expect(() => scheduleGradient(50, 10, 0, 10, 0)).toThrow(/gradientRange: workers must be an integer ≥ 1/);
    const { params, batch } = seededCase(9, 10, 5);
    expect(() => new FdEngine(planGradient(params, batch)).fillRows(0, 1e6)).toThrow(/fillRows: range must be integers/);
  });
});
