import type { Command } from 'commander';
import { NumgradError } from '../../core/errors.js';
import type { Config } from '../../io/config.js';
import { redactUrl } from '../../io/config.js';
import { OPTIONS } from '../cli-options.js';

export function registerWorker(program: Command, config: () => Config): void {
  program
    .command('worker')
    .description('a worker process: BullMQ workers feeding piscina threads (shards and reducers)')
    .addOption(OPTIONS.threads('worker threads (default: NUMGRAD_THREADS, else all cores)'))
    .addOption(OPTIONS.workerConcurrency())
    .addOption(OPTIONS.functions('folder of function modules to register (default: NUMGRAD_FUNCTIONS, else the built-ins only)'))
    .option('--no-reducer', 'do not consume the reduce queue')
    .option('--no-drive', 'run every training step as a flow of shards, even as the only worker (default: alone, a worker computes a run\'s steps itself)')
    .addOption(OPTIONS.lockDuration())
    .addOption(OPTIONS.stalledInterval())
    .addOption(OPTIONS.workerGrace())
    .action(async (flags: { threads?: number; concurrency?: number; functions?: string; reducer: boolean; drive: boolean; lockDuration: number; stalledInterval: number; grace: number }) => {
      const cfg = config();
      const { grace } = flags;
      const threads = flags.threads ?? cfg.threads;
      const [{ createLogger }, { QueueWorker }] = await Promise.all([import('../../io/logger.js'), import('../../workers/queue-worker.js')]);
      const logger = createLogger(cfg.logLevel, 'numgrad-worker');
      const functionsDir = flags.functions ?? cfg.functionsDir;
      if (functionsDir !== undefined) {
        // A folder that does not load is refused now, not on the first job that names a function.
        const { loadRegistry } = await import('../../workers/threads/function-registry.js');
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
        drive: flags.drive,
        concurrency: flags.concurrency,
        lockDuration: flags.lockDuration,
        stalledInterval: flags.stalledInterval,
        onFatal: (message) => onFatal(message),
      });
      logger.info({ redis: redactUrl(cfg.redisUrl), prefix: cfg.prefix, threads, reducer: flags.reducer }, 'worker starting');
      // Signals are handled from the start: a worker that never became ready (Redis away since it
      // started) must stop on SIGTERM too. A second signal ends the grace at once.
      let again: () => void = () => undefined;
      const second = new Promise<void>((r) => (again = r));
      let signalled: (sig: string) => void = () => undefined;
      const signal = new Promise<string>((r) => (signalled = r));
      let stopping = false;
      const onSignal = (sig: string): void => {
        if (stopping) return again();
        stopping = true;
        signalled(sig);
      };
      process.on('SIGTERM', () => onSignal('SIGTERM'));
      process.on('SIGINT', () => onSignal('SIGINT'));
      // A refused password ends the worker (exit 2) whether it comes before or after it is ready.
      const ready = worker.ready().then(() => logger.info({ pid: process.pid }, 'worker ready'));
      ready.catch(() => undefined);
      const first = await Promise.race([signal.then((sig) => ({ sig })), fatal.then((refused) => ({ refused }))]);
      const refused = 'refused' in first ? first.refused : undefined;
      if ('sig' in first) {
        logger.info({ signal: first.sig, active: worker.activeJobs().length, graceSeconds: grace }, 'taking no new jobs; finishing active ones, then closing');
        const r = await worker.shutdown(grace * 1000, second);
        if (r.unfinished > 0) logger.warn({ unfinished: r.unfinished, requeued: r.requeued }, 'grace period over: unfinished jobs handed back to the queue (the rest return when their locks expire)');
        if (!r.closed) logger.warn('closed without Redis (unreachable, or jobs cut short)');
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
      // Whatever a forced close left behind (a connection retrying, a cut job's timers) must not keep the process alive.
      setTimeout(() => process.exit(process.exitCode ?? 0), 50).unref();
    });
}
