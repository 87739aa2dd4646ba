/**
 * The bounds of registered functions' jobs, apart from the schemas (contract-functions.ts) so the
 * CLI's options can name them without loading zod: a one-off command that validates no payload
 * starts faster.
 */
/** Largest point (coordinates) a job may carry: a shard holds one point, 800 KB of float64. */
export const MAX_FN_DIM = 100_000;
/** Most points in one submission. */
export const MAX_FN_POINTS = 100_000;
/** Most values a function may return (m of a Jacobian m × n). */
export const MAX_FN_OUTPUTS = 100_000;
/** Most float64 values of one shard's result, and of a whole assembled result (k·m·n: 128 MB). */
export const MAX_FN_SHARD_VALUES = 4_000_000;
export const MAX_FN_RESULT_VALUES = 16_000_000;
/** Serialized size bound of a job's `args` (JSON), so a job cannot carry data, only settings. */
export const MAX_FN_ARGS_BYTES = 4096;
/** Default and largest per-evaluation timeout (ms). */
export const DEFAULT_FN_TIMEOUT_MS = 60_000;
export const MAX_FN_TIMEOUT_MS = 3_600_000;
