import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { ListedRun } from '../queue/run-record.js';
import type { RunSummary } from '../queue/store.js';
import type { ObserverSinks } from './observer.js';

/** One reading of Redis for a scrape: every gauge below is filled from the same snapshot. */
export interface Snapshot {
  readonly redis: boolean;
  readonly jobs: Record<string, Record<string, number>>;
  readonly workers: Record<string, number>;
  /** The newest runs; a malformed one is listed as `corrupt` (exported as numgrad_run_corrupt only). */
  readonly runs: readonly ListedRun[];
}

export interface MetricsSource {
  snapshot(): Promise<Snapshot>;
  shardsPerSecond(): number;
}

/** Runs exported as labelled gauges: the newest ones (a label per run must stay bounded). */
export const METRICS_RUNS = 20;

/**
 * The Prometheus metrics of `/metrics` (prom-client, a registry of its own so two dashboards in one
 * process do not collide). Gauges are read from Redis at scrape time; the duration histograms are
 * fed by the queue observer, so they cover every worker, not just this process.
 */
export class DashboardMetrics implements ObserverSinks {
  readonly registry = new Registry();
  private readonly shardSeconds: Histogram<'job'>;
  private readonly flowSeconds: Histogram<'job'>;
  private readonly shardsTotal: Counter;
  /** The snapshot of the scrape in progress: one per scrape, however many gauges ask for it, and never an earlier scrape's. */
  private current: Promise<Snapshot> | undefined;

  constructor(source: MetricsSource) {
    const registers = [this.registry];
    const snap = (): Promise<Snapshot> => (this.current ??= source.snapshot());
    new Gauge({
      name: 'numgrad_redis_up',
      help: 'Whether Redis answers (1) or not (0)',
      registers,
      async collect() {
        this.set((await snap()).redis ? 1 : 0);
      },
    });
    new Gauge({
      name: 'numgrad_queue_jobs',
      help: 'Jobs by queue and state (BullMQ getJobCounts)',
      labelNames: ['queue', 'state'],
      registers,
      async collect() {
        this.reset();
        for (const [queue, counts] of Object.entries((await snap()).jobs)) for (const [state, n] of Object.entries(counts)) this.set({ queue, state }, n);
      },
    });
    new Gauge({
      name: 'numgrad_workers',
      help: 'BullMQ workers connected, by queue (one per worker process and queue)',
      labelNames: ['queue'],
      registers,
      async collect() {
        this.reset();
        for (const [queue, n] of Object.entries((await snap()).workers)) this.set({ queue }, n);
      },
    });
    const perRun = (name: string, help: string, value: (r: RunSummary) => number | null): void => {
      new Gauge({
        name,
        help,
        labelNames: ['run'],
        registers,
        async collect() {
          this.reset();
          for (const r of (await snap()).runs) {
            if (r.state === 'corrupt') continue;
            const v = value(r);
            if (v !== null && Number.isFinite(v)) this.set({ run: r.id }, v);
          }
        },
      });
    };
    perRun('numgrad_run_loss', 'Mini-batch loss of the last completed iteration, by run', (r) => r.loss);
    perRun('numgrad_run_train_accuracy', 'Training-set accuracy at the last epoch, by run', (r) => r.trainAcc);
    perRun('numgrad_run_test_accuracy', 'Test-set accuracy at the last epoch, by run', (r) => r.testAcc);
    perRun('numgrad_run_step', 'Iterations completed, by run', (r) => r.step);
    perRun('numgrad_run_iterations', 'Iterations planned, by run', (r) => r.iters);
    perRun('numgrad_run_running', 'Whether the run is running (1) or ended (0)', (r) => (r.state === 'running' ? 1 : 0));
    new Gauge({
      name: 'numgrad_run_corrupt',
      help: 'Runs whose summary hash in Redis is malformed (1 each; `numgrad runs` says what is wrong, `numgrad runs rm` removes them)',
      labelNames: ['run'],
      registers,
      async collect() {
        this.reset();
        for (const r of (await snap()).runs) if (r.state === 'corrupt') this.set({ run: r.id }, 1);
      },
    });
    new Gauge({
      name: 'numgrad_runs',
      help: `Runs by state (running, done, failed, cancelled, corrupt) among the newest ${METRICS_RUNS}; a failed run's reason is in /api/runs`,
      labelNames: ['state'],
      registers,
      async collect() {
        this.reset();
        const by: Record<string, number> = { running: 0, done: 0, failed: 0, cancelled: 0, corrupt: 0 };
        for (const r of (await snap()).runs) by[r.state] = (by[r.state] ?? 0) + 1;
        for (const [state, n] of Object.entries(by)) this.set({ state }, n);
      },
    });
    new Gauge({
      name: 'numgrad_shards_per_second',
      help: 'Shards completed per second over the last 10 s, across all workers',
      registers,
      collect() {
        this.set(source.shardsPerSecond());
      },
    });
    this.shardsTotal = new Counter({ name: 'numgrad_shards_completed_total', help: 'Shards completed since this dashboard started, across all workers', registers });
    this.shardSeconds = new Histogram({
      name: 'numgrad_shard_duration_seconds',
      help: 'Time a shard job was active on a worker (fd-shard: part of a gradient; ce-shard: part of an evaluation)',
      labelNames: ['job'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    });
    this.flowSeconds = new Histogram({
      name: 'numgrad_flow_duration_seconds',
      help: 'Time from a reducer job\'s submission to its completion: one gradient, one evaluation, or one training step (job="train-step"), shards included',
      labelNames: ['job'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
      registers,
    });
  }

  shard(seconds: number | undefined, job: string): void {
    this.shardsTotal.inc();
    if (seconds !== undefined) this.shardSeconds.observe({ job }, seconds);
  }

  flow(seconds: number, job: string): void {
    this.flowSeconds.observe({ job }, seconds);
  }

  async text(): Promise<string> {
    this.current = undefined;
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
