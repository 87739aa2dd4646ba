import { type Job, UnrecoverableError } from 'bullmq';
import { JOBS } from '../core/contract.js';
import type { Connection } from '../io/redis.js';
import type { Keys } from './keys.js';

/**
 * running → failed with the reason; a run that has already ended (done, cancelled, failed) keeps its
 * state. Only a job the run is waiting for can fail it: a training step of the run's current step
 * (ARGV[3]), an epoch evaluation still pending (ARGV[4] in KEYS[2]). A stale job — one of a step the
 * run is no longer at, after Redis came back from its AOF a second in the past — changes nothing.
 */
const FAIL = `
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if ARGV[3] ~= '' and redis.call('HGET', KEYS[1], 'step') ~= ARGV[3] then return 0 end
if ARGV[4] ~= '' and redis.call('SISMEMBER', KEYS[2], ARGV[4]) == 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'failed', 'error', ARGV[1], 'updatedAt', ARGV[2])
return 1`;

/** failed or cancelled → running (the reason goes); returns the state the run was in ('' when there is no run). */
const REOPEN = `
local s = redis.call('HGET', KEYS[1], 'state')
if not s then return '' end
if s == 'failed' or s == 'cancelled' then
  redis.call('HSET', KEYS[1], 'state', 'running', 'updatedAt', ARGV[1])
  redis.call('HDEL', KEYS[1], 'error')
end
return s`;

/**
 * Who ends a run that cannot go on: the worker that runs its training step (or one of its epoch
 * evaluations), at the moment that job fails for good. Each transition is one script that checks
 * the state first, so a late or repeated report never overwrites `done` or `cancelled`.
 */
export class RunState {
  constructor(
    private readonly redis: Connection,
    private readonly keys: Keys,
  ) {}

  /** Marks a running run failed with `reason` (if at `step` / with `pending` still pending, when given); true when this call did it. */
  async fail(id: string, reason: string, at: { step?: number; pending?: string } = {}): Promise<boolean> {
    const r = await this.redis.eval(FAIL, 2, this.keys.run(id), this.keys.runPending(id), reason, Date.now(), at.step ?? '', at.pending ?? '');
    return (r as number) === 1;
  }

  /**
   * Ends the run of a reduce job that failed for good (a training step or a run's evaluation), with
   * the job's reason; a parent failed by BullMQ for a child (`child <key> failed`) gets the child's
   * own failedReason. Returns the run's id when this call marked it failed.
   */
  async failJob(job: Job, err: Error): Promise<string | undefined> {
    const run = runOf(job);
    if (run === undefined) return undefined;
    let reason = err.message;
    const child = /^child (.+) failed$/.exec(reason);
    if (child !== null) {
      const own = await this.redis.hget(child[1], 'failedReason');
      if (own) reason = `${own} (shard ${child[1].slice(child[1].lastIndexOf(':') + 1)})`;
    }
    return (await this.fail(run, reason, waitedFor(job))) ? run : undefined;
  }

  /** Puts a failed or cancelled run back to running; the state it was in ('' for no such run). */
  async reopen(id: string): Promise<string> {
    return (await this.redis.eval(REOPEN, 1, this.keys.run(id), Date.now())) as string;
  }
}

/** The run a reduce job belongs to: a training step's `run`, or a run's epoch evaluation's `run.id`. */
export function runOf(job: Job): string | undefined {
  const d = job.data as { run?: unknown } | undefined;
  if ((job.name === JOBS.trainStep || job.name === JOBS.trainDrive) && typeof d?.run === 'string') return d.run;
  if (job.name === JOBS.evaluation && typeof d?.run === 'object' && d.run !== null && typeof (d.run as { id?: unknown }).id === 'string') return (d.run as { id: string }).id;
  return undefined;
}

/**
 * What of its run a reduce job stands for: a training step's step, an epoch evaluation's pending
 * token; a train-drive, the run's steps from wherever it is.
 */
function waitedFor(job: Job): { step?: number; pending?: string } {
  const d = job.data as { step?: unknown; split?: unknown; run?: { iter?: unknown } } | undefined;
  if (job.name === JOBS.trainStep) return { step: typeof d?.step === 'number' ? d.step : -1 };
  if (job.name === JOBS.trainDrive) return {};
  return { pending: `eval:${String(d?.run?.iter)}:${String(d?.split)}` };
}

/** Whether this failure ends the job: an UnrecoverableError at once, anything else on its last attempt. */
export function isFinal(job: Job, err: Error, attemptsMade = job.attemptsMade): boolean {
  if (err instanceof UnrecoverableError || err.name === 'UnrecoverableError') return true;
  return attemptsMade >= (job.opts.attempts ?? 1);
}

/**
 * A run's flows give their shards `continueParentOnFailure`: a shard that fails for good starts
 * its parent at once, and BullMQ keeps the shard's failedReason in the parent's failed-children
 * hash. The parent then fails too, for good, with the shard's own words (`shard: data.params[0]
 * must be a finite number …`) and the shard's id.
 */
export async function failedChild(job: Job): Promise<UnrecoverableError | undefined> {
  const failed = await job.getIgnoredChildrenFailures();
  const first = Object.entries(failed ?? {}).sort(([a], [b]) => a.localeCompare(b))[0];
  if (first === undefined) return undefined;
  const [key, reason] = first;
  return new UnrecoverableError(`${reason} (shard ${key.slice(key.lastIndexOf(':') + 1)})`);
}
