/**
 * The piscina task file: thin. Decode the task, call src/core, return a transferable result.
 * Threads never touch Redis or files; an evaluation shard brings its split (shared memory, by reference).
 */
import { Piscina } from 'piscina';
import { type Dataset, gatherBatch, sliceDataset } from '../../core/dataset.js';
import { NumgradError } from '../../core/errors.js';
import { runSchedule } from '../../core/fd-schedule.js';
import { sampleLosses } from '../../core/network.js';
import { sharedMemoRowsKernel } from '../../core/wasm/memo-rows.js';
import { EngineCache } from './engine-cache.js';
import { type CeShardTask, type FdClaimTask, type FdShardTask, type ThreadData, encodeCeResult } from './task-types.js';

const data = Piscina.workerData as ThreadData;

function split(name: 'train' | 'test', given?: CeShardTask['data']): Dataset {
  const s = given ?? data[name];
  if (s === null) throw new NumgradError(`ceShard: the ${name} split was not loaded in this pool`);
  return { count: s.labels.length, pixels: s.pixels, labels: s.labels };
}

// Compile the memo-rows kernel while the thread boots, not inside the first gradient.
sharedMemoRowsKernel();

const engines = new EngineCache();

export function fdShard(task: FdShardTask): Float64Array {
  return Piscina.move(engines.engineFor(task.planId, task.plan).shard(task.start, task.end)) as unknown as Float64Array;
}

export function fdClaim(task: FdClaimTask): number {
  return runSchedule(engines.engineFor(task.planId, task.plan), task.schedule, task.next, task.out, task.base);
}

/** Returns encodeCeResult(losses, correct), transferred. */
export function ceShard(task: CeShardTask): Float64Array {
  const params = task.params instanceof Float64Array ? task.params : new Float64Array(task.params);
  const source = split(task.split, task.data);
  const samples = task.indices !== undefined ? gatherBatch(source, task.indices.subarray(task.start, task.end)) : sliceDataset(source, task.start, task.end);
  const { losses, correct } = sampleLosses(params, samples);
  return Piscina.move(encodeCeResult(losses, correct)) as unknown as Float64Array;
}
