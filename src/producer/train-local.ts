import { type StepMetrics, type TrainConfig, batchFor, initialParams, isEvalStep, sgdStep } from '../core/training.js';
import type { LocalPool } from '../workers/threads/pool.js';
import { RunOutput } from './run-output.js';

export interface LocalTrainOptions {
  readonly cfg: TrainConfig;
  readonly pool: LocalPool;
  /** Folder for params.npy, metrics.jsonl and curves.svg (written at every epoch and at the end). */
  readonly out?: string;
  /** Called after every iteration. */
  readonly onStep?: (m: StepMetrics, params: Float64Array) => void;
  /** Checked between iterations: when it returns true the run stops after the step in progress. */
  readonly shouldStop?: () => boolean;
  /** Start from these params (default: the seeded initial net). */
  readonly params?: Float64Array;
}

export interface LocalTrainResult {
  readonly params: Float64Array;
  /** Iterations completed. */
  readonly steps: number;
  readonly stopped: boolean;
  readonly metrics: StepMetrics[];
  readonly seconds: number;
  readonly files: string[];
}

/**
 * The chapter-4 loop on the local pool: for each iteration the seeded mini-batch, the
 * finite-difference gradient, θ ← θ − lr·g; train and test accuracy over the whole splits every
 * epoch. Everything is a function of the config, so the same seed gives the same final params bit
 * for bit whatever the thread count.
 */
export async function trainLocal(opts: LocalTrainOptions): Promise<LocalTrainResult> {
  const { cfg, pool } = opts;
  const t0 = performance.now();
  const output = opts.out !== undefined ? new RunOutput(opts.out) : undefined;
  const metrics: StepMetrics[] = [];
  let params = opts.params ?? initialParams(cfg);
  let files: string[] = [];
  let step = 0;
  let stopped = false;
  for (; step < cfg.iters; step++) {
    if (opts.shouldStop?.()) {
      stopped = true;
      break;
    }
    const { gradient, loss } = await pool.gradient(params, batchFor(cfg, step), cfg.h);
    params = sgdStep(params, gradient, cfg.lr);
    let m: StepMetrics = { iter: step, loss };
    if (isEvalStep(cfg, step)) {
      const [train, test] = [await pool.evaluate(params, 'train'), await pool.evaluate(params, 'test')];
      m = { ...m, trainAcc: train.accuracy, testAcc: test.accuracy, trainLoss: train.loss, testLoss: test.loss, seconds: (performance.now() - t0) / 1000 };
    }
    metrics.push(m);
    output?.add(m);
    if (output !== undefined && m.testAcc !== undefined) files = output.save(params);
    opts.onStep?.(m, params);
  }
  if (output !== undefined) files = output.save(params);
  return { params, steps: step, stopped, metrics, seconds: (performance.now() - t0) / 1000, files };
}
