import { afterAll, describe, expect, it } from 'vitest';
import { trainConfig } from '../../src/core/training.js';
import { LocalPool } from '../../src/workers/threads/pool.js';
import { trainLocal } from '../../src/producer/train-local.js';
import { bytesOf } from '../helpers/data.js';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseFloatVector } from '../../src/core/npy.js';

const dirs: string[] = [];
afterAll(() => dirs.forEach((d) => rmSync(d, { recursive: true, force: true })));

describe('local training', () => {
  it('a 30-iteration seeded run gives bitwise identical params with 1 and 2 threads', async () => {
    const cfg = trainConfig({ iters: 30, seed: 5, evalEvery: 15 });
    const results: Float64Array[] = [];
    for (const threads of [1, 2]) {
      const pool = new LocalPool({ threads });
      try {
        const dir = mkdtempSync(join(tmpdir(), 'numgrad-train-'));
        dirs.push(dir);
        const r = await trainLocal({ cfg, pool, out: dir });
        expect(r.steps).toBe(30);
        results.push(r.params);
        // The files hold the final state: params.npy is the returned params, byte for byte.
        const saved = parseFloatVector(readFileSync(join(dir, 'params.npy')), 'params.npy');
        expect(bytesOf(saved).equals(bytesOf(r.params))).toBe(true);
        const lines = readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
        expect(lines).toHaveLength(30);
        expect(lines.filter((l) => l.testAcc !== undefined).map((l) => l.iter)).toEqual([0, 15, 29]);
        expect(readFileSync(join(dir, 'curves.svg'), 'utf8')).toMatch(/^<svg/);
      } finally {
        await pool.close();
      }
    }
    expect(bytesOf(results[0]).equals(bytesOf(results[1]))).toBe(true);
  });

  it('stops between iterations when asked and keeps the last completed state', async () => {
    const pool = new LocalPool({ threads: 2 });
    try {
      const dir = mkdtempSync(join(tmpdir(), 'numgrad-stop-'));
      dirs.push(dir);
      let n = 0;
      const r = await trainLocal({ cfg: trainConfig({ iters: 100, seed: 1 }), pool, out: dir, shouldStop: () => n >= 7, onStep: () => void n++ });
      expect(r.stopped).toBe(true);
      expect(r.steps).toBe(7);
      const saved = parseFloatVector(readFileSync(join(dir, 'params.npy')), 'params.npy');
      expect(bytesOf(saved).equals(bytesOf(r.params))).toBe(true);
    } finally {
      await pool.close();
      await pool.close();
    }
  });
});
