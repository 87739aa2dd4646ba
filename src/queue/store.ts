import type { Connection } from '../io/redis.js';
import type { TrainConfig } from '../core/training.js';
import { bufferToF64, f64Bytes, paramsVersion } from './codec.js';
import type { Keys, LockOwner } from './keys.js';
import { type ListedRun, listedRun, parseRunHash } from './run-record.js';

/** The state of a training run as kept in Redis. */
export interface RunSummary {
  readonly id: string;
  readonly state: 'running' | 'done' | 'cancelled' | 'failed';
  /** Iterations completed. */
  readonly step: number;
  readonly iters: number;
  readonly config: TrainConfig & { shards: number };
  /** Params version of the current step (absent once the run has ended). */
  readonly params: string;
  readonly loss: number | null;
  readonly trainAcc: number | null;
  readonly testAcc: number | null;
  readonly createdAt: number;
  readonly updatedAt: number;
  readonly error?: string;
}

/** Lua: drops holder `holder` of the snapshot `params` (its holders set `holders`); the snapshot goes with its last holder. */
const dropHolder = (params: string, holders: string, holder: string): string => `
redis.call('SREM', ${holders}, ${holder})
if redis.call('SCARD', ${holders}) == 0 then redis.call('DEL', ${params}, ${holders}) end`;

/** Drops a holder (ARGV[1]) of a snapshot (KEYS[1], holders KEYS[2]). */
const RELEASE = `${dropHolder('KEYS[1]', 'KEYS[2]', 'ARGV[1]')}
return 0`;

/**
 * RELEASE of a training step's hold on θ_t, once the run (KEYS[3]) is past step t (ARGV[2]). A
 * running run still at step t or before means Redis came back without that step (its last writes
 * lost) while the reducer remembered it: the release is refused (-1), since the step's redo needs
 * θ_t. A command that was in flight when Redis went down is resent when it is back, so this check
 * must be made by Redis itself, at the moment of the release.
 */
const RELEASE_AFTER_STEP = `
local step = tonumber(redis.call('HGET', KEYS[3], 'step'))
if step ~= nil and step <= tonumber(ARGV[2]) and redis.call('HGET', KEYS[3], 'state') == 'running' then return -1 end
${RELEASE}`;

/** A shard result left behind (its reducer failed, its run was stopped) expires after a day. */
export const SHARD_RESULT_TTL_SECONDS = 86_400;

/**
 * What `Store.commitStep` did: moved t → t+k; found the run at another step (a duplicate); found no
 * run; or refused, the committing job no longer holding its lock (`owner`).
 */
export type Advance = 'advanced' | 'elsewhere' | 'no-run' | 'not-owner';

/**
 * Steps t … t+k−1 of a run (k ≥ 1: a train-step commits one, a train-drive a few at a time),
 * committed as one unit: θ_{t+k}'s snapshot with its holders, the evaluations it owes, the step and
 * the k metrics lines. One script is one entry of the append-only file, so a Redis that comes back
 * without its last second of writes has all of it or none, never a step whose snapshot is missing.
 * The shard results the step was assembled from go with it (in the same entry: a Redis that lost
 * the step still has them for the redo), and so may θ_t's hold (a drive's: no one else releases
 * it if the drive dies right after). A job that commits many steps over a long life (a drive) names
 * its BullMQ lock and token: once the lock is not its own (it outlived its lock, in a Redis outage
 * say, and the job was taken over as stalled), it commits nothing more; while it is, the commit
 * renews it (BullMQ's own renewal tracks jobs by id, and a stale attempt of the same job in the same
 * process ends that for the live one when it ends). KEYS: run, metrics, params(θ_{t+k}),
 * holders(θ_{t+k}), pending, params(θ_t), holders(θ_t), the job's lock (any key without an owner),
 * shard results…. ARGV: t, version, loss (of step t+k−1), now, snapshot bytes, θ_t's holder to drop
 * ('' for none), holder count, pending count, the lock's token ('' for no owner), its duration (ms),
 * holders…, pending…, metrics lines….
 */
const COMMIT_STEP = `
if ARGV[9] ~= '' then
  if redis.call('GET', KEYS[8]) ~= ARGV[9] then return -2 end
  redis.call('PEXPIRE', KEYS[8], ARGV[10])
end
local step = tonumber(redis.call('HGET', KEYS[1], 'step'))
if step == nil then return -1 end
if step ~= tonumber(ARGV[1]) then return 0 end
for i = 9, #KEYS do redis.call('DEL', KEYS[i]) end
redis.call('SET', KEYS[3], ARGV[5], 'NX')
local n = tonumber(ARGV[7])
local m = tonumber(ARGV[8])
for i = 11, 10 + n do redis.call('SADD', KEYS[4], ARGV[i]) end
for i = 11 + n, 10 + n + m do redis.call('SADD', KEYS[5], ARGV[i]) end
local lines = #ARGV - (10 + n + m)
for i = 11 + n + m, #ARGV do redis.call('RPUSH', KEYS[2], ARGV[i]) end
if ARGV[6] ~= '' then ${dropHolder('KEYS[6]', 'KEYS[7]', 'ARGV[6]')}
end
redis.call('HSET', KEYS[1], 'step', step + lines, 'params', ARGV[2], 'loss', ARGV[3], 'updatedAt', ARGV[4])
return 1`;

