/**
 * A Redis Cluster of the test's own: `n` masters (`redis-server --cluster-enabled yes`, no
 * persistence) on free loopback ports, joined by `redis-cli --cluster create`, ready once every node
 * reports `cluster_state:ok`. stop() kills the servers and removes their directory (nodes-*.conf).
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort, sleep } from './redis.js';

export interface RedisCluster {
  /** `redis+cluster://127.0.0.1:p1,127.0.0.1:p2,…`: numgrad's form for --redis / REDIS_URL. */
  readonly url: string;
  readonly ports: number[];
  /** Runs `command` on every node (e.g. DBSIZE); one answer per node, in port order. */
  each<T>(command: (node: Redis) => Promise<T>): Promise<T[]>;
  /** SIGKILL every node, wait for their exits, remove the directory; safe twice. */
  stop(): Promise<void>;
}

export function hasClusterBinaries(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0 && spawnSync('redis-cli', ['--version']).status === 0;
}

export async function startRedisCluster(n = 3, timeoutMs = 30_000): Promise<RedisCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'numgrad-redis-cluster-'));
  const children: ChildProcess[] = [];
  const killNow = (): void => children.forEach((c) => c.exitCode === null && c.signalCode === null && c.kill('SIGKILL'));
  // An exit handler can only do sync work: the last resort if stop() never ran.
  process.once('exit', killNow);
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? undefined : new Promise<void>((res) => {
        c.once('exit', () => res());
        c.kill('SIGKILL');
      }))));
      process.off('exit', killNow);
      rmSync(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  const ports: number[] = [];
  const logs: string[] = [];
  try {
    for (let i = 0; i < n; i++) {
      const port = await freePort();
      // The cluster bus defaults to port + 10000, which may be past 65535 for an ephemeral port: pick it too.
      const bus = await freePort();
      ports.push(port);
      const c = spawn('redis-server', [
        '--port', String(port), '--cluster-port', String(bus), '--bind', '127.0.0.1', '--cluster-enabled', 'yes',
        '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--dir', dir, '--save', '', '--appendonly', 'no',
      ], { stdio: ['ignore', 'pipe', 'pipe'] });
      const k = logs.push('') - 1;
      c.stdout?.on('data', (d: Buffer) => (logs[k] += d.toString()));
      c.stderr?.on('data', (d: Buffer) => (logs[k] += d.toString()));
      children.push(c);
    }
    const deadline = Date.now() + timeoutMs;
    const nodes = ports.map((p) => new Redis({ host: '127.0.0.1', port: p, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 }));
    nodes.forEach((c) => c.on('error', () => undefined));
    try {
      for (const node of nodes) {
        while ((await node.ping().catch(() => '')) !== 'PONG') {
          if (Date.now() > deadline || children.some((c) => c.exitCode !== null)) throw new Error(`redis-server did not start:\n${logs.join('\n').slice(-2000)}`);
          await sleep(50);
        }
      }
      const create = spawnSync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'], { encoding: 'utf8', timeout: timeoutMs });
      if (create.status !== 0) throw new Error(`redis-cli --cluster create failed (${create.status}): ${create.stdout.slice(-1000)}${create.stderr}`);
      for (const node of nodes) {
        while (!/cluster_state:ok/.test(await node.cluster('INFO').catch(() => ''))) {
          if (Date.now() > deadline) throw new Error(`cluster_state not ok within ${timeoutMs} ms:\n${await node.cluster('INFO').catch((e: unknown) => String(e))}`);
          await sleep(100);
        }
      }
    } finally {
      nodes.forEach((c) => c.disconnect());
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return {
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    ports,
    each: async (command) => {
      const out = [];
      for (const p of ports) {
        const node = new Redis({ host: '127.0.0.1', port: p, maxRetriesPerRequest: 1 });
        try {
          out.push(await command(node));
        } finally {
          node.disconnect();
        }
      }
      return out;
    },
    stop,
  };
}
