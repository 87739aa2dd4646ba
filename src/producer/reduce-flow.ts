import type { FlowJob, FlowProducer, QueueEvents } from 'bullmq';
import { NumgradError } from '../core/errors.js';
import { watchJob } from '../queue/job-watch.js';
import type { Store } from '../queue/store.js';

/** What one reduce flow needs from the queue client. */
export interface ReduceFlowContext {
  readonly store: Store;
  readonly flows: FlowProducer;
  readonly events: QueueEvents;
  /** How long to wait for the reducer's result (ms). */
  readonly timeoutMs: number;
  /** The failed shard's own reason where `reason` (`child <key> failed`) names one, else `reason`. */
  childReason(reason: string): Promise<string>;
}

/**
 * Stores `params` (held by job `id`), adds the flow that `flow` builds on the stored version, waits
 * for the reducer's result and hands it to `read` (which may read further keys), then releases the
 * params. The listener is attached before the flow is added (see watchJob).
 */
export async function runReduceFlow<T>(ctx: ReduceFlowContext, id: string, params: Float64Array, flow: (version: string) => FlowJob, read: (result: unknown) => Promise<T>): Promise<T> {
  const version = await ctx.store.putParams(params, id);
  try {
    const job = flow(version);
    const watch = watchJob(ctx.events, id, ctx.timeoutMs);
    try {
      await ctx.flows.add(job);
      return await read(await finished(ctx, watch.done));
    } finally {
      watch.stop();
    }
  } finally {
    await ctx.store.release(version, id);
  }
}

/** A parent's result; when a shard failed it (`child <key> failed`), the error carries the shard's own reason. */
async function finished(ctx: ReduceFlowContext, done: Promise<unknown>): Promise<unknown> {
  try {
    return await done;
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const explained = await ctx.childReason(msg);
    throw explained === msg ? err : new NumgradError(explained);
  }
}
