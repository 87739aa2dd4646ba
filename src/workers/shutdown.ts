import type { Job } from 'bullmq';

/**
 * How long the BullMQ workers and connections may take to close once no processor runs: with Redis
 * answering, the last results are being written (a loaded machine can take seconds); without it they
 * never will be, and the worker must not hang on them.
 */
export const CLOSE_BOUND_MS = { redisUp: 15_000, redisDown: 300 };
/** How long handing unfinished jobs back may take (Redis away: it cannot). */
const REQUEUE_BOUND_MS = 1_000;

/** What a worker process offers its shutdown. */
export interface Drainable {
  /** Jobs whose processor is running in this process, with the lock token BullMQ gave them. */
  activeJobs(): readonly { readonly job: Job; readonly token: string | undefined }[];
  /** Stops taking jobs, waits for the active ones, closes everything; needs Redis to finish. */
  close(): Promise<void>;
  /** Drops connections and threads now, whatever is running. */
  forceClose(): void;
  /** Whether the connection to Redis is up right now. */
  redisUp(): boolean;
}

export interface ShutdownReport {
  /** Jobs still running when the grace period ended. */
  readonly unfinished: number;
  /** Of those, handed back to their queue's wait list at once (the rest come back by the stalled check). */
  readonly requeued: number;
  /** Whether everything closed cleanly (false: forced, e.g. Redis unreachable). */
  readonly closed: boolean;
}

const within = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> => {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<'timeout'>((r) => (t = setTimeout(() => r('timeout'), ms)))]).finally(() => clearTimeout(t));
};

/**
 * SIGTERM/SIGINT of a worker: stop taking jobs at once (BullMQ's close stops its fetch loop before it
 * waits for active jobs), let the active jobs finish for up to `graceMs`, then hand the unfinished ones
 * back to their queue (`moveToWait` with their lock token: another worker starts them at once instead
 * of after the lock expires) and close. Nothing here waits on Redis without a bound: an idle worker
 * whose Redis is gone is done in well under a second. Work is deterministic and a run advances once
 * per step, so a job redone elsewhere gives the same bytes. `skip()` resolving ends the grace early
 * (a second signal).
 */
export async function drain(w: Drainable, graceMs: number, skip: Promise<void> = new Promise(() => undefined)): Promise<ShutdownReport> {
  const closing = w.close();
  closing.catch(() => undefined);
  const deadline = Date.now() + graceMs;
  let skipped = false;
  void skip.then(() => (skipped = true));
  while (w.activeJobs().length > 0 && Date.now() < deadline && !skipped) {
    await within(closing, Math.min(50, Math.max(0, deadline - Date.now())));
  }
  const left = w.activeJobs();
  let requeued = 0;
  // Handing back needs Redis: with Redis away the jobs come back by the stalled check instead.
  if (left.length > 0 && w.redisUp()) {
    const handed = await within(Promise.allSettled(left.map(({ job, token }) => (token === undefined ? Promise.reject(new Error('no token')) : job.moveToWait(token)))), REQUEUE_BOUND_MS);
    if (handed !== 'timeout') requeued = handed.filter((r) => r.status === 'fulfilled').length;
  }
  const settled = closing.then(() => true, () => false);
  const t1 = Date.now();
  let closed = false;
  // The bound follows Redis as it is now: a Redis that goes away meanwhile cuts the wait short.
  while (left.length === 0) {
    const r = await within(settled, 100);
    if (r !== 'timeout') {
      closed = r;
      break;
    }
    if (Date.now() - t1 >= (w.redisUp() ? CLOSE_BOUND_MS.redisUp : CLOSE_BOUND_MS.redisDown)) break;
  }
  if (!closed) w.forceClose();
  return { unfinished: left.length, requeued, closed };
}
