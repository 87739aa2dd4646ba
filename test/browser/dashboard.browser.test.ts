import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { type Browser, chromium } from 'playwright-core';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { trainConfig } from '../../src/core/training.js';
import { type Dashboard, startDashboard } from '../../src/dashboard/server.js';
import { buildConfig } from '../../src/io/config.js';
import { QueueClient } from '../../src/producer/queue-client.js';
import { QueueWorker } from '../../src/workers/queue-worker.js';
import { ROOT, cleanup, closeRedis, redisUrl, uniquePrefix } from '../helpers/redis.js';

/** Debian's Chromium (.ci/run installs it when missing); playwright-core downloads no browser of its own. */
const CHROMIUM = '/usr/bin/chromium';
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const ARTIFACTS = join(ROOT, 'test-artifacts');

let url: string;
const prefix = uniquePrefix();
let worker: QueueWorker | undefined;
let client: QueueClient | undefined;
let dashboard: Dashboard | undefined;
let browser: Browser | undefined;
let runId = '';

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does this)`);
  url = await redisUrl();
  const silent = pino({ level: 'silent' });
  worker = new QueueWorker({ redisUrl: url, prefix, threads: 2, logger: silent });
  client = new QueueClient({ redisUrl: url, prefix });
  await worker.ready();
  dashboard = await startDashboard({ config: buildConfig({ redis: url, prefix }, {}), port: 0, host: '127.0.0.1', allowActions: false, logger: silent });
  runId = await client.startRun(trainConfig({ iters: 300, evalEvery: 50 }), 4, `browser-${prefix}`);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS, headless: true });
});

afterAll(async () => {
  await browser?.close();
  await dashboard?.close();
  if (client !== undefined && runId) await client.cancel(runId).catch(() => undefined);
  await client?.close();
  await worker?.close();
  await cleanup(prefix, url);
  await closeRedis();
});

describe('dashboard in a browser (Debian Chromium via playwright-core)', () => {
  it('the training page draws the loss live, the accuracy per epoch and the workers; bull-board lists the queues', async () => {
    const page = await (browser as Browser).newPage({ viewport: { width: 1360, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const d = dashboard as Dashboard;
    await page.goto(`${d.url}/`);
    // With no ?run=, the page picks the running run.
    await page.waitForSelector(`body[data-run="${runId}"]`, { timeout: 20_000 });
    // The page exposes its point counts as data attributes; polled from here (no DOM types in this file).
    const count = async (chart: string): Promise<number> => Number(await page.getAttribute(chart, 'data-points'));
    const until = async (what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<void> => {
      const deadline = Date.now() + timeoutMs;
      while (!(await ok())) {
        if (Date.now() > deadline) throw new Error(`page: ${what} not within ${timeoutMs} ms`);
        await page.waitForTimeout(100);
      }
    };
    await until('a first loss point', async () => (await count('#loss-chart')) > 0, 60_000);
    const first = await count('#loss-chart');
    // Live: more points appear without a reload while the run advances.
    await until('more loss points', async () => (await count('#loss-chart')) > first, 60_000);
    const second = await count('#loss-chart');
    expect(second).toBeGreaterThan(first);
    // Epochs at iterations 0 and 50 in (generous: the machine may be busy with other test files); a canvas drawn by uPlot for each chart.
    await until('two epochs and 60 iterations', async () => (await count('#acc-chart')) >= 2 && (await count('#loss-chart')) >= 60, 150_000);
    expect(await page.locator('#loss-chart canvas').count()).toBe(1);
    expect(await page.locator('#acc-chart canvas').count()).toBe(1);
    expect(await page.textContent('#workers')).toBe('1');
    expect(await page.textContent('#redis')).toBe('ok');
    expect(Number(await page.textContent('#rate'))).toBeGreaterThan(0);
    expect(await page.textContent('#run-test')).toMatch(/%$/);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

    await page.goto(`${d.url}/queues`);
    await page.getByText('shards', { exact: true }).first().waitFor({ timeout: 20_000 });
    await page.getByText('reduce', { exact: true }).first().waitFor({ timeout: 20_000 });
    await page.screenshot({ path: join(ARTIFACTS, 'bull-board.png') });
    expect(errors).toEqual([]);
  }, 280_000);
});
