/**
 * Retention: `numgrad runs rm RUN` and `numgrad runs prune --older-than D [--state …]` remove every
 * key of those runs (listed with SCAN before and after): summary, metrics, evaluations, final
 * params, index entry, BullMQ jobs (a failed step is kept by removeOnFail) and parameter snapshots
 * the run was the last to hold. A running run is refused unless --force, which cancels it first;
 * the dashboard's /api/runs and /metrics drop removed runs.
 */
import { FlowProducer } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initialParams, trainConfig } from '../../src/core/training.js';
import { type Dashboard, startDashboard } from '../../src/dashboard/server.js';
import { buildConfig } from '../../src/io/config.js';
import { main } from '../../src/producer/cli.js';
import type { Output } from '../../src/producer/output.js';
import { QueueClient } from '../../src/producer/queue-client.js';
import { jobId, trainStepFlow } from '../../src/queue/flows.js';
import { Keys } from '../../src/queue/keys.js';
import { QueueWorker } from '../../src/workers/queue-worker.js';
import { Store } from '../../src/queue/store.js';
import { cleanup, closeRedis, keysUnder, redisUrl, sleep, uniquePrefix } from '../helpers/redis.js';

const prefix = uniquePrefix();
const keys = new Keys(prefix);
const silent = pino({ level: 'silent' });
const small = trainConfig({ hidden: 10, batch: 20, iters: 3, evalEvery: 2, seed: 1 });
let url: string;
let conn: Redis;
let worker: QueueWorker;
let client: QueueClient;
let dash: Dashboard;

beforeAll(async () => {
  url = await redisUrl();
  conn = new Redis(url, { maxRetriesPerRequest: 1 });
  worker = new QueueWorker({ redisUrl: url, prefix, threads: 1, logger: silent });
  await worker.ready();
  client = new QueueClient({ redisUrl: url, prefix });
  dash = await startDashboard({ config: buildConfig({ redis: url, prefix }, {}), port: 0, host: '127.0.0.1', allowActions: false, logger: silent });
}, 60_000);

afterAll(async () => {
  await dash?.close();
  await client?.close();
  await worker?.close();
  conn?.disconnect();
  await cleanup(prefix, url);
  await closeRedis();
});

async function cli(...args: string[]): Promise<{ code: number; lines: string[]; errors: string[] }> {
  const lines: string[] = [];
  const errors: string[] = [];
  const out: Output = { line: (t) => lines.push(t), json: (v) => lines.push(JSON.stringify(v)), error: (t) => errors.push(t) };
  const code = await main(['--redis', url, '--prefix', prefix, ...args], out);
  return { code, lines, errors };
}

/** Every key that belongs to run `id`: numgrad's run keys and the run's BullMQ jobs. */
const ofRun = (all: string[], id: string): string[] => all.filter((k) => k.startsWith(`${keys.run(id)}`) || k.includes(`:run-${id}-`));

async function doneRun(id: string): Promise<void> {
  await client.startRun(small, 2, id);
  const r = await client.follow(id, () => undefined, 50);
  expect(r.state).toBe('done');
}

/**
 * A run whose step 0 failed for good, marked failed as a follower does: created as the CLI creates
 * one, but its step 0 is submitted with one child on another h, which the reducer refuses. Nothing
 * else of the run is queued, so what it leaves is exactly a failed step and the snapshot it held.
 */
async function failedRun(id: string): Promise<void> {
  const store = new Store(conn, keys);
  const cfg = { ...small, iters: 1000 };
  const version = await store.putParams(initialParams(cfg), jobId('run', id, 'step', 0));
  expect(await store.createRun(id, { ...cfg, shards: 2 }, version)).toBe(true);
  const flow = trainStepFlow(id, 0, version, cfg.hidden, cfg.seed, cfg.batch, cfg.h, 2);
  (flow.children?.[1].data as { h: number }).h = 2e-4;
  const fp = new FlowProducer({ connection: conn, prefix });
  await fp.add(flow);
  await fp.close();
  let reason: string | undefined;
  for (let k = 0; k < 600 && reason === undefined; k++) {
    reason = await client.stepFailure(await client.run(id));
    if (reason === undefined) await sleep(50);
  }
  expect(reason).toMatch(/^train-step: data\.h of child /);
  await store.setState(id, 'failed', reason);
}

