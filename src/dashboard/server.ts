import { createBullBoard } from '@bull-board/api';
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter';
import { FastifyAdapter } from '@bull-board/fastify';
import { Queue } from 'bullmq';
import Fastify, { type FastifyInstance } from 'fastify';
import { QUEUES } from '../core/contract.js';
import { NumgradError } from '../core/errors.js';
import type { Config, DashboardCredentials } from '../io/config.js';
import type { Logger } from '../io/logger.js';
import { type Connection, connect, sanitize, withTimeout } from '../io/redis.js';
import { Keys } from '../queue/keys.js';
import { evaluationsByIter } from '../queue/run-evaluations.js';
import { Store } from '../queue/store.js';
import { loadAssets } from './assets.js';
import { DashboardAuth, redactQueryToken } from './auth.js';
import { freePort } from './free-port.js';
import { HostCheck } from './host-check.js';
import { DashboardMetrics, METRICS_RUNS, type Snapshot } from './metrics.js';
import { QueueObserver } from './observer.js';

export interface DashboardOptions {
  readonly config: Config;
  /** TCP port; 0 picks a free one. */
  readonly port: number;
  /** Interface to bind. Anything but loopback needs credentials. */
  readonly host: string;
  /** Let bull-board retry, promote, clean and remove jobs. Default: read-only. */
  readonly allowActions: boolean;
  readonly logger: Logger;
  /** Credentials; default `config.dashboardAuth` (DASHBOARD_TOKEN, DASHBOARD_USER/DASHBOARD_PASSWORD). */
  readonly auth?: DashboardCredentials;
  /** When `port` is taken, try this many following ports. Default 0 (a taken port is an error). */
  readonly portTries?: number;
  /** URLs the dashboard is reached under besides loopback and `host` (a proxy's, a service name's): their hosts are answered, any other Host gets 421. */
  readonly publicUrls?: readonly string[];
}

export interface Dashboard {
  /** `http://host:port` (loopback shown as 127.0.0.1). */
  readonly url: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Runs shown on the page and in /api/runs. */
const LIST_RUNS = 50;
const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;

/**
 * The dashboard: a training page (runs, live loss and accuracy curves, workers, shards per second),
 * bull-board for the two queues at /queues, Prometheus metrics at /metrics and /healthz. It reads
 * Redis only: it can run anywhere that reaches Redis, beside or apart from the workers.
 */
export async function startDashboard(opts: DashboardOptions): Promise<Dashboard> {
  const { config, logger } = opts;
  // Before anything connects: a public bind without credentials never starts.
  const auth = new DashboardAuth(opts.host, opts.auth ?? config.dashboardAuth ?? {}, opts.allowActions);
  const hosts = new HostCheck(opts.host, opts.publicUrls);
  const assets = loadAssets();

  // Fail-fast commands: a request while Redis is away answers 503 at once instead of hanging.
  const conn: Connection = connect(config.redisUrl, 'producer');
  const store = new Store(conn, new Keys(config.prefix));
  const queues = [QUEUES.shards, QUEUES.reduce].map((name) => {
    // skipMetasUpdate: an observer must not rewrite the queue's meta (its events cap among them).
    const q = new Queue(name, { connection: conn, prefix: config.prefix, skipMetasUpdate: true });
    q.on('error', () => undefined);
    return q;
  });

  const ping = async (): Promise<boolean> => {
    try {
      return (await withTimeout(conn.ping(), 1_000)) === 'PONG';
    } catch {
      return false;
    }
  };
  const snapshot = async (): Promise<Snapshot> => {
    if (!(await ping())) return { redis: false, jobs: {}, workers: {}, runs: [] };
    try {
      const [counts, workers, runs] = await Promise.all([
        Promise.all(queues.map((q) => q.getJobCounts())),
        Promise.all(queues.map((q) => q.getWorkersCount())),
        store.listRuns(METRICS_RUNS),
      ]);
      return {
        redis: true,
        jobs: Object.fromEntries(queues.map((q, i) => [q.name, counts[i]])),
        workers: Object.fromEntries(queues.map((q, i) => [q.name, workers[i]])),
        runs,
      };
    } catch {
      return { redis: false, jobs: {}, workers: {}, runs: [] };
    }
  };

  // The observer feeds the metrics' histograms; the metrics read its rate at scrape time.
  const metrics: DashboardMetrics = new DashboardMetrics({ snapshot, shardsPerSecond: (): number => observer.shardsPerSecond() });
  const observer = new QueueObserver({ redisUrl: config.redisUrl, prefix: config.prefix, logger }, metrics);

  const app: FastifyInstance = Fastify({ logger: false, forceCloseConnections: true });

  app.addHook('onRequest', async (req, reply) => {
    const url = new URL(req.url, 'http://dashboard');
    // Before credentials: a page that rebinds its own name to this address is refused whoever it is.
    const refused = hosts.refusal(url.pathname, req.method, req.headers.host, req.headers.origin);
    if (refused !== undefined) return reply.code(refused.status).send({ error: refused.error });
    const verdict = auth.check(url.pathname, { authorization: req.headers.authorization, cookie: req.headers.cookie }, url.searchParams.get('token') ?? undefined);
    if (!verdict.ok) {
      if (verdict.challenge) reply.header('WWW-Authenticate', verdict.challenge);
      return reply.code(401).send({ error: 'unauthorized: send DASHBOARD_TOKEN as `Authorization: Bearer <token>` or ?token=, or basic auth with DASHBOARD_USER/DASHBOARD_PASSWORD' });
    }
    if (verdict.setCookie) reply.header('Set-Cookie', verdict.setCookie);
  });
  // Request lines are logged with any ?token= redacted; headers never are.
  app.addHook('onResponse', async (req, reply) => {
    logger.debug({ method: req.method, url: redactQueryToken(req.url), status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'dashboard request');
  });
  app.setErrorHandler((err: Error & { statusCode?: number }, _req, reply) => {
    const status = err.statusCode ?? 500;
    if (status >= 500) logger.warn({ err: sanitize(err, config.redisUrl) }, 'dashboard request failed');
    return reply.code(status).send({ error: sanitize(err, config.redisUrl) });
  });

  app.get('/', async (_req, reply) => reply.type('text/html; charset=utf-8').header('Cache-Control', 'no-cache').send(assets.page));
  app.get('/vendor/uplot.js', async (_req, reply) => reply.type('application/javascript; charset=utf-8').header('Cache-Control', 'max-age=3600').send(assets.uplotJs));
  app.get('/vendor/uplot.css', async (_req, reply) => reply.type('text/css; charset=utf-8').header('Cache-Control', 'max-age=3600').send(assets.uplotCss));

  app.get('/healthz', async (_req, reply) => {
    const ok = await ping();
    return reply.code(ok ? 200 : 503).send({ redis: ok ? 'ok' : 'down' });
  });

  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()));

