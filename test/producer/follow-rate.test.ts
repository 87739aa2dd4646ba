/**
 * `numgrad follow` of a run already far along: its rate counts only the steps it saw advance. Seen
 * before the fix: a run at step 8,094 advancing at ~11 it/s was shown at `170 it/s … ETA 10s`,
 * because the 8,094 steps done before anyone watched were counted as if done while watching.
 *
 * followRun runs in-process against a stand-in for the queue client (the rate is arithmetic over
 * what the client reports, no Redis needed) and a clock of the test's own: the run is at step 8,094
 * when followed, then advances one step per (fake) second until 8,105.
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { StepMetrics } from '../../src/core/training.js';
import { followRun } from '../../src/producer/commands/train.js';
import type { QueueClient } from '../../src/producer/queue-client.js';
import type { RunSummary } from '../../src/queue/store.js';

const AT = 8_094;
const ITERS = 8_105;

afterEach(() => vi.restoreAllMocks());

describe('numgrad follow: the rate of a run followed far along', () => {
  it('counts only the steps that advanced while following (1.0 it/s, not ~700)', async () => {
    let clock = 1_000_000;
    vi.spyOn(performance, 'now').mockImplementation(() => clock);
    let progress = '';
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk: string | Uint8Array) => {
      progress += String(chunk);
      return true;
    });
    const run = (step: number, state: RunSummary['state']): RunSummary =>
      ({ id: 'far', state, step, iters: ITERS, config: { hidden: 50 }, params: '', loss: 1, trainAcc: null, testAcc: null, createdAt: 0, updatedAt: 0 }) as unknown as RunSummary;
    const client = {
      run: async () => run(AT, 'running'),
      follow: async (_id: string, onUpdate: (m: StepMetrics, r: RunSummary) => void) => {
        // The first poll delivers the backlog at once (no time passes), then one step a second.
        for (let i = 0; i < AT; i++) onUpdate({ iter: i, loss: 1 }, run(AT, 'running'));
        for (let i = AT; i < ITERS; i++) {
          clock += 1_000;
          onUpdate({ iter: i, loss: 1 }, run(i + 1, 'running'));
        }
        return run(ITERS, 'done');
      },
      runMetrics: async () => [],
      runParams: async () => null,
    } as unknown as QueueClient;
    const lines: string[] = [];
    await followRun(client, 'far', undefined, { line: (l) => lines.push(l), json: () => undefined, error: (l) => lines.push(l) });
    const last = progress.trim().split('\n').filter((l) => l.startsWith('progress ')).at(-1);
    expect(last, progress).toMatch(new RegExp(`^progress ${ITERS}/${ITERS} .* 1\\.0 it/s ETA 0s$`));
    expect(lines.at(-1)).toMatch(/^run far: done, 8105\/8105 iterations/);
  });
});
