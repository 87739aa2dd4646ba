import { ValidationError } from '../core/errors.js';

/**
 * Command-line values are checked once, at the edge, and a bad one is an error that names the
 * option and the accepted range: `numgrad gradient: --batch must be an integer in [1, 60000], got "0"`.
 */
export function intOption(op: string, name: string, raw: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const v = typeof raw === 'number' ? raw : Number(String(raw).trim());
  if (raw === undefined || String(raw).trim() === '' || !Number.isInteger(v) || v < min || v > max) {
    throw new ValidationError(op, name, `an integer in [${min}, ${max === Number.MAX_SAFE_INTEGER ? '∞' : max}]`, String(raw));
  }
  return v;
}

export function floatOption(op: string, name: string, raw: unknown, check: { gt?: number; max?: number } = {}): number {
  const v = typeof raw === 'number' ? raw : Number(String(raw).trim());
  const lo = check.gt ?? -Infinity;
  const hi = check.max ?? Infinity;
  if (raw === undefined || String(raw).trim() === '' || !Number.isFinite(v) || !(v > lo) || v > hi) {
    const range = check.gt !== undefined && check.max !== undefined ? `a number in (${lo}, ${hi}]` : check.gt !== undefined ? `a number > ${lo}` : 'a finite number';
    throw new ValidationError(op, name, range, String(raw));
  }
  return v;
}

export function choiceOption<T extends string>(op: string, name: string, raw: unknown, choices: readonly T[]): T {
  if (typeof raw !== 'string' || !(choices as readonly string[]).includes(raw)) {
    throw new ValidationError(op, name, `one of ${choices.join(', ')}`, String(raw));
  }
  return raw as T;
}
