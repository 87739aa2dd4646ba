/**
 * numgrad runs unchanged on a Redis Cluster: three masters of this test's own, numgrad given them as
 * `redis+cluster://host:port,host:port,host:port` and the hash-tagged prefix `{ngtest}`. A seeded
 * training through the queue (a `numgrad worker` process and `numgrad train --backend queue`) ends
 * with params.npy byte-identical to `train --backend local` with the same flags, and every key it
 * wrote is on the one node that owns the slot of `{ngtest}`. An untagged prefix is refused at once.
 * The servers are killed and their files removed afterwards (nothing touches the shared Redis).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildConfig } from '../../src/io/config.js';
import { redisAnswers } from '../../src/io/redis.js';
import { QueueClient } from '../../src/producer/queue-client.js';
import { QueueWorker } from '../../src/workers/queue-worker.js';
import { createLogger } from '../../src/io/logger.js';
import { type RedisCluster, startRedisCluster } from '../helpers/redis-cluster.js';
import { type CliProcess, runCli, sleep, startCli } from '../helpers/redis.js';
import { metricsOf } from '../helpers/data.js';

const PREFIX = '{ngtest}';
const FLAGS = ['--iters', '60', '--eval-every', '30', '--seed', '11'];

let cluster: RedisCluster;
let dir: string;
let worker: CliProcess | undefined;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'numgrad-redis-cluster-test-'));
  cluster = await startRedisCluster(3);
}, 60_000);

afterAll(async () => {
  if (worker !== undefined && worker.child.exitCode === null) {
    worker.child.kill('SIGTERM');
    await worker.exited;
  }
  await cluster?.stop();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

describe('Redis Cluster (redis+cluster:// URL, {hash-tagged} prefix)', () => {
  it('answers PING through the cluster client; an untagged prefix or a database number is refused', async () => {
    expect(await redisAnswers(cluster.url, 2_000)).toEqual({ ok: true });
    expect((await redisAnswers(`redis+cluster://127.0.0.1:1`, 500)).ok).toBe(false);
    expect(buildConfig({ redis: cluster.url, prefix: PREFIX }, {}).redisUrl).toBe(cluster.url);
    expect(() => buildConfig({ redis: cluster.url }, {})).toThrow(/--prefix \/ NUMGRAD_PREFIX must be a \{hash-tagged\} prefix .*got "numgrad"/);
    expect(() => buildConfig({ redis: `${cluster.url}/2`, prefix: PREFIX }, {})).toThrow(/--redis \/ REDIS_URL .*database 0 only/);
    expect(() => buildConfig({ redis: 'redis+cluster://:pw@host:x', prefix: PREFIX }, {})).toThrow(/redis\+cluster:\/\/\*\*\*@host:x/);
    expect(() => new QueueWorker({ redisUrl: cluster.url, prefix: 'ngtest', threads: 1, logger: createLogger('silent', 'test') })).toThrow(/hash-tagged/);
    const client = new QueueClient({ redisUrl: cluster.url, prefix: PREFIX });
    try {
      await client.ping();
      expect(await client.workersOnline()).toBe(0);
    } finally {
      await client.close();
    }
  });

  it('a seeded queue training on the cluster ends with the local backend\'s params, bit for bit', async () => {
    const env = { prefix: PREFIX, url: cluster.url };
    const local = await runCli(['train', '--backend', 'local', '--threads', '2', ...FLAGS, '--out', join(dir, 'local')], env);
    expect(local.code, local.stderr).toBe(0);

    worker = startCli(['worker', '--threads', '1'], env);
    const client = new QueueClient({ redisUrl: cluster.url, prefix: PREFIX });
    try {
      await client.ping();
      const deadline = Date.now() + 30_000;
      while ((await client.workersOnline()) < 1) {
        if (worker.child.exitCode !== null || Date.now() > deadline) throw new Error(`numgrad worker not online: ${worker.stdout()}${worker.stderr()}`);
        await sleep(100);
      }
    } finally {
      await client.close();
    }

    const queued = await runCli(['train', '--backend', 'queue', ...FLAGS, '--out', join(dir, 'queue'), '--run-id', 'cluster1'], env);
    expect(queued.code, queued.stderr).toBe(0);
    expect(queued.stderr).toMatch(/backend: queue at redis\+cluster:\/\/127\.0\.0\.1:\d+,127\.0\.0\.1:\d+,127\.0\.0\.1:\d+ \(prefix \{ngtest\}\), 1 worker process/);
    expect(readFileSync(join(dir, 'queue', 'params.npy')).equals(readFileSync(join(dir, 'local', 'params.npy'))), 'params.npy byte-identical to the local run').toBe(true);
    expect(metricsOf(join(dir, 'queue', 'metrics.jsonl'))).toEqual(metricsOf(join(dir, 'local', 'metrics.jsonl')));

    worker.child.kill('SIGTERM');
    expect((await worker.exited).code, worker.stderr()).toBe(0);

    // One slot for everything: the node owning {ngtest}'s slot holds every key, the others none.
    const sizes = await cluster.each((n) => n.dbsize());
    const slot = (await cluster.each((n) => n.cluster('KEYSLOT', PREFIX)))[0];
    const owners = await cluster.each(async (n) => (await n.cluster('COUNTKEYSINSLOT', slot)) as number);
    expect(sizes.filter((s) => s > 0)).toHaveLength(1);
    expect(owners).toEqual(sizes);
    const keys = (await cluster.each((n) => n.keys('*'))).flat();
    expect(keys.every((k) => k.startsWith(`${PREFIX}:`)), keys.join(' ')).toBe(true);
    expect(keys).toContain(`${PREFIX}:ng:run:cluster1:params`);
    // ~55 s on 2 busy cores; the limit leaves room for a machine shared with the rest of the suite.
  }, 180_000);
});
