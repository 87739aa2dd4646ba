import { availableParallelism } from 'node:os';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { NumgradError } from '../../core/errors.js';
import { type Config, ENV, redactUrl } from '../../io/config.js';
import { compiledSibling } from '../../io/compiled-path.js';
import { OPTIONS } from '../cli-options.js';
import type { Output } from '../output.js';
import type { Child, Supervisor } from '../supervisor.js';

const OP = 'numgrad up';

interface UpFlags {
  workers: number;
  threads?: number;
  dashboard: boolean;
  dashboardPort: number;
  dashboardHost: string;
  /** Seconds. */
  grace: number;
}

/** Resolves when `count` workers listen on the shards queue (false after `timeoutMs`). */
async function waitForWorkers(cfg: Config, count: number, timeoutMs: number, gaveUp: () => boolean): Promise<boolean> {
  const [{ Queue }, { connect }, { QUEUES }] = await Promise.all([import('bullmq'), import('../../io/redis.js'), import('../../core/contract.js')]);
  const conn = connect(cfg.redisUrl, 'producer');
  // skipMetasUpdate: an observer must not rewrite the queue's meta.
  const q = new Queue(QUEUES.shards, { connection: conn, prefix: cfg.prefix, skipMetasUpdate: true });
  // Unheard, BullMQ prints 'error' events with console.error (an auth error's stack shows the password).
  q.on('error', () => undefined);
  try {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !gaveUp()) {
      if ((await q.getWorkersCount().catch(() => 0)) >= count) return true;
      await new Promise((r) => setTimeout(r, 200));
    }
    return false;
  } finally {
    await q.close();
    conn.disconnect();
  }
}

/**
 * `numgrad up`: the docker-compose topology without Docker — N `numgrad worker` processes and the
 * dashboard as children of this one, against the same Redis and prefix. Ctrl-C or SIGTERM stops
 * them all (each worker finishes its active jobs first); a child that dies on its own is reported.
 */
export async function runUp(flags: UpFlags, out: Output, cfg: Config, env: NodeJS.ProcessEnv): Promise<void> {
  const { workers, dashboardPort: port } = flags;
  // Threads per worker: the cores shared out, so N workers on one machine do not oversubscribe it.
  const threads = flags.threads ?? Math.max(1, Math.floor(availableParallelism() / workers));
  const graceMs = flags.grace * 1000;
  const { redisAnswers } = await import('../../io/redis.js');
  const redis = await redisAnswers(cfg.redisUrl, 2_000);
  if (!redis.ok) {
    throw new NumgradError(`${OP}: Redis at ${redactUrl(cfg.redisUrl)} does not answer (${redis.error ?? 'no PONG'}); start one (\`redis-server\`, or \`docker compose up -d redis\` with its port published) or pass --redis / ${ENV.redisUrl}`);
  }

  let requested: 'SIGINT' | 'SIGTERM' | undefined;
  let failed = false;
  let wake: () => void = () => undefined;
  const done = new Promise<void>((res) => (wake = res));
  // Config goes to the children through the environment: a password in argv would show in `ps`.
  const childEnv: NodeJS.ProcessEnv = {
    ...env,
    [ENV.redisUrl]: cfg.redisUrl,
    [ENV.prefix]: cfg.prefix,
    [ENV.logLevel]: cfg.logLevel,
    ...(cfg.mnistDir !== undefined ? { [ENV.mnistDir]: cfg.mnistDir } : {}),
  };
  const sup: Supervisor = new (await import('../supervisor.js')).Supervisor({
    node: process.execPath,
    cli: resolve(compiledSibling(import.meta.url, '../cli.js')),
    env: childEnv,
    out,
    graceMs,
    onUnexpectedExit: (c: Child, how) => {
      out.error(`up: ${c.name} (pid ${c.process.pid}) exited unexpectedly (${typeof how === 'number' ? `code ${how}` : how})`);
      // Without a worker nothing advances: stop the rest rather than look alive.
      if (!sup.all.some((w) => w.name.startsWith('worker') && w.alive)) {
        out.error('up: no worker left; stopping');
        failed = true;
        wake();
      }
    },
  });

  const onSignal = (sig: 'SIGINT' | 'SIGTERM'): void => {
    if (requested !== undefined) {
      out.error('up: stopping now (SIGKILL)');
      sup.kill();
      return;
    }
    requested = sig;
    out.error(`up: ${sig}: stopping ${sup.all.filter((c) => c.alive).length} processes (workers finish their active jobs; ${sig === 'SIGINT' ? 'Ctrl-C' : 'a signal'} again kills them)`);
    // At once, not after `done` wakes: a terminal's Ctrl-C reaches the children too, and their exits
    // must already count as asked for.
    void sup.stop();
    wake();
  };
  const onInt = (): void => onSignal('SIGINT');
  const onTerm = (): void => onSignal('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  try {
    out.line(`up: ${workers} worker(s) × ${threads} thread(s) on Redis ${redactUrl(cfg.redisUrl)}, prefix ${cfg.prefix}`);
    for (let k = 1; k <= workers; k++) {
      const w = sup.start(`worker-${k}`, ['worker', '--threads', String(threads)]);
      out.line(`up: worker-${k} pid ${w.process.pid}`);
    }
    if (flags.dashboard) {
      const d = sup.start('dashboard', ['dashboard', '--host', flags.dashboardHost, '--port', String(port)]);
      const shown = flags.dashboardHost === '0.0.0.0' || flags.dashboardHost === '::' ? '127.0.0.1' : flags.dashboardHost;
      out.line(`up: dashboard pid ${d.process.pid} at http://${shown.includes(':') ? `[${shown}]` : shown}:${port}/`);
    }
    const online = await waitForWorkers(cfg, workers, 60_000, () => requested !== undefined || failed);
    if (online) out.line(`up: ${workers} worker(s) online; submit work with \`numgrad train --backend queue\` (same Redis and prefix); Ctrl-C stops them all`);
    else if (requested === undefined && !failed) out.error(`up: fewer than ${workers} workers online after 60 s; see their logs above`);
    // Runs until a signal, or until the last worker is lost.
    await done;
    await sup.stop();
    out.line(`up: stopped ${sup.all.length} processes`);
    if (failed) process.exitCode = 1;
    else if (requested === 'SIGINT') process.exitCode = 130;
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    sup.kill();
  }
}

export function registerUp(program: Command, out: Output, config: () => Config, env: NodeJS.ProcessEnv): void {
  program
    .command('up')
    .description('the docker-compose topology without Docker: N worker processes and the dashboard on this machine; Ctrl-C stops them all')
    .addOption(OPTIONS.workers())
    .addOption(OPTIONS.threads('threads per worker (default: cores ÷ workers)'))
    .addOption(OPTIONS.dashboardPort())
    .option('--dashboard-host <host>', 'dashboard interface (0.0.0.0 to serve beyond this machine; needs DASHBOARD_TOKEN)', '127.0.0.1')
    .option('--no-dashboard', 'workers only')
    .addOption(OPTIONS.upGrace())
    .action(async (flags: UpFlags) => {
      await runUp(flags, out, config(), env);
    });
}
