/**
 * The few named errors numgrad throws. Every message names the operation, the field and what was
 * expected, so a user (or a job's failedReason) says what to fix without reading code.
 */

/** Base class: anything numgrad itself rejects. */
export class NumgradError extends Error {
  override name = 'NumgradError';
}

/** An argument, option or payload field has a bad value. `field` names it; `expected` says what fits. */
export class ValidationError extends NumgradError {
  override name = 'ValidationError';
  constructor(
    readonly op: string,
    readonly field: string,
    readonly expected: string,
    readonly got?: unknown,
  ) {
    super(`${op}: ${field} must be ${expected}${got === undefined ? '' : `, got ${describe(got)}`}`);
  }
}

/** A file (IDX, .npy) is corrupt, truncated or of an unsupported kind. `source` names the file. */
export class FormatError extends NumgradError {
  override name = 'FormatError';
  constructor(
    readonly source: string,
    readonly detail: string,
  ) {
    super(`${source}: ${detail}`);
  }
}

/** An output path (`--out`) that cannot be written; `detail` says why and what to do. */
export class OutputError extends NumgradError {
  override name = 'OutputError';
  constructor(
    readonly op: string,
    readonly option: string,
    readonly path: string,
    readonly detail: string,
  ) {
    super(`${op}: ${option} ${path} ${detail}`);
  }
}

function describe(v: unknown): string {
  if (typeof v === 'number') return Number.isNaN(v) ? 'NaN' : String(v);
  if (typeof v === 'string') return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
  if (v === null) return 'null';
  if (Array.isArray(v)) return `an array of length ${v.length}`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name} of length ${(v as unknown as { length: number }).length}`;
  return typeof v;
}

/**
 * A registered function failed one of its evaluations (threw, returned NaN/Inf or a result of the
 * wrong shape, timed out, crashed or hung its thread). The message names the function, the point
 * and the coordinate; retrying the same evaluation cannot help.
 */
export class FunctionError extends NumgradError {
  override name = 'FunctionError';
}
