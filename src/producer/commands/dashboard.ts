import type { Command } from 'commander';
import type { Dashboard, DashboardOptions } from '../../dashboard/server.js';
import type { Config } from '../../io/config.js';
import { redactUrl } from '../../io/config.js';
import { OPTIONS } from '../cli-options.js';
import type { Output } from '../output.js';

/** fastify, bull-board and prom-client (~40 MB resident) load only when a dashboard starts. */
async function start(opts: Omit<DashboardOptions, 'logger'>, level: string): Promise<{ d: Dashboard; logger: DashboardOptions['logger'] }> {
  const [{ startDashboard }, { createLogger }] = await Promise.all([import('../../dashboard/server.js'), import('../../io/logger.js')]);
  const logger = createLogger(level, 'numgrad-dashboard');
  return { d: await startDashboard({ ...opts, logger }), logger };
}

/** The address line both `numgrad dashboard` and `npm start` print. */
function announce(out: Output, d: Dashboard): void {
  out.line(`dashboard: ${d.url}/ (training), ${d.url}/queues (bull-board), ${d.url}/metrics (Prometheus), ${d.url}/healthz`);
}

export function registerDashboard(program: Command, out: Output, config: () => Config): void {
  program
    .command('dashboard')
    .description('web dashboard: training curves live, bull-board for the queues, /metrics and /healthz')
    .addOption(OPTIONS.port())
    .option('--host <host>', 'interface to bind; anything but loopback needs DASHBOARD_TOKEN or DASHBOARD_USER/DASHBOARD_PASSWORD', '127.0.0.1')
    .option('--allow-actions', 'let bull-board retry, promote, clean and remove jobs (default: read-only); needs DASHBOARD_TOKEN or DASHBOARD_USER/DASHBOARD_PASSWORD wherever bound')
    .option('--public-url <urls>', 'comma list of URLs the dashboard is reached under besides loopback and --host (a proxy, a service name); other Host headers get 421')
    .action(async (flags: { port: number; host: string; allowActions?: boolean; publicUrl?: string }) => {
      const cfg = config();
      const { port } = flags;
      const publicUrls = flags.publicUrl === undefined ? [] : flags.publicUrl.split(',').map((u) => u.trim()).filter((u) => u !== '');
      const { d, logger } = await start({ config: cfg, port, host: flags.host, allowActions: flags.allowActions === true, publicUrls }, cfg.logLevel);
      announce(out, d);
      out.line(`dashboard: reading Redis at ${redactUrl(cfg.redisUrl)} (prefix ${cfg.prefix}); Ctrl-C stops`);
      await new Promise<void>((resolve) => {
        const stop = (): void => void d.close().then(resolve);
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
      logger.flush();
    });
}

/**
 * The dashboard beside `npm start`'s training: 127.0.0.1:3000 or the next free port. A dashboard
 * that cannot start is a warning, never a reason to stop the training.
 */
export async function dashboardAlongside(cfg: Config, out: Output): Promise<{ close(): Promise<void> }> {
  try {
    const { d } = await start({ config: cfg, port: 3000, portTries: 20, host: '127.0.0.1', allowActions: false }, cfg.logLevel === 'info' ? 'warn' : cfg.logLevel);
    announce(out, d);
    return d;
  } catch (err) {
    out.error(`dashboard: not started (${err instanceof Error ? err.message : String(err)})`);
    return { close: async () => undefined };
  }
}
