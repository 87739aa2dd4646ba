import type { StepMetrics } from '../core/training.js';

/** One iteration's epoch evaluations, as far as they are in (train, test or both). */
export interface IterEvaluation {
  readonly iter: number;
  readonly trainAcc?: number;
  readonly testAcc?: number;
  readonly trainLoss?: number;
  readonly testLoss?: number;
}

/**
 * A run's evaluation hash (fields `<iter>:train` and `<iter>:test`, each `{ loss, accuracy }` in
 * JSON) as one entry per iteration, in iteration order.
 */
export function evaluationsByIter(hash: Record<string, string>): IterEvaluation[] {
  const byIter = new Map<number, { iter: number; trainAcc?: number; testAcc?: number; trainLoss?: number; testLoss?: number }>();
  for (const [field, json] of Object.entries(hash)) {
    const [iterText, split] = field.split(':');
    const iter = Number(iterText);
    const v = JSON.parse(json) as { loss: number; accuracy: number };
    const e = byIter.get(iter) ?? { iter };
    if (split === 'train') Object.assign(e, { trainAcc: v.accuracy, trainLoss: v.loss });
    else Object.assign(e, { testAcc: v.accuracy, testLoss: v.loss });
    byIter.set(iter, e);
  }
  return [...byIter.values()].sort((a, b) => a.iter - b.iter);
}

/** Metrics lines with their iteration's evaluations merged in where both splits are in (the local backend's metrics.jsonl). */
export function withEvaluations(lines: readonly StepMetrics[], evals: readonly IterEvaluation[]): StepMetrics[] {
  const byIter = new Map(evals.map((e) => [e.iter, e]));
  return lines.map((m) => {
    const e = byIter.get(m.iter);
    if (e?.trainAcc === undefined || e.testAcc === undefined) return m;
    return { ...m, trainAcc: e.trainAcc, testAcc: e.testAcc, trainLoss: e.trainLoss, testLoss: e.testLoss };
  });
}
