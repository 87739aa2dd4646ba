#!/usr/bin/env node
// The gradient (or Jacobian) of a function registered on numgrad workers, at k points, with
// nothing but BullMQ and ioredis: the job contract of docs/JOBS.md ("Registered functions") is
// all a client needs (this file imports no numgrad module).
//
//   REDIS_URL=redis://127.0.0.1:6379 NUMGRAD_PREFIX=numgrad \
//   node examples/submit-function.mjs [--function rosenbrock] [--points "1,2,3;0.5,0.5,0.5"] [--method central|2-point|3-point] [--shards 2] [--args '{"k":1}']
//
// Prints one line per point: its gradient (n values) or Jacobian (m rows of n).
import { randomBytes } from 'node:crypto';
import { parseArgs } from 'node:util';
import { FlowProducer, QueueEvents } from 'bullmq';
import { Redis } from 'ioredis';

const { values: opt } = parseArgs({
  options: {
    function: { type: 'string', default: 'rosenbrock' },
    points: { type: 'string', default: '1,2,3;-1.2,1,0.5' },
    method: { type: 'string', default: 'central' },
    shards: { type: 'string', default: '2' },
    args: { type: 'string' },
    timeout: { type: 'string', default: '60000' },
  },
});
const url = process.env.REDIS_URL || 'redis://127.0.0.1:6379';
const prefix = process.env.NUMGRAD_PREFIX || 'numgrad';
const points = opt.points.split(';').map((p) => Float64Array.from(p.split(',').map(Number)));
const k = points.length;
const n = points[0].length;
const b64 = (a) => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

// A flow: the `fn-diff` reducer (queue `reduce`) over `fn-diff-shard` children (queue `shards`),
// each a range of coordinates of one point. A function's failure is final: attempts 1.
const id = `example-fn-${randomBytes(6).toString('hex')}`;
const shards = Math.min(Number(opt.shards), n);
const children = [];
points.forEach((x, p) => {
  for (let s = 0; s < shards; s++) {
    const start = Math.floor((s * n) / shards);
    const end = Math.floor(((s + 1) * n) / shards);
    const data = { v: 1, fn: opt.function, method: opt.method, point: p, n, x: b64(x), start, end, timeoutMs: Number(opt.timeout), ...(opt.args ? { args: JSON.parse(opt.args) } : {}) };
    children.push({ name: 'fn-diff-shard', queueName: 'shards', data, opts: { jobId: `${id}-p-${p}-s-${s}`, attempts: 1, removeOnComplete: true, removeOnFail: { count: 1000 }, failParentOnFailure: true } });
  }
});

const conn = new Redis(url, { maxRetriesPerRequest: null });
const eventsConn = conn.duplicate();
const events = new QueueEvents('reduce', { connection: eventsConn, prefix });
await events.waitUntilReady();
const done = new Promise((resolve, reject) => {
  events.on('completed', ({ jobId, returnvalue }) => jobId === id && resolve(typeof returnvalue === 'string' ? JSON.parse(returnvalue) : returnvalue));
  events.on('failed', ({ jobId, failedReason }) => jobId === id && reject(new Error(failedReason)));
});
const flows = new FlowProducer({ connection: conn, prefix });
await flows.add({ name: 'fn-diff', queueName: 'reduce', data: { v: 1, fn: opt.function, k, n, resultTtl: 600 }, opts: { jobId: id, attempts: 1, removeOnComplete: true, removeOnFail: { count: 1000 } }, children });

try {
  // The reducer returns { key, bytes, k, n, m, scalar }; the result is raw float64 LE at `key`:
  // k × n (a number-valued f) or k × m × n (a vector-valued f), row-major.
  const r = await done;
  const raw = await conn.getBuffer(r.key);
  await conn.del(r.key);
  const all = new Float64Array(new Uint8Array(raw).buffer);
  for (let p = 0; p < k; p++) {
    const rows = Array.from({ length: r.m }, (_, j) => Array.from(all.subarray((p * r.m + j) * n, (p * r.m + j + 1) * n)));
    console.log(`point ${p}: ${JSON.stringify(r.scalar ? rows[0] : rows)}`);
  }
} catch (err) {
  // `child <key> failed`: the shard's own failedReason names the function, the point and the coordinate.
  const m = /^child (.+):shards:(.+) failed$/.exec(err.message);
  const reason = m ? await conn.hget(`${m[1]}:shards:${m[2]}`, 'failedReason') : err.message;
  console.error(`error: ${reason}`);
  process.exitCode = 1;
} finally {
  await flows.close();
  await events.close();
  eventsConn.disconnect();
  conn.disconnect();
}