describe('numgrad runs rm / prune', () => {
  it('rm of a done run removes its keys and only its keys; /api/runs and /metrics drop it', async () => {
    await doneRun('gone1');
    await doneRun('keep1');
    expect(((await (await fetch(`${dash.url}/api/runs`)).json()) as { runs: { id: string }[] }).runs.map((r) => r.id).sort()).toEqual(['gone1', 'keep1']);
    expect(await (await fetch(`${dash.url}/metrics`)).text()).toContain('numgrad_run_step{run="gone1"} 3');
    const before = await keysUnder(url, prefix);
    expect(ofRun(before, 'gone1').length).toBeGreaterThanOrEqual(4);
    const r = await cli('runs', 'rm', 'gone1');
    expect(r).toMatchObject({ code: 0, errors: [] });
    expect(r.lines).toEqual([expect.stringMatching(/^run gone1: removed \(done; \d+ jobs?, \d+ params snapshots?, 4 run keys\)$/)]);
    const after = await keysUnder(url, prefix);
    expect(after).toEqual(before.filter((k) => !ofRun(before, 'gone1').includes(k)));
    expect(ofRun(after, 'gone1')).toEqual([]);
    expect(((await (await fetch(`${dash.url}/api/runs`)).json()) as { runs: { id: string }[] }).runs.map((x) => x.id)).toEqual(['keep1']);
    const metrics = await (await fetch(`${dash.url}/metrics`)).text();
    expect(metrics).not.toContain('run="gone1"');
    expect(metrics).toContain('numgrad_run_step{run="keep1"} 3');
  }, 120_000);

  it('rm of a failed run removes its failed jobs and the params snapshot it still held', async () => {
    await failedRun('fail1');
    const before = await keysUnder(url, prefix);
    const mine = ofRun(before, 'fail1');
    expect(mine.some((k) => k.startsWith(`${prefix}:reduce:run-fail1-step-`))).toBe(true);
    const snapshots = before.filter((k) => /:ng:params:[0-9a-f]{64}$/.test(k));
    const r = await cli('runs', 'rm', 'fail1');
    expect(r.code).toBe(0);
    expect(r.lines[0]).toMatch(/^run fail1: removed \(failed; [1-9]\d* jobs?, 1 params snapshot, \d run keys?\)$/);
    const after = await keysUnder(url, prefix);
    expect(ofRun(after, 'fail1')).toEqual([]);
    expect(after.filter((k) => /:ng:params:[0-9a-f]{64}$/.test(k)).length).toBe(snapshots.length - 1);
    // Nothing else was touched, and nothing new appeared.
    expect(after.every((k) => before.includes(k))).toBe(true);
  }, 120_000);

  it('a running run is refused without --force; --force cancels it, waits for its jobs, removes everything', async () => {
    await client.startRun({ ...small, iters: 100_000 }, 2, 'live1');
    for (let k = 0; k < 200 && (await client.run('live1')).step < 2; k++) await sleep(50);
    const refused = await cli('runs', 'rm', 'live1');
    expect(refused.code).toBe(2);
    expect(refused.errors).toEqual([expect.stringMatching(/^error: numgrad runs rm: run live1 is running \(step \d+\/100000\); cancel it first \(`numgrad cancel live1`\) or pass --force, which does$/)]);
    expect((await client.run('live1')).state).toBe('running');
    const forced = await cli('runs', 'rm', 'live1', '--force');
    expect(forced.errors).toEqual([]);
    expect(forced.lines[0]).toMatch(/^run live1: removed \(running; /);
    // Jobs that were in flight have ended: nothing of the run comes back.
    await sleep(1500);
    expect(ofRun(await keysUnder(url, prefix), 'live1')).toEqual([]);
    expect(await conn.zscore(keys.runs(), 'live1')).toBeNull();
  }, 120_000);

  it('prune --older-than 7d removes the old runs of the chosen states only; errors name the option', async () => {
    await doneRun('old1');
    await doneRun('new1');
    await failedRun('oldfail');
    const eightDays = Date.now() - 8 * 86_400_000;
    await conn.hset(keys.run('old1'), 'updatedAt', eightDays);
    await conn.hset(keys.run('oldfail'), 'updatedAt', eightDays);
    const done = await cli('runs', 'prune', '--older-than', '7d', '--state', 'done');
    expect(done.code).toBe(0);
    expect(done.lines).toEqual([expect.stringMatching(/^run old1: removed \(done; /), 'pruned 1 run (done) not updated for 7d']);
    const all = await cli('runs', 'prune', '--older-than', '7d');
    expect(all.lines).toEqual([expect.stringMatching(/^run oldfail: removed \(failed; /), 'pruned 1 run (done, failed, cancelled) not updated for 7d']);
    const left = await keysUnder(url, prefix);
    expect(ofRun(left, 'old1')).toEqual([]);
    expect(ofRun(left, 'oldfail')).toEqual([]);
    expect(ofRun(left, 'new1').length).toBeGreaterThan(0);
    expect((await cli('runs', 'prune', '--older-than', 'a week')).errors).toEqual(['error: numgrad runs prune: --older-than must be a duration such as 7d, 12h, 30m or 90s, got "a week"']);
    expect((await cli('runs', 'prune', '--older-than', '7d', '--state', 'running'))).toMatchObject({ code: 2, errors: ['error: numgrad runs prune: --state must be without running unless --force (which cancels those runs first), got "running"'] });
    expect(await cli('runs', 'rm', 'nosuch')).toMatchObject({ code: 2, errors: ['error: numgrad runs rm: RUN must be the id of an existing run (see `numgrad runs`), got "nosuch"'] });
  }, 180_000);
});
