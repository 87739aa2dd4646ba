/**
 * The dashboard against a hostile web page. DNS rebinding: a page on evil.example whose name is
 * re-pointed at 127.0.0.1 reaches a loopback dashboard from the user's browser, sending
 * `Host: evil.example`; the dashboard answers only the names it is served under (loopback names,
 * its --host, --public-url hosts) and 421 to any other, before credentials are even looked at.
 * `--allow-actions` (bull-board may clean, remove, pause) needs credentials wherever it is bound,
 * and a state-changing request from another Origin is refused.
 */
import { request } from 'node:http';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Dashboard, startDashboard } from '../../src/dashboard/server.js';
import { buildConfig } from '../../src/io/config.js';
import { main } from '../../src/producer/cli.js';
import type { Output } from '../../src/producer/output.js';
import { cleanup, closeRedis, redisUrl, uniquePrefix } from '../helpers/redis.js';

const silent = pino({ level: 'silent' });
let url: string;
const prefix = uniquePrefix();
const open: Dashboard[] = [];

beforeAll(async () => {
  url = await redisUrl();
});
afterAll(async () => {
  for (const d of open) await d.close();
  await cleanup(prefix, url);
  await closeRedis();
});

async function dashboard(extra: Partial<Parameters<typeof startDashboard>[0]> = {}): Promise<Dashboard> {
  const d = await startDashboard({ config: buildConfig({ redis: url, prefix }, {}), port: 0, host: '127.0.0.1', allowActions: false, logger: silent, ...extra });
  open.push(d);
  return d;
}

