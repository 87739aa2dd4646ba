/**
 * The layering rule of eslint.config.js (docs/ARCHITECTURE.md): a layer imports only layers below it.
 * Each case lints one deliberate violation as if it stood in a file of that layer.
 */
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ESLint } from 'eslint';
import { describe, expect, it } from 'vitest';

const eslint = new ESLint({ cwd: resolve(dirname(fileURLToPath(import.meta.url)), '../..') });

async function restricted(filePath: string, code: string): Promise<string[]> {
  const [r] = await eslint.lintText(code, { filePath });
  return r.messages.filter((m) => m.ruleId === 'no-restricted-imports').map((m) => m.message);
}

describe('the layering lint rule', () => {
  it.each([
    ['src/core/losses.ts', "export { connect } from '../io/redis.js';", /src\/core is the bottom layer/],
    ['src/core/wasm/emit.ts', "export { Store } from '../../queue/store.js';", /src\/core is the bottom layer/],
    ['src/io/config.ts', "export { Keys } from '../queue/keys.js';", /src\/io stands on src\/core only/],
    ['src/queue/keys.ts', "export { QueueWorker } from '../workers/queue-worker.js';", /src\/queue .* stands on src\/core and src\/io only/],
    ['src/workers/threads/lru.ts', "export { Reducers } from '../reducers.js';", /not on the worker process/],
    ['src/workers/threads/pool.ts', "export { Store } from '../../queue/store.js';", /src\/workers\/threads/],
    ['src/workers/reducers.ts', "export { buildProgram } from '../producer/cli.js';", /never on the dashboard or the CLI/],
    ['src/dashboard/auth.ts', "export { QueueWorker } from '../workers/queue-worker.js';", /never imports the worker process or the CLI/],
  ])('%s: %s is refused', async (file, code, why) => {
    const messages = await restricted(file, code);
    expect(messages).toHaveLength(1);
    expect(messages[0]).toMatch(why);
  });

  it.each([
    ['src/queue/store.ts', "export { connect } from '../io/redis.js';"],
    ['src/workers/reducers.ts', "export { Store } from '../queue/store.js';"],
    ['src/workers/threads/pool.ts', "export { loadMnist } from '../../io/mnist.js';"],
    ['src/producer/backend.ts', "export { QueueWorker } from '../workers/queue-worker.js';"],
  ])('%s: %s is allowed', async (file, code) => {
    expect(await restricted(file, code)).toEqual([]);
  });
});
