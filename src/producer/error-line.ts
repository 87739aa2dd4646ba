import { NumgradError, ValidationError } from '../core/errors.js';

/**
 * The one line a user sees for an error they can fix: it names the command first
 * (`numgrad follow: RUN must be the id of an existing run …`). Errors raised below the command
 * layer name their own operation (`run`, `config`, a Redis URL); the command is put in front here,
 * once, instead of in every caller. Never more than one line: a multi-line cause is joined.
 */
export function errorLine(err: NumgradError, command: string | undefined): string {
  const op = command === undefined ? 'numgrad' : `numgrad ${command}`;
  let text: string;
  if (err.message.startsWith('numgrad ')) text = err.message;
  else if (err instanceof ValidationError) text = new ValidationError(op, err.field, err.expected, err.got).message;
  else text = `${op}: ${err.message}`;
  return text.replace(/\s*\n\s*/g, ' ');
}
