/**
 * What the queue benches read of a training run through numgrad's processes: when each step was
 * completed, by Redis's clock (in the reduce queue's events stream: the train-step jobs' `completed`
 * events, and the `progress` events a train-drive job writes after each step it commits), and when
 * the processes they started have exited.
 */
import type { ChildProcess } from 'node:child_process';
import type { Redis } from 'ioredis';
import { driveProgressOf } from '../src/queue/flows.js';

/**
 * The steps an event says are committed (fields as XRANGE gives them): a train-step job's
 * `completed` event (one step), or a train-drive job's `progress` event (`{"step":t,"steps":k}`: the
 * k steps up to t); else undefined.
 */
export function committedSteps(fields: string[]): { last: number; steps: number } | undefined {
  const f = new Map<string, string>();
  for (let i = 0; i + 1 < fields.length; i += 2) f.set(fields[i], fields[i + 1]);
  const id = f.get('jobId') ?? '';
  const m = /^run-.+-step-(\d+)$/.exec(id);
  if (f.get('event') === 'completed' && m !== null) return { last: Number(m[1]), steps: 1 };
  if (f.get('event') !== 'progress') return undefined;
  const d = driveProgressOf(id, f.get('data'));
  return d === undefined ? undefined : { last: d.step, steps: d.steps };
}

/** The last step an event says is committed (committedSteps), else undefined. */
export function completedStep(fields: string[]): number | undefined {
  return committedSteps(fields)?.last;
}

/**
 * Step → completion time (ms, Redis's clock) of the run under `prefix`. Steps committed together
 * (a drive's k steps) share the time since the previous commit equally.
 */
export async function stepCompletions(redis: Redis, prefix: string): Promise<Map<number, number>> {
  const done = new Map<number, number>();
  for (const [id, fields] of await redis.xrange(`${prefix}:reduce:events`, '-', '+')) {
    const c = committedSteps(fields);
    if (c === undefined) continue;
    const at = Number(id.split('-')[0]);
    const before = done.get(c.last - c.steps);
    if (before === undefined) done.set(c.last, at);
    else for (let k = 1; k <= c.steps; k++) done.set(c.last - c.steps + k, before + ((at - before) * k) / c.steps);
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
