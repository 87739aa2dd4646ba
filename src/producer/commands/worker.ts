import type { Command } from 'commander';
import type { Config } from '../../io/config.js';
import { redactUrl } from '../../io/config.js';
import { createLogger } from '../../io/logger.js';
import { QueueWorker } from '../../workers/queue-worker.js';
import { intOption } from '../options.js';

export function registerWorker(program: Command, config: () => Config): void {
  program
    .command('worker')
    .description('a worker process: BullMQ workers feeding piscina threads (shards and reducers)')
    .option('--threads <N>', 'worker threads (default: NUMGRAD_THREADS, else all cores)')
    .option('--concurrency <N>', 'shard jobs in flight (default: 2 × threads)')
    .option('--no-reducer', 'do not consume the reduce queue')
    .option('--lock-duration <ms>', 'BullMQ lock duration', '30000')
    .option('--stalled-interval <ms>', 'BullMQ stalled-job check interval', '30000')
    .action(async (flags: { threads?: string; concurrency?: string; reducer: boolean; lockDuration: string; stalledInterval: string }) => {
      const cfg = config();
      const threads = flags.threads === undefined ? cfg.threads : intOption('numgrad worker', '--threads', flags.threads, 1, 256);
      const logger = createLogger(cfg.logLevel, 'numgrad-worker');
      const worker = new QueueWorker({
        redisUrl: cfg.redisUrl,
        prefix: cfg.prefix,
        threads,
        mnistDir: cfg.mnistDir,
        logger,
        reducer: flags.reducer,
        concurrency: flags.concurrency === undefined ? undefined : intOption('numgrad worker', '--concurrency', flags.concurrency, 1, 1024),
        lockDuration: intOption('numgrad worker', '--lock-duration', flags.lockDuration, 1000),
        stalledInterval: intOption('numgrad worker', '--stalled-interval', flags.stalledInterval, 1000),
      });
      logger.info({ redis: redactUrl(cfg.redisUrl), prefix: cfg.prefix, threads, reducer: flags.reducer }, 'worker starting');
      await worker.ready();
      logger.info({ pid: process.pid }, 'worker ready');
      await new Promise<void>((resolve) => {
        const stop = (sig: string): void => {
          logger.info({ signal: sig }, 'finishing active jobs, then closing');
          void worker.close().then(resolve);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      logger.info('worker closed');
      logger.flush();
    });
}