/** Ends a run when every step is done and no evaluation is pending. */
const FINISH = `
if redis.call('HGET', KEYS[1], 'state') ~= 'running' then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'step')) ~= tonumber(ARGV[1]) then return 0 end
if redis.call('SCARD', KEYS[2]) ~= 0 then return 0 end
redis.call('HSET', KEYS[1], 'state', 'done', 'updatedAt', ARGV[2])
redis.call('HDEL', KEYS[1], 'params')
return 1`;

/** A run's hash and its index entry, written together, only if the run does not exist yet. */
const CREATE_RUN = `
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'state', 'running', 'step', 0, 'iters', ARGV[2], 'config', ARGV[3], 'params', ARGV[4], 'createdAt', ARGV[5], 'updatedAt', ARGV[5])
redis.call('ZADD', KEYS[2], ARGV[5], ARGV[1])
return 1`;

/**
 * numgrad's data plane in Redis: parameter snapshots (binary, one per content version, deleted
 * when their last holder releases them), assembled gradients for their submitters, and runs.
 */
export class Store {
  constructor(
    readonly redis: Connection,
    readonly keys: Keys,
  ) {}

  /**
   * Stores params (once per version) and registers `holder` as needing them; returns the version.
   * `version` is paramsVersion(params), when the caller has computed it already.
   */
  async putParams(params: Float64Array, holder: string, version?: string): Promise<string> {
    const v = version ?? paramsVersion(params);
    await this.redis.multi().set(this.keys.params(v), f64Bytes(params), 'NX').sadd(this.keys.holders(v), holder).exec();
    return v;
  }

  async getParams(version: string): Promise<Float64Array | null> {
    const b = await this.redis.getBuffer(this.keys.params(version));
    return b === null ? null : bufferToF64(b);
  }

  /**
   * Step t of run `id` no longer needs θ_t (`version`, held by `holder`), if Redis holds the run past
   * step t; 'behind' when the run is running at step t or before (RELEASE_AFTER_STEP). Idempotent.
   */
  async releaseAfterStep(id: string, t: number, version: string, holder: string): Promise<'released' | 'behind'> {
    const r = (await this.redis.eval(RELEASE_AFTER_STEP, 3, this.keys.params(version), this.keys.holders(version), this.keys.run(id), holder, t)) as number;
    return r === -1 ? 'behind' : 'released';
  }

  /** `holder` no longer needs the version; the snapshot is deleted with its last holder. Idempotent. */
  async release(version: string, holder: string): Promise<void> {
    await this.redis.eval(RELEASE, 2, this.keys.params(version), this.keys.holders(version), holder);
  }

  async putResult(id: string, data: Float64Array, ttlSeconds: number): Promise<string> {
    const key = this.keys.result(id);
    await this.redis.set(key, f64Bytes(data), 'EX', ttlSeconds);
    return key;
  }

  /**
   * An fd-shard's derivatives, binary, under its job id (`Keys.shardResult`), for its reducer; the
   * TTL is a backstop (the reducer deletes them once used). Returns the key.
   */
  async putShardResult(jobId: string, values: Float64Array): Promise<string> {
    const key = this.keys.shardResult(jobId);
    await this.redis.set(key, f64Bytes(values), 'EX', SHARD_RESULT_TTL_SECONDS);
    return key;
  }

  /** Stored shard results by job id, in order (null where none is stored), in one round trip. */
  async getShardResults(jobIds: readonly string[]): Promise<(Buffer | null)[]> {
    if (jobIds.length === 0) return [];
    return this.redis.mgetBuffer(...jobIds.map((j) => this.keys.shardResult(j)));
  }

  /** Deletes stored shard results (keys from `Keys.shardResult`) once their reducer is done. */
  async deleteKeys(keys: readonly string[]): Promise<void> {
    if (keys.length > 0) await this.redis.del(...keys);
  }

  /** Reads and deletes an assembled gradient. */
  async takeResult(key: string): Promise<Float64Array | null> {
    const [[, b]] = (await this.redis.multi().getBuffer(key).del(key).exec()) as [[Error | null, Buffer | null], unknown];
    return b === null ? null : bufferToF64(b);
  }

  /** Creates the run's hash and indexes it in one script: no crash can leave half a run behind. */
  async createRun(id: string, config: TrainConfig & { shards: number }, version: string): Promise<boolean> {
    const now = Date.now();
    const r = await this.redis.eval(CREATE_RUN, 2, this.keys.run(id), this.keys.runs(), id, config.iters, JSON.stringify(config), version, now);
    return r === 1;
  }

  /** The run, null when there is none; a malformed hash is a ValidationError naming the run and the field. */
  async getRun(id: string): Promise<RunSummary | null> {
    const h = await this.redis.hgetall(this.keys.run(id));
    if (h.id === undefined) return null;
    return parseRunHash(id, h);
  }

