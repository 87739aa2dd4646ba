/**
 * The demo end to end: every seed value appears in its output, on real MNIST, and both figures are
 * well-formed SVG documents.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { formatNumpy, runDemo } from '../../src/producer/demo.js';
import { lineChart, stackCharts } from '../../src/producer/svg.js';

/** Tags open and close in order (self-closing tags aside): enough to catch broken markup. */
function balanced(svg: string): boolean {
  const stack: string[] = [];
  for (const m of svg.matchAll(/<(\/?)([A-Za-z][\w:-]*)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m;
    if (self) continue;
    if (!close) stack.push(name);
    else if (stack.pop() !== name) return false;
  }
  return stack.length === 0;
}

describe('runDemo', () => {
  let dir: string;
  const lines: string[] = [];
  let files: string[];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'numgrad-demo-'));
    ({ files } = await runDemo({ out: join(dir, 'plots'), print: (l) => lines.push(l) }));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('prints every value of the notebook', () => {
    const out = lines.join('\n');
    for (const expected of [
      'sum_squares_error(y=2) = 0.09750000000000003',
      'sum_squares_error(y=7) = 0.5975',
      'cross_entropy_error(y=2) = 0.510825457099338',
      'cross_entropy_error(y=7) = 2.302584092994546',
      'cross_entropy_error(batch of one, t=2) = 0.510825457099338',
      'cross_entropy_error(batch of one, one-hot t) = 0.510825457099338',
      'numerical_diff(function_1, 5) = 0.1999999999990898',
      'numerical_diff(function_1, 10) = 0.2999999999986347',
      'numerical_diff(function_tmp1, 3.0) = 6.00000000000378',
      'numerical_diff(function_tmp2, 4.0) = 7.999999999999119',
      'numerical_gradient(function_2, [3.0, 4.0]) = [6. 8.]  full: [6.00000000000378, 7.999999999999119]',
      'numerical_gradient(function_2, [0.0, 2.0]) = [0. 4.]',
      'numerical_gradient(function_2, [3.0, 0.0]) = [6. 0.]',
      '= [-6.11110793e-10  8.14814391e-10]  full: [-6.111107928998789e-10, 8.148143905314271e-10]',
      'distance from origin = 1.018517988165069e-9',
      'x_train (60000, 784)',
      'x_batch (10, 784)',
      't_batch (10, 10)',
      'batch_mask (seed 0, step 0) = [',
    ]) {
      expect(out).toContain(expected);
    }
  });

  it('writes two well-formed SVG figures', () => {
    expect(files.map((f) => f.split(/[\\/]/).pop())).toEqual(['function_1.svg', 'gradient_field.svg']);
    for (const f of files) {
      const svg = readFileSync(f, 'utf8');
      expect(svg.startsWith('<svg')).toBe(true);
      expect(svg).toContain('xmlns="http://www.w3.org/2000/svg"');
      expect(svg).toMatch(/<path|<polyline/);
      expect(balanced(svg)).toBe(true);
      expect(lines).toContain(`wrote ${f}`);
    }
  });
});

describe('formatNumpy', () => {
  it('prints like numpy', () => {
    expect(formatNumpy([6.00000000000378, 7.999999999999119])).toBe('[6. 8.]');
    expect(formatNumpy([-6.111107928998789e-10, 8.148143905314271e-10])).toBe('[-6.11110793e-10  8.14814391e-10]');
    expect(formatNumpy([0.5, 1, -2.25])).toBe('[ 0.5   1.   -2.25]');
    expect(formatNumpy([1e-5, 1])).toBe('[1.e-05 1.e+00]');
  });
});

describe('svg', () => {
  it('escapes text and stacks charts', () => {
    const a = lineChart({ title: 'loss <per> iteration & more', xLabel: 'iteration', yLabel: 'loss', series: [{ name: 'train', points: [[0, 2.3], [1, 1.1], [2, NaN], [3, 0.5]] }] });
    const b = lineChart({ title: 'accuracy', xLabel: 'epoch', yLabel: 'acc', yRange: [0, 1], markers: true, series: [{ name: 'train', points: [[1, 0.8], [2, 0.9]] }, { name: 'test', points: [[1, 0.79], [2, 0.88]] }] });
    expect(a).toContain('loss &lt;per&gt; iteration &amp; more');
    const both = stackCharts([a, b]);
    expect(both).toMatch(/^<svg[^>]*height="800"/);
    expect(balanced(both)).toBe(true);
  });
});
