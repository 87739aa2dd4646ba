#!/usr/bin/env node
// Mean cross-entropy and accuracy of a net on a mini-batch, from numgrad workers, with nothing but
// BullMQ and ioredis: the job contract of docs/JOBS.md is all a client needs (no numgrad import).
//
//   REDIS_URL=redis://127.0.0.1:6379 NUMGRAD_PREFIX=numgrad \
//   node examples/submit-cross-entropy.mjs [--params P.npy] [--indices 0,1,2,...] [--shards 4]
//
// Without --params it uses small deterministic weights for H = 50; without --indices, training images 0–99.
// Prints `loss <mean cross-entropy>` and `accuracy <fraction correct>` at full precision.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FlowProducer, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

const { values: args } = parseArgs({ options: { params: { type: 'string' }, indices: { type: 'string' }, shards: { type: 'string', default: '4' } } });
const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const prefix = process.env.NUMGRAD_PREFIX || 'numgrad';

// Parameters: one flat float64 vector, W1 (784×H) b1 (H) W2 (H×10) b2 (10), length 795·H + 10.
const params = args.params ? readF64Npy(args.params) : smallWeights(50);
const hidden = (params.length - 10) / 795;
if (!Number.isInteger(hidden) || hidden < 1) throw new Error(`params: length ${params.length} is not 795·H + 10`);
const indices = Int32Array.from(args.indices ? args.indices.split(',').map(Number) : Array.from({ length: 100 }, (_, i) => i));

// 1. Store the parameters once, under the SHA-256 of their bytes, and hold them until the reducer is done.
const bytes = Buffer.from(params.buffer, params.byteOffset, params.byteLength);
const version = createHash('sha256').update(bytes).digest('hex');
const holder = `example-ce-${randomBytes(6).toString('hex')}`;
const conn = new Redis(url, { maxRetriesPerRequest: null });
await conn.multi().set(`${prefix}:ng:params:${version}`, bytes, 'NX').sadd(`${prefix}:ng:params:${version}:holders`, holder).exec();

// 2. A flow: the `evaluation` reducer (queue `reduce`) over `ce-shard` children (queue `shards`), one per
//    range of positions in the batch. The reducer sums the per-sample losses in sample order.
const batch = { kind: 'indices', count: indices.length, indices: Buffer.from(indices.buffer).toString('base64') };
const shards = Math.min(Number(args.shards), indices.length);
const children = Array.from({ length: shards }, (_, k) => ({
  name: 'ce-shard',
  queueName: 'shards',
  data: { v: 1, params: version, hidden, split: 'batch', batch, start: Math.floor((k * indices.length) / shards), end: Math.floor(((k + 1) * indices.length) / shards) },
  opts: { attempts: 3, removeOnComplete: true, failParentOnFailure: true },
}));
// QueueEvents blocks on XREAD: a connection of its own.
const eventsConn = new Redis(url, { maxRetriesPerRequest: null });
const events = new QueueEvents('reduce', { connection: eventsConn, prefix });
const flows = new FlowProducer({ connection: conn, prefix });
try {
  await events.waitUntilReady(); // listen before adding, so the completion cannot be missed
  const node = await flows.add({
    name: 'evaluation',
    queueName: 'reduce',
    data: { v: 1, params: version, hidden, split: 'batch', batch, holder },
    opts: { jobId: holder, removeOnComplete: true },
    children,
  });
  // 3. The reducer returns { loss, accuracy, count, correct }.
  const r = await node.job.waitUntilFinished(events, 10 * 60_000);
  console.log(`loss ${r.loss}`);
  console.log(`accuracy ${r.accuracy}`);
  console.log(`(${r.correct} of ${r.count} correct, H ${hidden}, ${shards} shards)`);
} finally {
  // The reducer releases its hold when it succeeds; this covers failure (idempotent). The last holder deletes the snapshot.
  await conn.eval(
    "redis.call('SREM', KEYS[2], ARGV[1]) if redis.call('SCARD', KEYS[2]) == 0 then redis.call('DEL', KEYS[1], KEYS[2]) end",
    2, `${prefix}:ng:params:${version}`, `${prefix}:ng:params:${version}:holders`, holder,
  );
  await events.close();
  await flows.close();
  await Promise.all([eventsConn.quit(), conn.quit()]); // connections passed in are ours to close
}

/** A 1-D little-endian float64 .npy (what numpy.save writes for a float64 vector). */
function readF64Npy(path) {
  const b = readFileSync(path);
  const headerEnd = b[6] === 1 ? 10 + b.readUInt16LE(8) : 12 + b.readUInt32LE(8);
  const header = b.toString('latin1', 0, headerEnd);
  if (!header.includes("'descr': '<f8'") || header.includes('True')) throw new Error(`${path}: expected a 1-D little-endian float64 .npy`);
  return new Float64Array(b.buffer.slice(b.byteOffset + headerEnd, b.byteOffset + b.length));
}

/** Deterministic small weights (±0.01) and zero biases, for trying the example without a params file. */
function smallWeights(H) {
  const p = new Float64Array(795 * H + 10);
  let s = 12345;
  const next = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32 - 0.5) * 0.02;
  for (let i = 0; i < 784 * H; i++) p[i] = next();
  for (let i = 785 * H; i < 795 * H; i++) p[i] = next();
  return p;
}
