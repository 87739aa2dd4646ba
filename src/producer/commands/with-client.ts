import type { Config } from '../../io/config.js';
import type { QueueClient } from '../queue-client.js';

/** A command's QueueClient: Redis pinged first (a clear error, not a hang), always closed. */
export async function withClient<T>(config: Config, f: (c: QueueClient) => Promise<T>): Promise<T> {
  const queueClient = await import('../queue-client.js'); // BullMQ only when a command needs it
  const client = new queueClient.QueueClient({ redisUrl: config.redisUrl, prefix: config.prefix });
  try {
    await client.ping();
    return await f(client);
  } finally {
    await client.close();
  }
}
