import { describe, expect, it } from 'vitest';
import { ValidationError } from '../../src/core/errors.js';
import { fdGradient } from '../../src/core/fd-engine.js';
import { OneOffGradients } from '../../src/workers/threads/one-off-gradient.js';
import { bytesOf, seededCase } from '../helpers/data.js';

describe('OneOffGradients: the main thread first, worker threads once the work is long', () => {
  it('a gradient done before START_THREADS_AFTER_MS runs on the main thread alone: no worker thread is started', async () => {
    const { params, batch } = seededCase(3, 50, 10);
    const g = new OneOffGradients({ threads: 2, startThreadsAfterMs: 60_000 });
    try {
      const r = await g.gradient(params, batch);
      expect(r.threadsStartedAt).toBeNull();
      expect(r.callerUnits).toBe(r.units);
      expect(r.units).toBe(160);
      expect(bytesOf(r.gradient).equals(bytesOf(fdGradient(params, batch)))).toBe(true);
    } finally {
      await g.close();
    }
  });

  it('started threads join the gradient mid-way: on a started pool the worker thread runs units beside the main thread, and the bytes are the inline ones', async () => {
    const { params, batch } = seededCase(4, 50);
    const inline = fdGradient(params, batch);
    const g = new OneOffGradients({ threads: 2, startThreadsAfterMs: 0 });
    try {
      // The first gradient starts the thread, which may boot too late to get a unit of it; a later one
      // finds it ready and shares.
      let shared = 0;
      for (let k = 0; k < 30 && shared < 2; k++) {
        const r = await g.gradient(params, batch);
        expect(r.threadsStartedAt).not.toBeNull();
        expect(bytesOf(r.gradient).equals(bytesOf(inline)), `gradient ${k}`).toBe(true);
        if (r.callerUnits < r.units) shared++;
      }
      expect(shared).toBe(2);
    } finally {
      await g.close();
    }
  });

  it('names a bad option; a closed one refuses work; close() is safe twice', async () => {
    expect(() => new OneOffGradients({ threads: 0 })).toThrow(ValidationError);
    expect(() => new OneOffGradients({ threads: 0 })).toThrow(/threads/);
    expect(() => new OneOffGradients({ threads: 2, startThreadsAfterMs: -1 })).toThrow(/startThreadsAfterMs/);
    const g = new OneOffGradients({ threads: 2 });
    await g.close();
    await g.close();
    const { params, batch } = seededCase(5, 50, 5);
    await expect(g.gradient(params, batch)).rejects.toThrow(/closed/);
  });
});
