import { QueueEvents } from 'bullmq';
import { QUEUES } from '../core/contract.js';
import { type Connection, connect } from '../io/redis.js';

/**
 * BullMQ QueueEvents on the reduce queue, for waiting on parents: on a connection of its own (it
 * blocks on XREAD) with the workers' retry-forever settings, reading from the stream's end as it is
 * now, not from wherever it is when the first XREAD goes out: the events of a job added after this
 * call cannot be missed, however fast it finishes. The caller closes both.
 */
export async function openReduceEvents(redisUrl: string, prefix: string): Promise<{ events: QueueEvents; conn: Connection }> {
  const conn = connect(redisUrl, 'worker');
  const last = (await conn.xrevrange(`${prefix}:${QUEUES.reduce}:events`, '+', '-', 'COUNT', 1))[0]?.[0] ?? '0-0';
  const events = new QueueEvents(QUEUES.reduce, { connection: conn, prefix, lastEventId: last });
  events.on('error', () => undefined);
  await events.waitUntilReady();
  return { events, conn };
}
