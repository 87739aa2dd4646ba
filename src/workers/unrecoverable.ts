import { UnrecoverableError } from 'bullmq';
import { NumgradError } from '../core/errors.js';

/** numgrad's own errors mean the job itself is wrong: retrying cannot help, so BullMQ fails it at once. */
export function unrecoverable(err: unknown): unknown {
  if (err instanceof NumgradError) return new UnrecoverableError(err.message);
  return err;
}
