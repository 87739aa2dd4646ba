import { createHash } from 'node:crypto';
import type { BatchSpec } from '../core/contract.js';
import { ValidationError } from '../core/errors.js';
import { miniBatchIndices } from '../core/prng.js';

/** Little-endian float64/int32 arrays as base64 and back (the contract's binary encodings). */
export function f64ToBase64(a: Float64Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

export function base64ToF64(s: string, field: string, expectLength?: number): Float64Array {
  const b = Buffer.from(s, 'base64');
  if (b.byteLength % 8 !== 0) throw new ValidationError('decode', field, 'base64 of whole float64 values', `${b.byteLength} bytes`);
  if (expectLength !== undefined && b.byteLength !== expectLength * 8) throw new ValidationError('decode', field, `${expectLength} float64 values`, b.byteLength / 8);
  const out = new Float64Array(b.byteLength / 8);
  new Uint8Array(out.buffer).set(b);
  return out;
}

export function i32ToBase64(a: Int32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');
}

export function base64ToI32(s: string, field: string, expectLength: number): Int32Array {
  const b = Buffer.from(s, 'base64');
  if (b.byteLength !== expectLength * 4) throw new ValidationError('decode', field, `base64 of ${expectLength} int32 values`, `${b.byteLength} bytes`);
  const out = new Int32Array(expectLength);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/** Bytes of a float64 vector as a Buffer view (no copy). */
export function f64Bytes(a: Float64Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** A stored float64 vector (a params snapshot, a result); bytes that are not whole float64 values are a ValidationError, not a RangeError. */
export function bufferToF64(b: Buffer, field = 'snapshot'): Float64Array {
  if (b.byteLength % 8 !== 0) throw new ValidationError('decode', field, 'a snapshot of whole float64 values (a multiple of 8 bytes)', `${b.byteLength} bytes`);
  const out = new Float64Array(b.byteLength / 8);
  new Uint8Array(out.buffer).set(b);
  return out;
}

/** The params version: SHA-256 of the float64 bytes, so equal vectors share one snapshot. */
export function paramsVersion(params: Float64Array): string {
  return createHash('sha256').update(f64Bytes(params)).digest('hex');
}

/** Training-set indices of a batch spec (validated against the training-set size). */
export function batchIndices(spec: BatchSpec, trainSize: number): Int32Array {
  if (spec.kind === 'seeded') return miniBatchIndices(spec.seed, spec.step, spec.size, trainSize);
  const idx = base64ToI32(spec.indices, 'data.batch.indices', spec.count);
  for (let k = 0; k < idx.length; k++) {
    if (idx[k] < 0 || idx[k] >= trainSize) throw new ValidationError('batch', `data.batch.indices[${k}]`, `an integer in [0, ${trainSize})`, idx[k]);
  }
  return idx;
}

/**
 * A stable key of a batch spec, for caches. Every field is in it: the batch is validated (decoded)
 * only when its cache entry is made, so a spec that differs in any field, the count included, must
 * miss the cache and be validated on its own.
 */
export function batchKey(spec: BatchSpec): string {
  return spec.kind === 'seeded' ? `s:${spec.seed}:${spec.step}:${spec.size}` : `i:${spec.count}:${createHash('sha1').update(spec.indices).digest('hex')}`;
}
