import type { Config } from '../io/config.js';
import { redactUrl } from '../io/config.js';
import type { QueueWorker } from '../workers/queue-worker.js';
import type { Output } from './output.js';
import type { QueueClient } from './queue-client.js';

// The queue's modules (BullMQ, ioredis, pino: ~60 MB resident) are imported when the queue is
// used, so a local run — `--backend local`, or `npm start` without Redis — does not carry them.

export type BackendChoice = 'auto' | 'local' | 'queue';

export interface QueueBackend {
  readonly kind: 'queue';
  readonly client: QueueClient;
  /** The worker this process started because none was online (auto, npm start). */
  readonly worker?: QueueWorker;
  close(): Promise<void>;
}

export type Backend = { readonly kind: 'local'; close(): Promise<void> } | QueueBackend;

/**
 * `--backend auto` (the default) uses the queue when Redis answers at --redis / REDIS_URL and the
 * local pool otherwise, and says which. With the queue and no worker online, auto starts one in
 * this process (so it works alone on one machine); an explicit `--backend queue` says that no worker
 * is online and waits for one instead of waiting silently.
 */
export async function resolveBackend(choice: BackendChoice, cfg: Config, out: Output, opts: { inProcessWorker?: boolean } = {}): Promise<Backend> {
  const where = redactUrl(cfg.redisUrl);
  if (choice === 'local') return { kind: 'local', close: async () => undefined };
  if (choice === 'auto') {
    const { redisAnswers } = await import('../io/redis.js');
    const probe = await redisAnswers(cfg.redisUrl);
    if (!probe.ok) {
      out.error(`backend: local (Redis at ${where} does not answer${probe.error ? `: ${probe.error}` : ''})`);
      return { kind: 'local', close: async () => undefined };
    }
  }
  const queueClient = await import('./queue-client.js');
  const client = new queueClient.QueueClient({ redisUrl: cfg.redisUrl, prefix: cfg.prefix });
  let worker: QueueWorker | undefined;
  try {
    await client.ping();
    const online = await client.workersOnline();
    if (online === 0 && (choice === 'auto' || opts.inProcessWorker)) {
      const [queueWorker, { createLogger }] = await Promise.all([import('../workers/queue-worker.js'), import('../io/logger.js')]);
      worker = new queueWorker.QueueWorker({ redisUrl: cfg.redisUrl, prefix: cfg.prefix, threads: cfg.threads, mnistDir: cfg.mnistDir, functionsDir: cfg.functionsDir, logger: createLogger(cfg.logLevel === 'info' ? 'warn' : cfg.logLevel, 'numgrad-worker') });
      await worker.ready();
      out.error(`backend: queue at ${where} (prefix ${cfg.prefix}); no worker was online, so this process runs one with ${cfg.threads} thread(s)`);
    } else if (online === 0) {
      out.error(`backend: queue at ${where} (prefix ${cfg.prefix}); no worker is online — start one with \`numgrad worker\`; waiting for it…`);
    } else {
      out.error(`backend: queue at ${where} (prefix ${cfg.prefix}), ${online} worker process(es) online`);
    }
  } catch (err) {
    // An open client (or worker) reconnects forever and keeps the process alive after the error is printed.
    await client.close();
    await worker?.close();
    throw err;
  }
  return {
    kind: 'queue',
    client,
    worker,
    close: async () => {
      await client.close();
      await worker?.close();
    },
  };
}
