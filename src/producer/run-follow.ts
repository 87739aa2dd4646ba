import { NumgradError } from '../core/errors.js';
import type { StepMetrics } from '../core/training.js';
import type { RunSummary, Store } from '../queue/store.js';

/** How long `follow` waits through a Redis outage (a restart takes seconds) before it gives up. */
const FOLLOW_OUTAGE_MS = 60_000;

/** What following a run reads, from the queue client. */
export interface FollowSource {
  readonly store: Store;
  /** The run's record, without waiting for readiness (the polls wait through outages themselves). */
  run(id: string): Promise<RunSummary>;
  /** The reason the run's current step failed for good, if it did. */
  stepFailure(run: RunSummary): Promise<string | undefined>;
  /** Whether the connection is up: an error then is a real one, not an outage. */
  connected(): boolean;
  /** The error that ends a follow after an outage of `down` ms. */
  outage(down: number, err: unknown): NumgradError;
}

/**
 * Follows run `id` until it ends, calling `onUpdate` with each new metrics line; a run whose step
 * failed for good (no progress for 5 s and a failed step job) is marked failed.
 */
export async function followRun(src: FollowSource, id: string, onUpdate: (m: StepMetrics, run: RunSummary) => void, pollMs: number, shouldStop: () => boolean): Promise<RunSummary> {
  let seen = 0;
  let lastProgress = Date.now();
  let lastAnswer = Date.now();
  for (;;) {
    let run: RunSummary;
    let lines: string[];
    try {
      run = await src.run(id);
      lines = await src.store.metrics(id, seen);
      lastAnswer = Date.now();
    } catch (err) {
      // Redis restarting is not the run failing: the run waits in Redis (the workers reconnect),
      // so the follower waits too, for a while. A rollback to the last fsync is harmless here:
      // the steps redone append the same lines at the same places.
      if (err instanceof NumgradError || src.connected()) throw err;
      const down = Date.now() - lastAnswer;
      if (down > FOLLOW_OUTAGE_MS || shouldStop()) {
        throw src.outage(down, err);
      }
      await new Promise((r) => setTimeout(r, pollMs));
      continue;
    }
    for (const l of lines) onUpdate(JSON.parse(l) as StepMetrics, run);
    if (lines.length > 0) lastProgress = Date.now();
    seen += lines.length;
    if (run.state !== 'running' || shouldStop()) return run;
    if (Date.now() - lastProgress > 5_000) {
      try {
        const reason = await src.stepFailure(run);
        if (reason !== undefined) {
          await src.store.setState(id, 'failed', reason);
          return await src.run(id);
        }
      } catch (err) {
        // As for the polls above: Redis going away mid-check is waited out by the next polls.
        if (err instanceof NumgradError || src.connected()) throw err;
      }
      lastProgress = Date.now();
    }
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
