/**
 * Run records in Redis: creating a run is one atomic write (a connection cut right after the first
 * command that touches the run leaves either the whole run or nothing), and a malformed run hash is
 * listed as `corrupt` with what is wrong, beside the good runs, by `numgrad runs`, `/api/runs` and
 * `/metrics` alike: nothing answers 500 and nothing reports Redis down.
 */
import { type Socket, createServer, connect as tcpConnect } from 'node:net';
import { Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainConfig } from '../../src/core/training.js';
import { startDashboard } from '../../src/dashboard/server.js';
import { buildConfig } from '../../src/io/config.js';
import { main } from '../../src/producer/cli.js';
import type { Output } from '../../src/producer/output.js';
import { Keys, jobLock } from '../../src/queue/keys.js';
import { Store } from '../../src/queue/store.js';
import { cleanup, closeRedis, keysUnder, redisUrl, uniquePrefix } from '../helpers/redis.js';

const V = 'c'.repeat(64);
const cfg = { ...trainConfig({ hidden: 10, batch: 20, iters: 5 }), shards: 2 };
let url: string;
const prefixes: string[] = [];

beforeAll(async () => {
  url = await redisUrl();
});
afterAll(async () => {
  for (const p of prefixes) {
    await cleanup(p, url);
    expect(await keysUnder(url, p)).toEqual([]);
  }
  await closeRedis();
});

/**
 * A TCP proxy to Redis that cuts both sides right after it has forwarded the first chunk from the
 * client that mentions `needle`: a process that dies after sending that command and before the next.
 */
async function cuttingProxy(target: URL, needle: string): Promise<{ port: number; cut: () => boolean; close: () => Promise<void> }> {
  let cut = false;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = tcpConnect(Number(target.port || 6379), target.hostname);
    sockets.add(client).add(upstream);
    const kill = (): void => {
      client.destroy();
      upstream.destroy();
    };
    client.on('data', (chunk: Buffer) => {
      if (cut) return kill();
      upstream.write(chunk);
      if (chunk.includes(needle)) {
        cut = true;
        // Let Redis read the bytes, then vanish before any further command.
        setTimeout(kill, 50);
      }
    });
    upstream.on('data', (chunk: Buffer) => client.write(chunk));
    client.on('error', kill);
    upstream.on('error', kill);
    client.on('close', kill);
    upstream.on('close', kill);
  });
  await new Promise<void>((res) => server.listen(0, '127.0.0.1', res));
  const port = (server.address() as { port: number }).port;
  return {
    port,
    cut: () => cut,
    close: () =>
      new Promise<void>((res) => {
        sockets.forEach((s) => s.destroy());
        server.close(() => res());
      }),
  };
}

describe('createRun is atomic', () => {
  it('a connection cut after the first command touching the run leaves the whole run or none, and the listing works', async () => {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const keys = new Keys(prefix);
    const proxy = await cuttingProxy(new URL(url), keys.run('cut1'));
    const viaProxy = new Redis(proxy.port, '127.0.0.1', { maxRetriesPerRequest: 0, enableOfflineQueue: false, retryStrategy: () => null, lazyConnect: true });
    viaProxy.on('error', () => undefined);
    await viaProxy.connect();
    try {
      await new Store(viaProxy, keys).createRun('cut1', cfg, V).catch(() => undefined);
      expect(proxy.cut()).toBe(true);
    } finally {
      viaProxy.disconnect();
      await proxy.close();
    }
    const conn = new Redis(url, { maxRetriesPerRequest: 1 });
    try {
      const store = new Store(conn, keys);
      const hash = await conn.hgetall(keys.run('cut1'));
      const indexed = (await conn.zscore(keys.runs(), 'cut1')) !== null;
      // Either nothing of it, or all of it: the hash with every field, and its index entry.
      if (Object.keys(hash).length === 0) expect(indexed).toBe(false);
      else {
        expect(Object.keys(hash).sort()).toEqual(['config', 'createdAt', 'id', 'iters', 'params', 'state', 'step', 'updatedAt']);
        expect(indexed).toBe(true);
      }
      const listed = await store.listRuns();
      expect(listed.every((r) => r.state !== 'corrupt')).toBe(true);
    } finally {
      conn.disconnect();
    }
  });
});

