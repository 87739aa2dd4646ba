import { afterAll, describe, expect, it } from 'vitest';
import { QueueClient } from '../../src/producer/queue-client.js';
import { cleanup, keysUnder, redisUrl, uniquePrefix } from '../helpers/redis.js';

const prefix = uniquePrefix();
afterAll(async () => {
  const url = await redisUrl();
  await cleanup(prefix, url);
  expect(await keysUnder(url, prefix)).toEqual([]);
});

describe('QueueClient readiness', () => {
  it('a new client waits for its fail-fast connection: commands issued at once succeed', async () => {
    const url = await redisUrl();
    for (let k = 0; k < 5; k++) {
      const client = new QueueClient({ redisUrl: url, prefix });
      try {
        // Several commands at once, before anything else touched the connection.
        const [runs, again, missing] = await Promise.all([client.listRuns(), client.listRuns(5), client.run('no-such-run').catch((e: Error) => e)]);
        expect(runs).toEqual([]);
        expect(again).toEqual([]);
        expect(String(missing)).toMatch(/RUN must be the id of an existing run/);
      } finally {
        await client.close();
      }
    }
  });

  it('a client whose Redis does not answer fails each command with the redacted URL, not a hang', async () => {
    const client = new QueueClient({ redisUrl: 'redis://:secret@127.0.0.1:1', prefix: 'ngtest-ready-down' });
    try {
      const t0 = Date.now();
      const err = (await client.listRuns().catch((e: Error) => e)) as Error;
      expect(err.message).toMatch(/Redis at redis:\/\/\*\*\*@127\.0\.0\.1:1 does not answer/);
      expect(err.message).not.toContain('secret');
      expect(Date.now() - t0).toBeLessThan(10_000);
    } finally {
      await client.close();
    }
  });
});