  app.get('/api/status', async (_req, reply) => {
    const s = await snapshot();
    return reply.code(s.redis ? 200 : 503).send({
      redis: s.redis ? 'ok' : 'down',
      prefix: config.prefix,
      workers: s.workers,
      jobs: s.jobs,
      shardsPerSecond: observer.shardsPerSecond(),
      shardsCompleted: observer.shardsCompleted,
      steps: observer.stepSeconds(),
      readOnly: !opts.allowActions,
    });
  });

  app.get('/api/runs', async () => ({ runs: await store.listRuns(LIST_RUNS) }));

  app.get<{ Params: { id: string }; Querystring: { from?: string } }>('/api/runs/:id/metrics', async (req, reply) => {
    const { id } = req.params;
    if (!RUN_ID.test(id)) return reply.code(400).send({ error: 'run id: letters, digits, _ or -, 1–64 characters' });
    const from = req.query.from === undefined ? 0 : Number(req.query.from);
    if (!Number.isInteger(from) || from < 0) return reply.code(400).send({ error: `from must be an integer ≥ 0, got ${JSON.stringify(req.query.from)}` });
    // A malformed run hash (listed as corrupt) is a 422 saying what is wrong, not a 500.
    const run = await store.getRun(id).catch((err: unknown) => (err instanceof NumgradError ? err : Promise.reject(err)));
    if (run instanceof NumgradError) return reply.code(422).send({ error: run.message });
    if (run === null) return reply.code(404).send({ error: `no run ${id}` });
    const [lines, evalHash] = await Promise.all([store.metrics(id, from), store.evals(id)]);
    const iters: number[] = [];
    const losses: number[] = [];
    for (const l of lines) {
      const m = JSON.parse(l) as { iter: number; loss: number };
      iters.push(m.iter);
      losses.push(m.loss);
    }
    const evals = evaluationsByIter(evalHash);
    return { run, from, next: from + lines.length, iters, losses, evals };
  });

  const serverAdapter = new FastifyAdapter();
  createBullBoard({
    queues: queues.map((q) => new BullMQAdapter(q, { readOnlyMode: !opts.allowActions, description: q.name === QUEUES.shards ? 'fd-shard and ce-shard jobs' : 'gradient, evaluation and train-step reducers' })),
    serverAdapter,
    options: { uiConfig: { boardTitle: 'numgrad queues' } },
  });
  serverAdapter.setBasePath('/queues');
  await app.register(serverAdapter.registerPlugin(), { prefix: '/queues' });

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      await app.close().catch(() => undefined);
      await observer.close();
      await Promise.all(queues.map((q) => q.close().catch(() => undefined)));
      conn.disconnect();
    })();
    return closing;
  };

  try {
    const port = opts.port === 0 ? 0 : await freePort(opts.host, opts.port, opts.portTries ?? 0);
    await app.listen({ port, host: opts.host });
    await observer.ready();
    const address = app.server.address();
    const bound = typeof address === 'object' && address !== null ? address.port : port;
    const shownHost = opts.host === '0.0.0.0' || opts.host === '::' ? opts.host : opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    logger.info({ host: opts.host, port: bound, auth: auth.describe(), hosts: hosts.describe(), readOnly: !opts.allowActions, prefix: config.prefix }, 'dashboard listening');
    return { url: `http://${shownHost}:${bound}`, port: bound, close };
  } catch (err) {
    await close();
    if (err instanceof NumgradError) throw err;
    const code = (err as { code?: string }).code;
    if (code === 'EADDRINUSE') throw new NumgradError(`numgrad dashboard: port ${opts.port} on ${opts.host} is in use (choose another with --port)`);
    throw err;
  }
}
