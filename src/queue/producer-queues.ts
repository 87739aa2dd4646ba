import { FlowProducer, Queue, type QueueEvents } from 'bullmq';
import { QUEUES } from '../core/contract.js';
import { type Connection, connect } from '../io/redis.js';
import { EVENTS_STREAMS } from './flows.js';
import { Keys } from './keys.js';
import { openReduceEvents } from './reduce-events.js';
import { Store } from './store.js';

/**
 * What a submitter (the queue client, the function client) holds: one fail-fast producer
 * connection with the store, the flow producer and both queues on it, and the reduce queue's
 * events, opened on first use on a connection of their own.
 */
export class ProducerQueues {
  readonly conn: Connection;
  readonly store: Store;
  readonly flows: FlowProducer;
  readonly shards: Queue;
  readonly reduce: Queue;
  private events: QueueEvents | undefined;
  private eventsConn: Connection | undefined;

  constructor(
    private readonly redisUrl: string,
    private readonly prefix: string,
  ) {
    this.conn = connect(redisUrl, 'producer');
    this.store = new Store(this.conn, new Keys(prefix));
    this.flows = new FlowProducer({ connection: this.conn, prefix });
    // Events streams are capped so BullMQ's bookkeeping stays bounded.
    this.shards = new Queue(QUEUES.shards, { connection: this.conn, prefix, streams: EVENTS_STREAMS });
    this.reduce = new Queue(QUEUES.reduce, { connection: this.conn, prefix, streams: EVENTS_STREAMS });
    // Errors reach the caller through commands and pings. Without a listener BullMQ prints each
    // 'error' event with console.error, and an auth error's stack carries the AUTH command and its password.
    this.flows.on('error', () => undefined);
    for (const q of [this.shards, this.reduce]) q.on('error', () => undefined);
  }

  /** The reduce queue's events (see openReduceEvents), opened on first use. */
  async reduceEvents(): Promise<QueueEvents> {
    if (this.events === undefined) {
      const { events, conn } = await openReduceEvents(this.redisUrl, this.prefix);
      this.eventsConn = conn;
      this.events = events;
    }
    return this.events;
  }

  /** Closes everything, the events first (the caller makes it safe to call twice). */
  async close(): Promise<void> {
    await this.events?.close();
    this.eventsConn?.disconnect();
    await this.flows.close();
    await this.shards.close();
    await this.reduce.close();
    this.conn.disconnect();
  }
}
