/**
 * The gradient through the queue is the local gradient, bit for bit: `numgrad gradient --backend
 * queue --out G.npy` (the compiled CLI, with NUMGRAD_PREFIX/REDIS_URL) writes the same bytes as
 * `--backend local`, from the seeded inputs and from --params/--indices files, with one worker
 * process and with three (one thread each); and QueueClient.gradient in-process returns the same
 * vector. With three workers the shards are spread: while a gradient runs we watch the shard jobs'
 * BullMQ locks, whose tokens are `<worker id>:<n>`, and count the distinct workers holding them.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy } from '../../src/core/npy.js';
import { initParams } from '../../src/core/network.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { writeNpyFile } from '../../src/io/npy-file.js';
import { QueueClient } from '../../src/producer/queue-client.js';
import { bytesOf } from '../helpers/data.js';
import { type WorkerProcess, cleanup, closeRedis, keysUnder, redisUrl, runCli, sleep, spawnWorker, uniquePrefix } from '../helpers/redis.js';

let url: string;
let dir: string;
/** The local backend's files, the reference every queue result must equal byte for byte. */
const local: { seeded?: Buffer; files?: Buffer } = {};
let paramsFile: string;
let indicesFile: string;
let filesParams: Float64Array;
let filesIndices: Int32Array;

beforeAll(async () => {
  url = await redisUrl();
  dir = mkdtempSync(join(tmpdir(), 'numgrad-queue-gradient-'));
  filesParams = initParams(50, new Rng(7));
  filesIndices = miniBatchIndices(7, 3, 100, 60_000);
  paramsFile = join(dir, 'p7.npy');
  indicesFile = join(dir, 'i7.npy');
  writeNpyFile(paramsFile, filesParams);
  writeNpyFile(indicesFile, filesIndices);
  // The prefix is irrelevant to --backend local; any will do.
  const env = { prefix: uniquePrefix(), url };
  const a = await runCli(['gradient', '--backend', 'local', '--threads', '2', '--seed', '1', '--out', join(dir, 'local-seeded.npy')], env);
  const b = await runCli(['gradient', '--backend', 'local', '--threads', '2', '--params', paramsFile, '--indices', indicesFile, '--out', join(dir, 'local-files.npy')], env);
  expect(a.code, a.stderr).toBe(0);
  expect(b.code, b.stderr).toBe(0);
  local.seeded = readFileSync(join(dir, 'local-seeded.npy'));
  local.files = readFileSync(join(dir, 'local-files.npy'));
}, 60_000);

afterAll(async () => {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  await closeRedis();
});

/** Distinct BullMQ workers seen holding a shard lock under `prefix` while it runs (polled every 5 ms). */
function watchShardLocks(prefix: string): { stop: () => Promise<Set<string>> } {
  const conn = new Redis(url, { maxRetriesPerRequest: 1 });
  const workers = new Set<string>();
  let running = true;
  const loop = (async () => {
    while (running) {
      let cursor = '0';
      do {
        const [next, keys] = await conn.scan(cursor, 'MATCH', `${prefix}:shards:*:lock`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) {
          for (const token of await conn.mget(...keys)) if (token !== null) workers.add(token.slice(0, token.lastIndexOf(':')));
        }
      } while (cursor !== '0');
      await sleep(5);
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      conn.disconnect();
      return workers;
    },
  };
}

describe.each([
  { workers: 1, shards: 4 },
  { workers: 3, shards: 6 },
])('numgrad gradient --backend queue with $workers worker process(es) of 1 thread, $shards shards', ({ workers: n, shards }) => {
  const prefix = uniquePrefix();
  const env = (): { prefix: string; url: string } => ({ prefix, url });
  const procs: WorkerProcess[] = [];

  beforeAll(async () => {
    for (let k = 0; k < n; k++) procs.push(await spawnWorker(prefix, url, { threads: 1 }));
  }, 60_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop()));
    await cleanup(prefix, url);
    expect(await keysUnder(url, prefix)).toEqual([]);
  });

  it('--out from the seeded inputs (--seed 1): byte-identical to --backend local', async () => {
    const out = join(dir, `queue-${n}-seeded.npy`);
    const watch = watchShardLocks(prefix);
    const r = await runCli(['gradient', '--backend', 'queue', '--shards', String(shards), '--seed', '1', '--out', out, '--json'], env());
    const holders = await watch.stop();
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain(`${n} worker process(es) online`);
    expect((JSON.parse(r.stdout.trimEnd().split('\n').pop() ?? '') as { backend: string }).backend).toBe('queue');
    expect(readFileSync(out).equals(local.seeded as Buffer)).toBe(true);
    // Every shard was seen under some worker's lock (a shard can be too quick to catch: ≥ 1).
    expect(holders.size).toBeGreaterThanOrEqual(1);
    expect(holders.size).toBeLessThanOrEqual(n);
  });

  it('--out from --params/--indices files: byte-identical to --backend local', async () => {
    const out = join(dir, `queue-${n}-files.npy`);
    const r = await runCli(['gradient', '--backend', 'queue', '--shards', String(shards), '--params', paramsFile, '--indices', indicesFile, '--out', out], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`queue, ${shards} shards`);
    expect(readFileSync(out).equals(local.files as Buffer)).toBe(true);
  });

  it('QueueClient.gradient in-process: the same vector, bitwise, and the submitter leaves no snapshot or result behind', async () => {
    const client = new QueueClient({ redisUrl: url, prefix });
    try {
      // No ping first: the client waits for its fail-fast connection before its first command.
      expect(await client.workersOnline()).toBe(n);
      const r = await client.gradient(filesParams, filesIndices, 1e-4, shards);
      expect(Buffer.from(encodeNpy(r.gradient)).equals(local.files as Buffer)).toBe(true);
      expect(bytesOf(r.gradient).byteLength).toBe(39_760 * 8);
      expect(Number.isFinite(r.loss)).toBe(true);
    } finally {
      await client.close();
    }
    // Only BullMQ's own bookkeeping may remain: no params snapshot, holders set or result.
    expect((await keysUnder(url, prefix)).filter((k) => k.startsWith(`${prefix}:ng:`))).toEqual([]);
  });

  if (n > 1) {
    it(`the shards are spread: at least 2 of the ${n} workers hold shard locks across three gradients`, async () => {
      // Which worker takes which shard is up to BullMQ (whoever pops first), so a single gradient
      // might, rarely, be taken by one worker alone; three in a row all taken by one would mean
      // the others are not consuming.
      const client = new QueueClient({ redisUrl: url, prefix });
      const watch = watchShardLocks(prefix);
      try {
        for (let k = 0; k < 3; k++) await client.gradient(filesParams, filesIndices, 1e-4, shards);
      } finally {
        await client.close();
      }
      const holders = await watch.stop();
      expect(holders.size).toBeGreaterThanOrEqual(2);
    });
  }
});
