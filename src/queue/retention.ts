import type { Queue } from 'bullmq';
import { Cluster, type Redis } from 'ioredis';
import { QUEUES } from '../core/contract.js';
import { NumgradError, ValidationError } from '../core/errors.js';
import type { Connection } from '../io/redis.js';
import type { Keys } from './keys.js';
import { listedRun } from './run-record.js';
import type { Store } from './store.js';

/** What removing one run took away. */
export interface RemovedRun {
  readonly id: string;
  /** The state it had (`corrupt` for a malformed hash). */
  readonly state: string;
  /** BullMQ jobs of the run removed (steps, evaluations and their shards still kept: failed, waiting). */
  readonly jobs: number;
  /** Parameter snapshots whose last holder was this run (deleted with it). */
  readonly snapshots: number;
  /** numgrad's own keys of the run deleted (summary, metrics, evaluations, pending set, final params). */
  readonly keys: number;
}

export interface RemoveOptions {
  /** Cancel a running run first instead of refusing it. */
  readonly force?: boolean;
  /** How long to wait for the run's active jobs to end (ms). Default 60 s. */
  readonly waitMs?: number;
  readonly pollMs?: number;
  /** The command, for messages. */
  readonly op?: string;
}

/**
 * Retention of runs: a run lives in Redis until removed. Removing one takes every key it has: its
 * BullMQ jobs (train-steps, epoch evaluations and their shards: failed ones are kept by
 * `removeOnFail`, a cancelled run may still have queued ones), its holds on parameter snapshots
 * (a snapshot goes with its last holder), its summary hash, metrics list, evaluations hash, pending
 * set, final params and its entry in the index. Jobs go first and the summary last, after every
 * active job of the run has ended: an evaluation that finished after the summary went would write
 * part of it back.
 */
export class RunRetention {
  private readonly redis: Connection;
  private readonly keys: Keys;

  constructor(
    private readonly store: Store,
    private readonly queues: Readonly<Record<keyof typeof QUEUES, Queue>>,
  ) {
    this.redis = store.redis;
    this.keys = store.keys;
  }

  /** Removes run `id` entirely; a running run is refused unless `force` (which cancels it first). */
  async remove(id: string, opts: RemoveOptions = {}): Promise<RemovedRun> {
    const op = opts.op ?? 'numgrad runs rm';
    const runKey = this.keys.run(id);
    const [type, indexed] = await Promise.all([this.redis.type(runKey), this.redis.zscore(this.keys.runs(), id)]);
    const jobIds = await this.jobIds(id);
    if (type === 'none' && indexed === null && jobIds.length === 0) throw new ValidationError(op, 'RUN', 'the id of an existing run (see `numgrad runs`)', id);
    const state = type === 'hash' ? ((await this.redis.hget(runKey, 'state')) ?? 'corrupt') : type === 'none' ? 'gone' : 'corrupt';
    if (state === 'running') {
      if (opts.force !== true) {
        const step = await this.redis.hmget(runKey, 'step', 'iters');
        throw new NumgradError(`${op}: run ${id} is running (step ${step[0]}/${step[1]}); cancel it first (\`numgrad cancel ${id}\`) or pass --force, which does`);
      }
      await this.redis.hset(runKey, { state: 'cancelled', updatedAt: Date.now() });
    }
    const jobs = await this.removeJobs(id, op, opts.waitMs ?? 60_000, opts.pollMs ?? 100);
    const snapshots = await this.releaseSnapshots(id);
    const results = await this.deleteShardResults(id);
    const k = this.keys;
    const res = (await this.redis.multi().del(runKey, k.runMetrics(id), k.runEvals(id), k.runPending(id), k.runParams(id)).zrem(k.runs(), id).exec()) as [Error | null, number][];
    return { id, state, jobs, snapshots, keys: res[0][1] + results };
  }

