import { FdEngine } from '../../core/fd-engine.js';
import { unpackPlan } from '../../core/plan-buffer.js';

/**
 * One engine per plan per thread (a pool thread, or the thread that joins a pool's gradient): the
 * engine of the plan it last ran, rebuilt when another plan comes. The memo itself lives in the
 * plan's shared buffer, so every thread's engine over one plan shares it.
 */
export class EngineCache {
  private last: { id: number; engine: FdEngine } | undefined;

  engineFor(planId: number, buffer: SharedArrayBuffer): FdEngine {
    if (this.last?.id !== planId) {
      const { plan, memory } = unpackPlan(buffer);
      this.last = { id: planId, engine: new FdEngine(plan, memory) };
    }
    return this.last.engine;
  }
}