/** A request to 127.0.0.1:port with the Host (and other headers) a browser on another name would send. */
function send(port: number, path: string, headers: Record<string, string>, method = 'GET'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('Host check (DNS rebinding)', () => {
  it('a loopback dashboard without credentials answers loopback names and 421 to any other Host', async () => {
    const d = await dashboard();
    for (const path of ['/', '/api/runs', '/api/status', '/metrics', '/queues/api/queues']) {
      const evil = await send(d.port, path, { Host: `evil.example:${d.port}` });
      expect(evil.status, `${path} as evil.example`).toBe(421);
      expect(evil.body).toContain('misdirected request: this dashboard answers loopback');
      expect((await send(d.port, path, { Host: `rebind.attacker.test` })).status, `${path} as rebind.attacker.test`).toBe(421);
      for (const host of [`localhost:${d.port}`, `127.0.0.1:${d.port}`, `[::1]:${d.port}`, 'LOCALHOST.']) {
        expect((await send(d.port, path, { Host: host })).status, `${path} as ${host}`).not.toBe(421);
      }
      // Bound to loopback, another address is not a name it is served under either.
      expect((await send(d.port, path, { Host: `203.0.113.7:${d.port}` })).status, `${path} as 203.0.113.7`).toBe(421);
    }
    // A container's health check may name the container: /healthz answers any Host.
    expect((await send(d.port, '/healthz', { Host: 'dashboard:3000' })).status).toBe(200);
  });

  it('bound to 0.0.0.0 (with credentials, as it must be) it answers IP addresses, loopback and --public-url names only', async () => {
    const token = 'tok-' + uniquePrefix();
    const d = await dashboard({ host: '0.0.0.0', auth: { token }, publicUrls: ['http://numgrad.internal:3000'] });
    const auth = { Authorization: `Bearer ${token}` };
    for (const host of [`203.0.113.7:${d.port}`, '[2001:db8::1]:3000', `localhost:${d.port}`, 'numgrad.internal']) {
      expect((await send(d.port, '/api/runs', { Host: host, ...auth })).status, host).toBe(200);
    }
    expect((await send(d.port, '/api/runs', { Host: `evil.example:${d.port}`, ...auth })).status).toBe(421);
  });

  it('--public-url adds its host (any port), nothing else', async () => {
    const d = await dashboard({ publicUrls: ['https://dash.example.com/numgrad', 'http://dashboard:3000'] });
    expect((await send(d.port, '/api/runs', { Host: 'dash.example.com' })).status).toBe(200);
    expect((await send(d.port, '/api/runs', { Host: 'dashboard:3000' })).status).toBe(200);
    expect((await send(d.port, '/api/runs', { Host: 'example.com' })).status).toBe(421);
    await expect(dashboard({ publicUrls: ['dash.example.com'] })).rejects.toThrow('numgrad dashboard: --public-url must be an absolute URL such as https://dashboard.example.com, got "dash.example.com"');
  });

  it('the Host check comes before credentials: the right token under a foreign Host is still 421', async () => {
    const token = 'tok-' + uniquePrefix();
    const d = await dashboard({ auth: { token } });
    expect((await send(d.port, '/api/runs', { Host: 'evil.example', Authorization: `Bearer ${token}` })).status).toBe(421);
    expect((await send(d.port, '/api/runs', { Host: `127.0.0.1:${d.port}`, Authorization: `Bearer ${token}` })).status).toBe(200);
  });
});

describe('--allow-actions needs credentials wherever bound', () => {
  it('on loopback without credentials it refuses to start, naming the variables', async () => {
    await expect(dashboard({ allowActions: true })).rejects.toThrow('numgrad dashboard: --allow-actions needs DASHBOARD_TOKEN or DASHBOARD_USER/DASHBOARD_PASSWORD, on loopback too');
    const errors: string[] = [];
    const out: Output = { line: () => undefined, json: () => undefined, error: (t) => errors.push(t) };
    // The CLI builds its config from this process's environment: make sure no credentials are there.
    const saved = { t: process.env.DASHBOARD_TOKEN, u: process.env.DASHBOARD_USER, p: process.env.DASHBOARD_PASSWORD };
    delete process.env.DASHBOARD_TOKEN;
    delete process.env.DASHBOARD_USER;
    delete process.env.DASHBOARD_PASSWORD;
    try {
      expect(await main(['--redis', url, '--prefix', prefix, 'dashboard', '--port', '0', '--allow-actions'], out)).toBe(2);
    } finally {
      if (saved.t !== undefined) process.env.DASHBOARD_TOKEN = saved.t;
      if (saved.u !== undefined) process.env.DASHBOARD_USER = saved.u;
      if (saved.p !== undefined) process.env.DASHBOARD_PASSWORD = saved.p;
    }
    expect(errors).toEqual([expect.stringMatching(/^error: numgrad dashboard: --allow-actions needs DASHBOARD_TOKEN or DASHBOARD_USER\/DASHBOARD_PASSWORD, on loopback too/)]);
  });

  it('with a token: actions need it, and one sent from another Origin is refused (403)', async () => {
    const token = 'tok-' + uniquePrefix();
    const d = await dashboard({ allowActions: true, auth: { token } });
    const host = `127.0.0.1:${d.port}`;
    expect((await send(d.port, '/queues/api/queues/pause', { Host: host }, 'PUT')).status).toBe(401);
    const crossSite = await send(d.port, '/queues/api/queues/pause', { Host: host, Origin: 'http://evil.example', Authorization: `Bearer ${token}` }, 'PUT');
    expect(crossSite.status).toBe(403);
    expect(crossSite.body).toContain('cross-origin request refused');
    expect((await send(d.port, '/queues/api/queues/pause', { Host: host, Origin: 'null', Authorization: `Bearer ${token}` }, 'PUT')).status).toBe(403);
    expect((await send(d.port, '/queues/api/queues/pause', { Host: host, Origin: `http://${host}`, Authorization: `Bearer ${token}` }, 'PUT')).status).toBe(200);
    expect((await send(d.port, '/queues/api/queues/resume', { Host: host, Authorization: `Bearer ${token}` }, 'PUT')).status).toBe(200);
  });
});