describe('a malformed run hash is listed as corrupt, the others as usual', () => {
  const prefix = uniquePrefix();
  prefixes.push(prefix);
  const keys = new Keys(prefix);
  let conn: Redis;
  const bad: Record<string, RegExp> = {
    half: /^run half: field state must be present \(the hash lacks it\)$/,
    badjson: /^run badjson: field config must be JSON of the run's settings, got "\{"$/,
    badstep: /^run badstep: field step must be an integer ≥ 0, got "abc"$/,
    badstate: /^run badstate: field state must be one of running, done, cancelled, failed, got "exploded"$/,
    string: /^run string: its key must be a hash, got a value of another type$/,
  };

  beforeAll(async () => {
    conn = new Redis(url, { maxRetriesPerRequest: 1 });
    const store = new Store(conn, keys);
    expect(await store.createRun('good1', cfg, V)).toBe(true);
    expect(await store.createRun('good2', cfg, V)).toBe(true);
    expect(await store.createRun('good2', cfg, V)).toBe(false);
    for (const id of ['badjson', 'badstep', 'badstate']) expect(await store.createRun(id, cfg, V)).toBe(true);
    // What a crash between the old createRun's HSETNX and its MULTI left behind.
    await conn.hset(keys.run('half'), 'id', 'half');
    await conn.zadd(keys.runs(), Date.now(), 'half');
    await conn.hset(keys.run('badjson'), 'config', '{');
    await conn.hset(keys.run('badstep'), 'step', 'abc');
    await conn.hset(keys.run('badstate'), 'state', 'exploded');
    await conn.set(keys.run('string'), 'not a hash');
    await conn.zadd(keys.runs(), Date.now(), 'string');
  });
  afterAll(() => conn?.disconnect());

  it('Store.listRuns: every good run in full, every bad one as corrupt naming the field', async () => {
    const runs = await new Store(conn, keys).listRuns();
    expect(runs.map((r) => r.id).sort()).toEqual(['badjson', 'badstate', 'badstep', 'good1', 'good2', 'half', 'string']);
    for (const r of runs) {
      if (r.id.startsWith('good')) expect(r).toMatchObject({ state: 'running', step: 0, iters: 5, params: V, config: cfg });
      else {
        expect(r.state).toBe('corrupt');
        expect((r as { problem: string }).problem).toMatch(bad[r.id]);
      }
    }
    // Reading one corrupt run on its own is an error naming it, not a crash elsewhere.
    await expect(new Store(conn, keys).getRun('badstep')).rejects.toThrow(bad.badstep);
  });

  it('`numgrad runs` prints the good runs and each corrupt one with its problem, exit 0', async () => {
    const lines: string[] = [];
    const errors: string[] = [];
    const out: Output = { line: (t) => lines.push(t), json: (v) => lines.push(JSON.stringify(v)), error: (t) => errors.push(t) };
    expect(await main(['--redis', url, '--prefix', prefix, 'runs'], out)).toBe(0);
    expect(errors).toEqual([]);
    const byId = new Map(lines.slice(1).map((l) => [l.split('\t')[0], l.split('\t')]));
    expect(byId.get('good1')?.slice(1, 3)).toEqual(['running', '0/5']);
    for (const [id, re] of Object.entries(bad)) {
      expect(byId.get(id)?.[1]).toBe('corrupt');
      expect(byId.get(id)?.at(-1)).toMatch(re);
    }
  });

  it('/api/runs lists them (200), /metrics answers with Redis up and numgrad_run_corrupt per bad run, a corrupt run\'s metrics are 422', async () => {
    const d = await startDashboard({ config: buildConfig({ redis: url, prefix }, {}), port: 0, host: '127.0.0.1', allowActions: false, logger: pino({ level: 'silent' }) });
    try {
      const res = await fetch(`${d.url}/api/runs`);
      expect(res.status).toBe(200);
      const { runs } = (await res.json()) as { runs: { id: string; state: string; problem?: string }[] };
      expect(runs).toHaveLength(7);
      expect(runs.filter((r) => r.state === 'corrupt').map((r) => r.id).sort()).toEqual(Object.keys(bad).sort());
      const m = await fetch(`${d.url}/metrics`);
      expect(m.status).toBe(200);
      const text = await m.text();
      expect(text).toMatch(/^numgrad_redis_up 1$/m);
      for (const id of Object.keys(bad)) expect(text).toContain(`numgrad_run_corrupt{run="${id}"} 1`);
      expect(text).toContain('numgrad_run_step{run="good1"} 0');
      const one = await fetch(`${d.url}/api/runs/badstep/metrics`);
      expect(one.status).toBe(422);
      expect(((await one.json()) as { error: string }).error).toMatch(bad.badstep);
    } finally {
      await d.close();
    }
  });
});

