import { ValidationError } from './errors.js';

/** Input pixels (28×28) and classes of the chapter-4 net. */
export const INPUTS = 784;
export const CLASSES = 10;

/**
 * The one flat parameter layout, shared by numgrad and numpy (.npy files):
 *   W1 (784×H, row-major: W1[i][j] at i·H+j), b1 (H), W2 (H×10, row-major: W2[j][k] at w2+j·10+k), b2 (10).
 * Length 795·H + 10 (39,760 for H = 50).
 */
export interface Layout {
  readonly hidden: number;
  readonly length: number;
  readonly w1: number;
  readonly b1: number;
  readonly w2: number;
  readonly b2: number;
}

export function layout(hidden: number): Layout {
  if (!Number.isInteger(hidden) || hidden < 1) throw new ValidationError('layout', 'hidden', 'an integer ≥ 1', hidden);
  const b1 = INPUTS * hidden;
  const w2 = b1 + hidden;
  const b2 = w2 + hidden * CLASSES;
  return { hidden, length: b2 + CLASSES, w1: 0, b1, w2, b2 };
}

export function paramCount(hidden: number): number {
  return layout(hidden).length;
}

/** H from a parameter vector's length; a length that fits no H is an error. */
export function hiddenFromLength(length: number, field = 'params'): number {
  const h = (length - CLASSES) / (INPUTS + 1 + CLASSES);
  if (!Number.isInteger(h) || h < 1) {
    throw new ValidationError('layout', field, 'of length 795·H + 10 for an integer H ≥ 1 (39,760 for H = 50)', `length ${length}`);
  }
  return h;
}

/** The name of coordinate c, e.g. `W1[412][7]`, `b1[3]`, `W2[7][2]`, `b2[9]`. */
export function coordName(c: number, hidden: number): string {
  const l = layout(hidden);
  if (!Number.isInteger(c) || c < 0 || c >= l.length) throw new ValidationError('coordName', 'c', `an integer in [0, ${l.length})`, c);
  if (c < l.b1) return `W1[${Math.floor(c / hidden)}][${c % hidden}]`;
  if (c < l.w2) return `b1[${c - l.b1}]`;
  if (c < l.b2) return `W2[${Math.floor((c - l.w2) / CLASSES)}][${(c - l.w2) % CLASSES}]`;
  return `b2[${c - l.b2}]`;
}
