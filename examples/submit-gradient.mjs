#!/usr/bin/env node
// One finite-difference gradient from numgrad workers, with nothing but BullMQ and ioredis: the job
// contract of docs/JOBS.md is all a client needs (this file imports no numgrad module).
//
//   REDIS_URL=redis://127.0.0.1:6379 NUMGRAD_PREFIX=numgrad \
//   node examples/submit-gradient.mjs [--params P.npy] [--indices 0,1,2,...] [--h 1e-4] [--shards 4] [--out gradient.npy]
//
// Without --params it uses small deterministic weights for H = 50; without --indices, training images 0–99.
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FlowProducer, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

const { values: args } = parseArgs({
  options: { params: { type: 'string' }, indices: { type: 'string' }, h: { type: 'string', default: '1e-4' }, shards: { type: 'string', default: '4' }, out: { type: 'string', default: 'gradient.npy' } },
});
const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const prefix = process.env.NUMGRAD_PREFIX || 'numgrad';

// Parameters: one flat float64 vector, W1 (784×H) b1 (H) W2 (H×10) b2 (10), length 795·H + 10.
const params = args.params ? readF64Npy(args.params) : smallWeights(50);
const hidden = (params.length - 10) / 795;
if (!Number.isInteger(hidden) || hidden < 1) throw new Error(`params: length ${params.length} is not 795·H + 10`);
const indices = Int32Array.from(args.indices ? args.indices.split(',').map(Number) : Array.from({ length: 100 }, (_, i) => i));
const h = Number(args.h);

// 1. Store the parameters once, under the SHA-256 of their bytes, and hold them until the reducer is done.
const bytes = Buffer.from(params.buffer, params.byteOffset, params.byteLength);
const version = createHash('sha256').update(bytes).digest('hex');
const holder = `example-grad-${randomBytes(6).toString('hex')}`;
const conn = new Redis(url, { maxRetriesPerRequest: null });
await conn.multi().set(`${prefix}:ng:params:${version}`, bytes, 'NX').sadd(`${prefix}:ng:params:${version}:holders`, holder).exec();

// 2. A flow: the `gradient` reducer (queue `reduce`) over `fd-shard` children (queue `shards`), one per coordinate range.
const batch = { kind: 'indices', count: indices.length, indices: Buffer.from(indices.buffer).toString('base64') };
const total = params.length;
const shards = Number(args.shards);
const children = Array.from({ length: shards }, (_, k) => ({
  name: 'fd-shard',
  queueName: 'shards',
  data: { v: 1, params: version, hidden, batch, h, start: Math.floor((k * total) / shards), end: Math.floor(((k + 1) * total) / shards) },
  opts: { attempts: 3, removeOnComplete: true, failParentOnFailure: true },
}));
// QueueEvents blocks on XREAD: a connection of its own.
const eventsConn = new Redis(url, { maxRetriesPerRequest: null });
const events = new QueueEvents('reduce', { connection: eventsConn, prefix });
const flows = new FlowProducer({ connection: conn, prefix });
try {
  await events.waitUntilReady(); // listen before adding, so the completion cannot be missed
  const t0 = performance.now();
  const node = await flows.add({
    name: 'gradient',
    queueName: 'reduce',
    data: { v: 1, params: version, hidden, batch, h, holder, resultTtl: 600 },
    opts: { jobId: holder, removeOnComplete: true },
    children,
  });
  // 3. The reducer's return value names the key of the assembled gradient (binary float64, little-endian).
  const result = await node.job.waitUntilFinished(events, 10 * 60_000);
  const gradient = await conn.getBuffer(result.key);
  await conn.del(result.key);
  if (gradient === null || gradient.length !== total * 8) throw new Error(`result ${result.key}: expected ${total * 8} bytes`);
  writeFileSync(args.out, Buffer.concat([npyHeader(total), gradient]));
  console.log(`gradient: ${total} values (H ${hidden}, batch ${indices.length}, ${shards} shards), batch loss ${result.loss}, ${((performance.now() - t0) / 1000).toFixed(2)} s; wrote ${args.out}`);
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

/** numpy.save's version 1.0 header for a float64 vector of n values (padded to 64 bytes, like numpy). */
function npyHeader(n) {
  let dict = `{'descr': '<f8', 'fortran_order': False, 'shape': (${n},), }${' '.repeat(21 - String(n).length)}`;
  dict += `${' '.repeat(64 - ((10 + dict.length + 1) % 64))}\n`;
  const pre = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  pre.writeUInt16LE(dict.length, 8);
  return Buffer.concat([pre, Buffer.from(dict, 'latin1')]);
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
