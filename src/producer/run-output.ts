import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { StepMetrics } from '../core/training.js';
import { writeFileAtomic } from '../io/atomic-write.js';
import { writeNpyFile } from '../io/npy-file.js';
import { lineChart, stackCharts } from './svg.js';

/**
 * The files a training run leaves in --out, whatever the backend: params.npy (the latest completed
 * step), metrics.jsonl (one JSON object per iteration; epochs carry the accuracies) and curves.svg.
 * Everything is rewritten through a temporary file and a rename, so an interrupted run leaves the
 * last completed state, never a torn file.
 */
export class RunOutput {
  private readonly metrics: StepMetrics[] = [];

  constructor(readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  add(m: StepMetrics): void {
    this.metrics.push(m);
  }

  get count(): number {
    return this.metrics.length;
  }

  /** Writes all three files for the state after `params`. */
  save(params: Float64Array, title = 'numgrad training'): string[] {
    const files = [join(this.dir, 'params.npy'), join(this.dir, 'metrics.jsonl'), join(this.dir, 'curves.svg')];
    writeNpyFile(files[0], params);
    writeFileAtomic(files[1], this.metrics.map((m) => JSON.stringify(m)).join('\n') + (this.metrics.length ? '\n' : ''));
    writeFileAtomic(files[2], curvesSvg(this.metrics, title));
    return files;
  }
}

/** Loss per iteration above, train and test accuracy per epoch below. */
export function curvesSvg(metrics: readonly StepMetrics[], title: string): string {
  const loss = metrics.map((m) => [m.iter, m.loss] as [number, number]);
  const epochs = metrics.filter((m) => m.testAcc !== undefined);
  return stackCharts([
    lineChart({ title: `${title}: mini-batch loss`, xLabel: 'iteration', yLabel: 'cross-entropy', series: [{ name: 'loss', points: loss }] }),
    lineChart({
      title: `${title}: accuracy per epoch`,
      xLabel: 'iteration',
      yLabel: 'accuracy',
      yRange: [0, 1],
      markers: true,
      series: [
        { name: 'train', points: epochs.map((m) => [m.iter, m.trainAcc ?? NaN] as [number, number]) },
        { name: 'test', points: epochs.map((m) => [m.iter, m.testAcc ?? NaN] as [number, number]) },
      ],
    }),
  ]);
}
