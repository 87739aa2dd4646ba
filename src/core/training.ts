import { ValidationError } from './errors.js';
import { initParams } from './network.js';
import { Rng, miniBatchIndices } from './prng.js';

/** The chapter-4 recipe; every field has the book's value as default. */
export interface TrainConfig {
  /** Hidden units (50). */
  readonly hidden: number;
  /** Mini-batch size (100). */
  readonly batch: number;
  /** Learning rate (0.1). */
  readonly lr: number;
  /** Iterations (10,000). */
  readonly iters: number;
  /** Seed of the initial net and of every mini-batch (0). */
  readonly seed: number;
  /** Central-difference step (1e-4). */
  readonly h: number;
  /** Iterations per epoch: train/test accuracy after iterations 0, 600, 1200, … and the last (600). */
  readonly evalEvery: number;
  /** Training-set size the batches are drawn from (60,000). */
  readonly trainSize: number;
}

export const TRAIN_DEFAULTS: TrainConfig = { hidden: 50, batch: 100, lr: 0.1, iters: 10_000, seed: 0, h: 1e-4, evalEvery: 600, trainSize: 60_000 };

/** Fills defaults under `partial` and checks every field once; errors name the field. */
export function trainConfig(partial: Partial<TrainConfig> = {}): TrainConfig {
  const c = { ...TRAIN_DEFAULTS, ...partial };
  const op = 'train';
  const int = (name: keyof TrainConfig, lo: number, hi: number): void => {
    const v = c[name];
    if (!Number.isInteger(v) || v < lo || v > hi) throw new ValidationError(op, name, `an integer in [${lo}, ${hi}]`, v);
  };
  int('hidden', 1, 4096);
  int('batch', 1, c.trainSize);
  int('iters', 1, 10_000_000);
  int('evalEvery', 1, 10_000_000);
  if (!Number.isSafeInteger(c.seed) || c.seed < 0) throw new ValidationError(op, 'seed', 'an integer ≥ 0', c.seed);
  if (!(c.lr > 0) || !Number.isFinite(c.lr)) throw new ValidationError(op, 'lr', 'a finite number > 0', c.lr);
  if (!(c.h > 0) || !(c.h <= 1)) throw new ValidationError(op, 'h', 'a number in (0, 1]', c.h);
  return c;
}

export function initialParams(cfg: TrainConfig): Float64Array {
  return initParams(cfg.hidden, new Rng(cfg.seed));
}

/** The mini-batch of iteration `step`: a pure function of (seed, step). */
export function batchFor(cfg: TrainConfig, step: number): Int32Array {
  return miniBatchIndices(cfg.seed, step, cfg.batch, cfg.trainSize);
}

/** θ − lr·g, elementwise (numpy's `params[key] -= learning_rate * grad[key]`). */
export function sgdStep(params: Float64Array, grad: Float64Array, lr: number): Float64Array {
  if (grad.length !== params.length) throw new ValidationError('sgdStep', 'grad', `of length ${params.length}`, grad.length);
  const out = new Float64Array(params.length);
  for (let c = 0; c < params.length; c++) out[c] = params[c] - lr * grad[c];
  return out;
}

/** Whether train/test accuracy is measured after iteration `step` (the book: i % iter_per_epoch == 0). */
export function isEvalStep(cfg: TrainConfig, step: number): boolean {
  return step % cfg.evalEvery === 0 || step === cfg.iters - 1;
}

/** One line of the metrics file. */
export interface StepMetrics {
  readonly iter: number;
  readonly loss: number;
  readonly trainAcc?: number;
  readonly testAcc?: number;
  readonly trainLoss?: number;
  readonly testLoss?: number;
  readonly seconds?: number;
}