  /**
   * Removes the runs of the given states last updated `olderThanMs` ago or earlier (a corrupt run by
   * its index time, its creation). Running runs only with `force`.
   */
  async prune(olderThanMs: number, states: readonly string[], opts: RemoveOptions & { now?: number } = {}): Promise<RemovedRun[]> {
    const now = opts.now ?? Date.now();
    const entries = await this.redis.zrange(this.keys.runs(), '0', '-1', 'WITHSCORES');
    const out: RemovedRun[] = [];
    for (let i = 0; i < entries.length; i += 2) {
      const id = entries[i];
      let state = 'corrupt';
      let at = Number(entries[i + 1]);
      const h = await this.redis.hgetall(this.keys.run(id)).catch(() => null);
      if (h !== null && Object.keys(h).length > 0) {
        const r = listedRun(id, h);
        state = r.state;
        if (r.state !== 'corrupt') at = r.updatedAt;
      }
      if (!states.includes(state) || now - at < olderThanMs) continue;
      out.push(await this.remove(id, { ...opts, op: opts.op ?? 'numgrad runs prune' }));
    }
    return out;
  }

  /** Ids of the run's BullMQ jobs still in Redis, with their queue. */
  private async jobIds(id: string): Promise<{ queue: keyof typeof QUEUES; job: string }[]> {
    // Job ids of a run: run-R-step-t, run-R-step-t-s-k, run-R-eval-t-train|test, run-R-eval-t-split-s-k (flows.ts).
    const mine = new RegExp(`^run-${id}-(step-\\d+|eval-\\d+-(train|test))(-s-\\d+)?$`);
    const found: { queue: keyof typeof QUEUES; job: string }[] = [];
    for (const queue of Object.keys(QUEUES) as (keyof typeof QUEUES)[]) {
      const at = `${this.keys.prefix}:${QUEUES[queue]}:`;
      const seen = new Set<string>();
      for (const key of await this.scan(`${at}run-${id}-*`)) {
        const job = key.slice(at.length).split(':')[0];
        if (mine.test(job) && !seen.has(job)) {
          seen.add(job);
          found.push({ queue, job });
        }
      }
    }
    return found;
  }

  /** Removes the run's jobs, waiting for active ones (locked: BullMQ will not remove them) to end. */
  private async removeJobs(id: string, op: string, waitMs: number, pollMs: number): Promise<number> {
    const deadline = Date.now() + waitMs;
    let removed = 0;
    for (;;) {
      const jobs = await this.jobIds(id);
      if (jobs.length === 0) return removed;
      let busy = 0;
      for (const { queue, job } of jobs) {
        const code = await this.queues[queue].remove(job, { removeChildren: true });
        if (code === 1) removed++;
        else busy++;
      }
      if (busy > 0 && Date.now() > deadline) {
        throw new NumgradError(`${op}: run ${id} still has ${busy} active job(s) after ${Math.round(waitMs / 1000)} s; nothing of the run was deleted but its other jobs: run the command again once its workers are done with them`);
      }
      if (busy > 0) await new Promise((r) => setTimeout(r, pollMs));
    }
  }

  /** Deletes the shard results the run's reducers did not get to (a failed or stopped step's). */
  private async deleteShardResults(id: string): Promise<number> {
    const mine = new RegExp(`^run-${id}-step-\\d+-s-\\d+$`);
    const at = this.keys.shardResult('');
    const keys = (await this.scan(`${at}run-${id}-*`)).filter((key) => mine.test(key.slice(at.length)));
    await this.store.deleteKeys(keys);
    return keys.length;
  }

  /** Drops the run's holds on parameter snapshots; a snapshot whose last holder it was goes. */
  private async releaseSnapshots(id: string): Promise<number> {
    const mine = new RegExp(`^run-${id}-(step-\\d+|eval-\\d+-(train|test))$`);
    const at = `${this.keys.prefix}:ng:params:`;
    let deleted = 0;
    for (const holders of await this.scan(`${at}*:holders`)) {
      const version = holders.slice(at.length, -':holders'.length);
      const held = (await this.redis.smembers(holders)).filter((h) => mine.test(h));
      for (const holder of held) await this.store.release(version, holder);
      if (held.length > 0 && (await this.redis.exists(this.keys.params(version))) === 0) deleted++;
    }
    return deleted;
  }

  /** Keys matching `match`: SCAN, never KEYS (on a cluster, on every master: the prefix's slot is on one). */
  private async scan(match: string): Promise<string[]> {
    const nodes: Redis[] = this.redis instanceof Cluster ? this.redis.nodes('master') : [this.redis];
    const out: string[] = [];
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, batch] = await node.scan(cursor, 'MATCH', match, 'COUNT', 1000);
        out.push(...batch);
        cursor = next;
      } while (cursor !== '0');
    }
    return [...new Set(out)];
  }
}
