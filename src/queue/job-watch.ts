import type { EventEmitter } from 'node:events';
import type { Job, Queue, QueueEvents } from 'bullmq';
import { QUEUES } from '../core/contract.js';

/**
 * The outcome of reduce job `id`, listened for before the job is added. BullMQ's
 * waitUntilFinished attaches its listeners only after the add, then asks Redis; a parent that has
 * already completed by then is already removed (removeOnComplete) and it fails with "Missing key
 * for job …" — one gradient in a hundred did, with a hundred at once.
 */
export function watchJob(events: QueueEvents, id: string, timeoutMs: number): { done: Promise<unknown>; stop: () => void } {
  // QueueEvents emits `completed:<id>` and `failed:<id>` too; its typings list only the plain names.
  const emitter = events as unknown as EventEmitter;
  let stop = (): void => undefined;
  const done = new Promise<unknown>((resolve, reject) => {
    const completed = (a: { returnvalue: unknown }): void => {
      stop();
      resolve(a.returnvalue);
    };
    const failed = (a: { failedReason: string }): void => {
      stop();
      reject(new Error(a.failedReason));
    };
    const timer = setTimeout(() => failed({ failedReason: `job ${id} did not finish within ${timeoutMs} ms` }), timeoutMs);
    emitter.on(`completed:${id}`, completed);
    emitter.on(`failed:${id}`, failed);
    stop = () => {
      clearTimeout(timer);
      emitter.off(`completed:${id}`, completed);
      emitter.off(`failed:${id}`, failed);
    };
  });
  // A flow that fails to be added leaves `done` unawaited: its later rejection is no crash.
  done.catch(() => undefined);
  return { done, stop };
}

/**
 * BullMQ fails a parent whose child failed for good with `child <prefix>:shards:<id> failed`; the
 * shard (whose failedReason, `shard: data.params[5] must be a finite number…`, says what to fix),
 * or undefined when `reason` names no shard or the shard is gone.
 */
export async function failedShard(shards: Queue, prefix: string, reason: string): Promise<Job | undefined> {
  const m = /^child (.+) failed$/.exec(reason);
  const at = `${prefix}:${QUEUES.shards}:`;
  if (m === null || !m[1].startsWith(at)) return undefined;
  return shards.getJob(m[1].slice(at.length)).catch(() => undefined);
}
