/**
 * Evaluation over the 60,000 training images, numgrad's pool against numpy_reference.py `loss`,
 * interleaved run by run; loss and accuracy must agree (1e-12 relative, accuracy exactly).
 */
import { spawnSync } from 'node:child_process';
import { LocalPool } from '../src/workers/threads/pool.js';
import type { BenchContext } from './run.js';

export interface EvalReport {
  readonly ours: number[];
  readonly numpy: number[];
  readonly loss: number;
  readonly accuracy: number;
  readonly numpyLoss?: number;
  readonly numpyAccuracy?: number;
  readonly threads: number;
}

export async function benchEvaluation(ctx: BenchContext, referencePy: string, runs: number, env: NodeJS.ProcessEnv, threads: number): Promise<EvalReport> {
  const pool = new LocalPool({ threads });
  try {
    await pool.evaluate(ctx.params, 'train'); // warm-up (JIT, thread start)
    const ours: number[] = [];
    const numpy: number[] = [];
    let loss = NaN;
    let accuracy = NaN;
    let numpyLoss: number | undefined;
    let numpyAccuracy: number | undefined;
    for (let r = 0; r < runs; r++) {
      const e = await pool.evaluate(ctx.params, 'train');
      ours.push(e.seconds);
      loss = e.loss;
      accuracy = e.accuracy;
      const py = spawnSync('python3', [referencePy, 'loss', '--data', ctx.mnistDir, '--params', ctx.paramsPath, '--split', 'train'], { encoding: 'utf8', env });
      const m = /loss=([\d.]+) accuracy=([\d.]+) seconds=([\d.]+)/.exec(py.stdout ?? '');
      if (m !== null) {
        numpyLoss = Number(m[1]);
        numpyAccuracy = Number(m[2]);
        numpy.push(Number(m[3]));
      }
    }
    return { ours, numpy, loss, accuracy, numpyLoss, numpyAccuracy, threads };
  } finally {
    await pool.close();
  }
}