describe('a step commits and releases against what Redis holds', () => {
  it("a drive's commit names its job's lock: refused, changing nothing, once the lock is not its token (the attempt outlived it); the lock jobLock names is the one BullMQ holds for the attempt; the owner's commit renews it", async () => {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const conn = new Redis(url);
    const store = new Store(conn, new Keys(prefix));
    const qconn = new Redis(url, { maxRetriesPerRequest: null });
    const wconn = new Redis(url, { maxRetriesPerRequest: null });
    const queue = new Queue('locks', { connection: qconn, prefix });
    let worker: Worker | undefined;
    try {
      // jobLock names the key BullMQ keeps the running attempt's token under.
      const seen = new Promise<{ lock: string | null; token: string | undefined; key: string | undefined }>((resolve) => {
        worker = new Worker('locks', async (job) => resolve({ lock: await conn.get(jobLock(job, 1000)?.lockKey ?? 'none'), token: job.token, key: jobLock(job, 1000)?.lockKey }), { connection: wconn, prefix });
      });
      await queue.add('j', {}, { jobId: 'j1' });
      const got = await seen;
      expect(got.key).toBe(`${prefix}:locks:j1:lock`);
      expect(got.token).toBeTruthy();
      expect(got.lock).toBe(got.token);

      const theta = new Float64Array(795 * 10 + 10).fill(0.5);
      const v = await store.putParams(theta, 'run-r-step-0');
      expect(await store.createRun('r', cfg, v)).toBe(true);
      const lockKey = `${prefix}:reduce:run-r-drive-0:lock`;
      const next = new Float64Array(theta.length).fill(0.25);
      const commit = (token: string) => store.commitStep('r', 0, { params: next, version: 'e'.repeat(64), holders: ['run-r-step-2'], pending: [], metricsLines: ['{"iter":0}', '{"iter":1}'], loss: 1, shardResults: [], owner: { lockKey, token, lockMs: 5000 } });
      // No lock (it expired in an outage), then another attempt's: refused, nothing written, the lock untouched.
      expect(await commit('attempt-1')).toBe('not-owner');
      expect(await conn.exists(lockKey)).toBe(0);
      await conn.set(lockKey, 'attempt-2');
      expect(await commit('attempt-1')).toBe('not-owner');
      expect(await conn.pttl(lockKey)).toBe(-1);
      expect(await store.getRun('r')).toMatchObject({ step: 0, params: v });
      expect(await store.metrics('r')).toEqual([]);
      expect(await store.getParams('e'.repeat(64))).toBeNull();
      // The lock's own attempt commits both steps, and its lock is renewed for the worker's duration.
      expect(await commit('attempt-2')).toBe('advanced');
      const ttl = await conn.pttl(lockKey);
      expect(ttl).toBeGreaterThan(0);
      expect(ttl).toBeLessThanOrEqual(5000);
      expect(await store.getRun('r')).toMatchObject({ step: 2, params: 'e'.repeat(64) });
      expect(await store.metrics('r')).toEqual(['{"iter":0}', '{"iter":1}']);
    } finally {
      await worker?.close();
      await queue.obliterate({ force: true });
      await queue.close();
      qconn.disconnect();
      wconn.disconnect();
      conn.disconnect();
    }
  });

  it("θ_t's hold is released only once the run is past step t; a release resent to a Redis that lost the step is refused and keeps θ_t", async () => {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const conn = new Redis(url);
    const store = new Store(conn, new Keys(prefix));
    try {
      const theta = new Float64Array(795 * 10 + 10).fill(0.5);
      const v = await store.putParams(theta, 'run-r-step-0');
      expect(await store.createRun('r', cfg, v)).toBe(true);
      // Step 0 not committed (as after a Redis that came back without it): the hold stays.
      expect(await store.releaseAfterStep('r', 0, v, 'run-r-step-0')).toBe('behind');
      expect((await store.getParams(v))?.length).toBe(theta.length);
      // Step 0 committed, with its two stored shard results deleted in the same script.
      const next = new Float64Array(theta.length).fill(0.25);
      const shardKeys = [await store.putShardResult('run-r-step-0-s-0', next.subarray(0, 5)), await store.putShardResult('run-r-step-0-s-1', next.subarray(5, 9))];
      expect(await conn.ttl(shardKeys[0])).toBeGreaterThan(0);
      expect(await store.commitStep('r', 0, { params: next, version: 'd'.repeat(64), holders: ['run-r-step-1'], pending: [], metricsLines: ['{"iter":0}'], loss: 1, shardResults: shardKeys })).toBe('advanced');
      expect(await conn.exists(...shardKeys)).toBe(0);
      expect(await store.releaseAfterStep('r', 0, v, 'run-r-step-0')).toBe('released');
      expect(await store.getParams(v)).toBeNull();
      // A duplicate of the commit is refused and deletes nothing it names.
      const again = await store.putShardResult('run-r-step-0-s-0', next.subarray(0, 5));
      expect(await store.commitStep('r', 0, { params: next, version: 'd'.repeat(64), holders: [], pending: [], metricsLines: ['{"iter":0}'], loss: 1, shardResults: [again] })).toBe('elsewhere');
      expect(await conn.exists(again)).toBe(1);
    } finally {
      conn.disconnect();
    }
  });
});
