/**
 * What the queue benches read of a training run through numgrad's processes: when each step was
 * completed, by Redis's clock (the train-step jobs' `completed` events in the reduce queue's events
 * stream), and when the processes they started have exited.
 */
import type { ChildProcess } from 'node:child_process';
import type { Redis } from 'ioredis';

/** The step of a train-step job's `completed` event (fields as XRANGE gives them), else undefined. */
export function completedStep(fields: string[]): number | undefined {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i], fields[i + 1]);
  const m = /^run-.+-step-(\d+)$/.exec(f.get('jobId') ?? '');
  return f.get('event') === 'completed' && m !== null ? Number(m[1]) : undefined;
}

/** Step → completion time (ms, Redis's clock) of the train-step jobs under `prefix`. */
export async function stepCompletions(redis: Redis, prefix: string): Promise<Map<number, number>> {
  const done = new Map<number, number>();
  for (const [id, fields] of await redis.xrange(`${prefix}:reduce:events`, '-', '+')) {
    const step = completedStep(fields);
    if (step !== undefined) done.set(step, Number(id.split('-')[0]));
  }
  return done;
}

/** completed(t) − completed(t − 1) in ms for t in [from, to); a missing step is an error naming `op`. */
export function stepDurationsMs(done: ReadonlyMap<number, number>, from: number, to: number, op: string): number[] {
  const out: number[] = [];
  for (let t = from; t < to; t++) {
    const a = done.get(t - 1);
    const b = done.get(t);
    if (a === undefined || b === undefined) throw new Error(`${op}: no completed event for step ${a === undefined ? t - 1 : t}`);
    out.push(b - a);
  }
  return out;
}

/** Resolves with a child's exit code (or signal) once it has exited. */
export function exited(c: ChildProcess): Promise<number | string> {
  return new Promise((resolve) => {
    if (c.exitCode !== null || c.signalCode !== null) resolve(c.exitCode ?? c.signalCode ?? 'unknown');
    else c.once('exit', (code, sig) => resolve(code ?? sig ?? 'unknown'));
  });
}