  /** The newest runs; one whose hash is malformed (or not a hash) is listed as `corrupt`, never an error. */
  async listRuns(limit = 50): Promise<ListedRun[]> {
    const ids = await this.redis.zrevrange(this.keys.runs(), 0, limit - 1);
    const runs = await Promise.all(
      ids.map(async (id): Promise<ListedRun | null> => {
        let h: Record<string, string>;
        try {
          h = await this.redis.hgetall(this.keys.run(id));
        } catch (err) {
          if (!/WRONGTYPE/.test(String(err))) throw err;
          return { id, state: 'corrupt', problem: `run ${id}: its key must be a hash, got a value of another type` };
        }
        // Indexed but without a hash: removed while this listing ran, or never created.
        if (Object.keys(h).length === 0) return null;
        return listedRun(id, h);
      }),
    );
    return runs.filter((r): r is ListedRun => r !== null);
  }

  /**
   * Moves a run from step t to t+k once (COMMIT_STEP), k = the number of metrics lines: θ_{t+k}
   * stored as `version` and held by `holders`, the evaluation tokens `pending` added, the lines
   * appended, and `release`'s hold on θ_t dropped; with `owner`, only while its lock holds its
   * token, renewed for `lockMs`.
   */
  async commitStep(id: string, t: number, step: { params: Float64Array; version: string; holders: readonly string[]; pending: readonly string[]; metricsLines: readonly string[]; loss: number; shardResults: readonly string[]; release?: { version: string; holder: string }; owner?: LockOwner }): Promise<Advance> {
    if (step.metricsLines.length === 0) throw new Error('commitStep: at least one step (metrics line) to commit');
    if (step.owner !== undefined && (step.owner.token === '' || !(Number.isInteger(step.owner.lockMs) && step.owner.lockMs > 0))) {
      throw new Error('commitStep: owner needs a token and a lock duration (ms, a positive integer)');
    }
    const rel = step.release?.version ?? step.version;
    const keys = [this.keys.run(id), this.keys.runMetrics(id), this.keys.params(step.version), this.keys.holders(step.version), this.keys.runPending(id), this.keys.params(rel), this.keys.holders(rel), step.owner?.lockKey ?? this.keys.run(id), ...step.shardResults];
    const args = [t, step.version, step.loss, Date.now(), f64Bytes(step.params), step.release?.holder ?? '', step.holders.length, step.pending.length, step.owner?.token ?? '', step.owner?.lockMs ?? 0, ...step.holders, ...step.pending, ...step.metricsLines];
    const r = (await this.redis.eval(COMMIT_STEP, keys.length, ...keys, ...args)) as number;
    return r === 1 ? 'advanced' : r === 0 ? 'elsewhere' : r === -2 ? 'not-owner' : 'no-run';
  }

  async isPending(id: string, token: string): Promise<boolean> {
    return (await this.redis.sismember(this.keys.runPending(id), token)) === 1;
  }

  /** Records an epoch evaluation and clears it from the pending set. */
  async recordEval(id: string, iter: number, split: string, value: { loss: number; accuracy: number }): Promise<void> {
    const field = split === 'train' ? 'trainAcc' : 'testAcc';
    await this.redis
      .multi()
      .hset(this.keys.runEvals(id), `${iter}:${split}`, JSON.stringify(value))
      .hset(this.keys.run(id), field, value.accuracy, `${split}Iter`, iter, 'updatedAt', Date.now())
      .srem(this.keys.runPending(id), `eval:${iter}:${split}`)
      .exec();
  }

  async metrics(id: string, from = 0): Promise<string[]> {
    return this.redis.lrange(this.keys.runMetrics(id), from, -1);
  }

  async evals(id: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.keys.runEvals(id));
  }

  /** Keeps the final params as part of the run's summary (binary), once. */
  async keepFinalParams(id: string, version: string): Promise<void> {
    if ((await this.redis.exists(this.keys.runParams(id))) === 1) return;
    const b = await this.redis.getBuffer(this.keys.params(version));
    if (b !== null) await this.redis.set(this.keys.runParams(id), b);
  }

  async finalParams(id: string): Promise<Float64Array | null> {
    const b = await this.redis.getBuffer(this.keys.runParams(id));
    return b === null ? null : bufferToF64(b);
  }

  /** Marks the run done if every step and evaluation is in; returns whether this call did it. */
  async finish(id: string, iters: number): Promise<boolean> {
    const r = (await this.redis.eval(FINISH, 2, this.keys.run(id), this.keys.runPending(id), iters, Date.now())) as number;
    return r === 1;
  }

  async setState(id: string, state: RunSummary['state'], error?: string): Promise<void> {
    await this.redis.hset(this.keys.run(id), { state, updatedAt: Date.now(), ...(error !== undefined ? { error } : {}) });
  }

  async state(id: string): Promise<string | null> {
    return this.redis.hget(this.keys.run(id), 'state');
  }
}
