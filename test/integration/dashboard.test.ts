import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainConfig } from '../../src/core/training.js';
import { type Dashboard, startDashboard } from '../../src/dashboard/server.js';
import { type Config, buildConfig } from '../../src/io/config.js';
import type { Logger } from '../../src/io/logger.js';
import { QueueClient } from '../../src/producer/queue-client.js';
import { QueueWorker } from '../../src/workers/queue-worker.js';
import { CLI, ROOT, cleanup, closeRedis, redisUrl, sleep, startRedisServer, uniquePrefix } from '../helpers/redis.js';

/** A pino logger that keeps every line it writes (to check that no credential reaches a log). */
function capturingLogger(): { logger: Logger; text: () => string } {
  let text = '';
  const stream = new Writable({
    write(chunk, _enc, cb) {
      text += chunk.toString();
      cb();
    },
  });
  const logger: Logger = pino({ level: 'debug' }, stream);
  return { logger, text: () => text };
}

const silent = pino({ level: 'silent' });

/** The value of one Prometheus sample line (`name{labels} value`), or undefined. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels} `));
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
}

let url: string;
const prefixes: string[] = [];
const open: { close(): Promise<void> }[] = [];

beforeAll(async () => {
  url = await redisUrl();
});

afterAll(async () => {
  for (const o of open.reverse()) await o.close();
  for (const p of prefixes) await cleanup(p, url);
  await closeRedis();
});

function config(prefix: string, redis = url): Config {
  return buildConfig({ redis, prefix }, {});
}

async function dashboard(cfg: Config, extra: Partial<Parameters<typeof startDashboard>[0]> = {}): Promise<Dashboard> {
  const d = await startDashboard({ config: cfg, port: 0, host: '127.0.0.1', allowActions: false, logger: silent, ...extra });
  open.push(d);
  return d;
}

describe('dashboard against real Redis', () => {
  it('/healthz answers ok; /metrics shows job counts, workers, and a loss gauge that changes during a run; the run API pages by ?from=', async () => {
    const prefix = uniquePrefix();
    prefixes.push(prefix);
    const cfg = config(prefix);
    const d = await dashboard(cfg);
    const health = await fetch(`${d.url}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ redis: 'ok' });

    const worker = new QueueWorker({ redisUrl: url, prefix, threads: 1, logger: silent });
    const client = new QueueClient({ redisUrl: url, prefix });
    try {
      await client.ping();
      await worker.ready();
      const id = await client.startRun(trainConfig({ iters: 40, evalEvery: 1000 }), 2, `dash-${prefix}`);
      const losses = new Set<number>();
      let text = '';
      let sawQueuedShards = false;
      const deadline = Date.now() + 90_000;
      while (Date.now() < deadline) {
        const res = await fetch(`${d.url}/metrics`);
        expect(res.status).toBe(200);
        expect(res.headers.get('content-type')).toMatch(/text\/plain/);
        text = await res.text();
        const loss = sample(text, 'numgrad_run_loss', `{run="${id}"}`);
        if (loss !== undefined) losses.add(loss);
        const pending = ['waiting', 'active', 'waiting-children'].map((s) => sample(text, 'numgrad_queue_jobs', `{queue="shards",state="${s}"}`) ?? 0).reduce((a, b) => a + b, 0);
        if (pending > 0) sawQueuedShards = true;
        if (sample(text, 'numgrad_run_running', `{run="${id}"}`) === 0) break;
        await sleep(150);
      }
      expect(sample(text, 'numgrad_run_running', `{run="${id}"}`), 'the run should end within 90 s').toBe(0);
      expect(sample(text, 'numgrad_redis_up')).toBe(1);
      for (const queue of ['shards', 'reduce']) {
        for (const state of ['active', 'completed', 'delayed', 'failed', 'waiting', 'waiting-children']) {
          expect(sample(text, 'numgrad_queue_jobs', `{queue="${queue}",state="${state}"}`), `${queue}/${state}`).toBeTypeOf('number');
        }
      }
      expect(sawQueuedShards, 'some shards were seen queued or active').toBe(true);
      expect(sample(text, 'numgrad_workers', '{queue="shards"}')).toBe(1);
      expect(losses.size, `distinct loss values seen: ${[...losses].join(', ')}`).toBeGreaterThan(1);
      expect(sample(text, 'numgrad_run_step', `{run="${id}"}`)).toBe(40);
      // Timings come from the queues' event streams (the observer), not from this process's worker.
      // Step 0 is a flow of 2 shards; alone on the queue, the worker then drives steps 1–39 itself
      // (train-drive), and the observer times them by the drive's progress events: 40 steps timed.
      expect(sample(text, 'numgrad_shards_completed_total')).toBeGreaterThanOrEqual(2);
      expect(sample(text, 'numgrad_shard_duration_seconds_count', '{job="fd-shard"}')).toBeGreaterThan(0);
      expect(sample(text, 'numgrad_flow_duration_seconds_count', '{job="train-step"}')).toBe(40);

      const all = (await (await fetch(`${d.url}/api/runs/${id}/metrics?from=0`)).json()) as { iters: number[]; losses: number[]; next: number; run: { state: string } };
      expect(all.iters).toEqual([...Array(40).keys()]);
      expect(all.losses.every(Number.isFinite)).toBe(true);
      expect(all.next).toBe(40);
      expect(all.run.state).toBe('done');
      const tail = (await (await fetch(`${d.url}/api/runs/${id}/metrics?from=35`)).json()) as { iters: number[] };
      expect(tail.iters).toEqual([35, 36, 37, 38, 39]);
      expect((await fetch(`${d.url}/api/runs/${id}/metrics?from=-1`)).status).toBe(400);
      expect((await fetch(`${d.url}/api/runs/no-such-run/metrics`)).status).toBe(404);
      const runs = (await (await fetch(`${d.url}/api/runs`)).json()) as { runs: { id: string }[] };
      expect(runs.runs.map((r) => r.id)).toContain(id);
      const status = (await (await fetch(`${d.url}/api/status`)).json()) as { redis: string; workers: { shards: number }; readOnly: boolean };
      expect(status).toMatchObject({ redis: 'ok', workers: { shards: 1 }, readOnly: true });
    } finally {
      await client.close();
      await worker.close();
    }
  }, 120_000);

  it('/healthz says 503 {redis:"down"} once its Redis stops, and /metrics still answers', async () => {
    const server = await startRedisServer();
    try {
      const d = await dashboard(config(uniquePrefix(), server.url));
      expect((await fetch(`${d.url}/healthz`)).status).toBe(200);
      await server.kill9();
      const res = await fetch(`${d.url}/healthz`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({ redis: 'down' });
      const m = await fetch(`${d.url}/metrics`);
      expect(m.status).toBe(200);
      expect(sample(await m.text(), 'numgrad_redis_up')).toBe(0);
      await d.close();
      await d.close(); // safe twice
    } finally {
      await server.stop();
    }
  });
});

describe('dashboard authentication', () => {
  it('refuses to listen on 0.0.0.0 without credentials (and names the variables)', async () => {
    await expect(dashboard(config(uniquePrefix()), { host: '0.0.0.0' })).rejects.toThrow('refusing to listen on 0.0.0.0 without DASHBOARD_TOKEN or DASHBOARD_USER/DASHBOARD_PASSWORD');
  });

  it('`numgrad dashboard --host 0.0.0.0` without credentials exits non-zero with that message', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, REDIS_URL: url, NUMGRAD_PREFIX: uniquePrefix() };
    delete env.DASHBOARD_TOKEN;
    delete env.DASHBOARD_USER;
    delete env.DASHBOARD_PASSWORD;
    const child = spawn(process.execPath, [CLI, 'dashboard', '--host', '0.0.0.0', '--port', '0'], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
    expect(code).not.toBe(0);
    expect(stderr).toContain('refusing to listen on 0.0.0.0 without DASHBOARD_TOKEN or DASHBOARD_USER/DASHBOARD_PASSWORD');
  });

  it('with a token on 0.0.0.0: no or a wrong token is 401, the right one (header, ?token= then its cookie) is 200; /healthz stays open; the token is never logged', async () => {
    const token = 'tok-' + uniquePrefix() + '-secret';
    const { logger, text } = capturingLogger();
    const d = await dashboard(config(uniquePrefix()), { host: '0.0.0.0', auth: { token }, logger });
    const base = `http://127.0.0.1:${d.port}`;
    for (const path of ['/', '/api/runs', '/api/status', '/metrics', '/queues', '/queues/api/queues']) {
      expect((await fetch(base + path)).status, `${path} without a token`).toBe(401);
      expect((await fetch(base + path, { headers: { Authorization: 'Bearer wrong' } })).status, `${path} with a wrong token`).toBe(401);
      expect((await fetch(`${base}${path}?token=wrong`)).status, `${path}?token=wrong`).toBe(401);
      expect((await fetch(base + path, { headers: { Authorization: `Bearer ${token}` } })).status, `${path} with the token`).toBe(200);
    }
    const viaQuery = await fetch(`${base}/?token=${token}`);
    expect(viaQuery.status).toBe(200);
    const cookie = viaQuery.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(/^numgrad_dashboard=[0-9a-f]{64}; Path=\/; HttpOnly; SameSite=Strict$/);
    expect(cookie).not.toContain(token);
    // bull-board's own requests carry the cookie, not the token.
    expect((await fetch(`${base}/queues/api/queues`, { headers: { Cookie: cookie.split(';')[0] } })).status).toBe(200);
    expect((await fetch(`${base}/queues/api/queues`, { headers: { Cookie: 'numgrad_dashboard=' + '0'.repeat(64) } })).status).toBe(401);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    expect(text()).toContain('dashboard request');
    expect(text()).not.toContain(token);
  });

  it('with basic auth: none or a wrong password is 401 with a Basic challenge, the right pair is 200; never logged', async () => {
    const user = 'ada';
    const password = 'pw-' + uniquePrefix();
    const { logger, text } = capturingLogger();
    const d = await dashboard(config(uniquePrefix()), { auth: { user, password }, logger });
    const basic = (u: string, p: string): Record<string, string> => ({ Authorization: 'Basic ' + Buffer.from(`${u}:${p}`).toString('base64') });
    for (const path of ['/', '/api/runs', '/metrics', '/queues']) {
      const none = await fetch(d.url + path);
      expect(none.status, `${path} without credentials`).toBe(401);
      expect(none.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
      expect((await fetch(d.url + path, { headers: basic(user, 'wrong') })).status, `${path} with a wrong password`).toBe(401);
      expect((await fetch(d.url + path, { headers: basic('eve', password) })).status, `${path} with a wrong user`).toBe(401);
      expect((await fetch(d.url + path, { headers: basic(user, password) })).status, `${path} with the right pair`).toBe(200);
    }
    expect(text()).not.toContain(password);
    expect(text()).not.toContain(Buffer.from(`${user}:${password}`).toString('base64'));
  });

  it('bull-board is read-only unless allowActions', async () => {
    const prefix = uniquePrefix();
    const ro = await dashboard(config(prefix));
    // Actions need credentials wherever the dashboard is bound (test/integration/dashboard-hosts.test.ts).
    const token = 'tok-' + uniquePrefix();
    const rw = await dashboard(config(prefix), { allowActions: true, auth: { token } });
    const modes = async (d: Dashboard): Promise<boolean[]> =>
      ((await (await fetch(`${d.url}/queues/api/queues`, { headers: { Authorization: `Bearer ${token}` } })).json()) as { queues: { readOnlyMode: boolean }[] }).queues.map((q) => q.readOnlyMode);
    expect(await modes(ro)).toEqual([true, true]);
    expect(await modes(rw)).toEqual([false, false]);
  });
});
