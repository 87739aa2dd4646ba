import type { Command } from 'commander';
import { NumgradError } from '../../core/errors.js';
import type { Config } from '../../io/config.js';
import { redactUrl } from '../../io/config.js';
import { intOption } from '../options.js';

export function registerWorker(program: Command, config: () => Config): void {
  program
    .command('worker')
    .description('a worker process: BullMQ workers feeding piscina threads (shards and reducers)')
    .option('--threads <N>', 'worker threads (default: NUMGRAD_THREADS, else all cores)')
    .option('--concurrency <N>', 'shard jobs in flight, and function evaluations in flight (default: 2 × threads)')
    .option('--functions <dir>', 'folder of function modules to register (default: NUMGRAD_FUNCTIONS, else the built-ins only)')
    .option('--no-reducer', 'do not consume the reduce queue')
    .option('--lock-duration <ms>', 'BullMQ lock duration', '30000')
    .option('--stalled-interval <ms>', 'BullMQ stalled-job check interval', '30000')
    .action(async (flags: { threads?: string; concurrency?: string; functions?: string; reducer: boolean; lockDuration: string; stalledInterval: string }) => {
      const cfg = config();
      const threads = flags.threads === undefined ? cfg.threads : intOption('numgrad worker', '--threads', flags.threads, 1, 256);
      const [{ createLogger }, { QueueWorker }] = await Promise.all([import('../../io/logger.js'), import('../../workers/queue-worker.js')]);
      const logger = createLogger(cfg.logLevel, 'numgrad-worker');
      const functionsDir = flags.functions ?? cfg.functionsDir;
      if (functionsDir !== undefined) {
        // A folder that does not load is refused now, not on the first job that names a function.
        const { loadRegistry } = await import('../../workers/function-registry.js');
        const reg = await loadRegistry(functionsDir, () => {
          throw new NumgradError('mnist-loss is not evaluated here');
        });
        logger.info({ functions: [...reg.keys()].sort() }, 'functions registered');
      }
      let onFatal: (message: string) => void = () => undefined;
      const fatal = new Promise<string>((resolve) => (onFatal = resolve));
      const worker = new QueueWorker({
        redisUrl: cfg.redisUrl,
        prefix: cfg.prefix,
        threads,
        mnistDir: cfg.mnistDir,
        functionsDir,
        logger,
        reducer: flags.reducer,
        concurrency: flags.concurrency === undefined ? undefined : intOption('numgrad worker', '--concurrency', flags.concurrency, 1, 1024),
        lockDuration: intOption('numgrad worker', '--lock-duration', flags.lockDuration, 1000),
        stalledInterval: intOption('numgrad worker', '--stalled-interval', flags.stalledInterval, 1000),
        onFatal: (message) => onFatal(message),
      });
      logger.info({ redis: redactUrl(cfg.redisUrl), prefix: cfg.prefix, threads, reducer: flags.reducer }, 'worker starting');
      // A refused password ends the worker (exit 2) whether it comes before or after it is ready.
      let refused = await Promise.race([worker.ready().then(() => undefined), fatal]);
      if (refused === undefined) {
        logger.info({ pid: process.pid }, 'worker ready');
        refused = await new Promise<string | undefined>((resolve) => {
          const stop = (sig: string): void => {
            logger.info({ signal: sig }, 'finishing active jobs, then closing');
            void worker.close().then(() => resolve(undefined));
          };
          process.once('SIGTERM', () => stop('SIGTERM'));
          process.once('SIGINT', () => stop('SIGINT'));
          void fatal.then(resolve);
        });
      }
      if (refused !== undefined) {
        logger.fatal(refused);
        logger.flush();
        // Closing waits on connections that will never be ready: bounded, then the exit is forced.
        setTimeout(() => process.exit(2), 1_500).unref();
        await Promise.race([worker.close(), new Promise((r) => setTimeout(r, 1_000).unref())]);
        throw new NumgradError(refused);
      }
      logger.info('worker closed');
      logger.flush();
    });
}
