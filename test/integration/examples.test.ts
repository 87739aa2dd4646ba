import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatherBatch } from '../../src/core/dataset.js';
import { fdGradient } from '../../src/core/fd-engine.js';
import { initParams, sampleLosses } from '../../src/core/network.js';
import { encodeNpy } from '../../src/core/npy.js';
import { Rng, miniBatchIndices } from '../../src/core/prng.js';
import { reduceEvaluation } from '../../src/core/reduce.js';
import { createLogger } from '../../src/io/logger.js';
import { loadMnist } from '../../src/io/mnist.js';
import { writeNpyFile } from '../../src/io/npy-file.js';
import { QueueWorker } from '../../src/workers/queue-worker.js';
import { ROOT, cleanup, closeRedis, keysUnder, redisUrl, uniquePrefix } from '../helpers/redis.js';

/**
 * examples/*.mjs speak the job contract with plain BullMQ and ioredis; run against a real worker,
 * their answers are numgrad's own, bit for bit.
 */

const EXAMPLES = join(ROOT, 'examples');
let url = '';
let prefix = '';
let worker: QueueWorker | undefined;
let dir = '';

beforeAll(async () => {
  url = await redisUrl();
  prefix = uniquePrefix();
  dir = mkdtempSync(join(tmpdir(), 'numgrad-examples-'));
  worker = new QueueWorker({ redisUrl: url, prefix, threads: 1, logger: createLogger('silent', 'examples-test', false) });
  await worker.ready();
});

afterAll(async () => {
  await worker?.close();
  await cleanup(prefix, url);
  await closeRedis();
  rmSync(dir, { recursive: true, force: true });
});

function runExample(file: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const c = spawn(process.execPath, [join(EXAMPLES, file), ...args], { cwd: ROOT, env: { ...process.env, REDIS_URL: url, NUMGRAD_PREFIX: prefix }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    c.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

/** A seeded net (H = 50) and a seeded batch of 100 training images, saved as the examples' inputs. */
function inputs(seed: number): { params: Float64Array; indices: Int32Array; paramsFile: string } {
  const params = initParams(50, new Rng(seed));
  const indices = miniBatchIndices(seed, 0, 100, 60_000);
  const paramsFile = join(dir, `params-${seed}.npy`);
  writeNpyFile(paramsFile, params);
  return { params, indices, paramsFile };
}

describe('examples/ (plain BullMQ clients of the job contract)', () => {
  it('import nothing but bullmq, ioredis and node built-ins', () => {
    for (const f of ['submit-gradient.mjs', 'submit-cross-entropy.mjs']) {
      const text = readFileSync(join(EXAMPLES, f), 'utf8');
      const specs = [...text.matchAll(/^import\s[^'"]*['"]([^'"]+)['"]/gm)].map((m) => m[1]);
      expect(specs.length, f).toBeGreaterThan(0);
      for (const s of specs) expect(s, `${f} imports ${s}`).toMatch(/^(node:.+|bullmq|ioredis)$/);
    }
  });

  it('submit-gradient.mjs writes a .npy byte-identical to numpy.save(fdGradient) for the same params and indices', async () => {
    const { params, indices, paramsFile } = inputs(3);
    const out = join(dir, 'gradient.npy');
    const r = await runExample('submit-gradient.mjs', ['--params', paramsFile, '--indices', [...indices].join(','), '--shards', '3', '--out', out]);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.stdout).toMatch(/gradient: 39760 values \(H 50, batch 100, 3 shards\)/);
    const expected = Buffer.from(encodeNpy(fdGradient(params, gatherBatch(loadMnist('train'), indices), 1e-4)));
    const got = readFileSync(out);
    expect(got.length).toBe(expected.length);
    expect(got.equals(expected), 'the example’s gradient .npy differs from fdGradient’s').toBe(true);
    // It left nothing behind: the snapshot went with its last holder, the result was read and deleted.
    expect((await keysUnder(url, `${prefix}:ng`)).filter((k) => k.includes(':params:') || k.includes(':result:'))).toEqual([]);
  });

  it('submit-cross-entropy.mjs prints the loss and accuracy of sampleLosses on the same batch, exactly', async () => {
    const { params, indices, paramsFile } = inputs(4);
    const r = await runExample('submit-cross-entropy.mjs', ['--params', paramsFile, '--indices', [...indices].join(','), '--shards', '3']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    const s = sampleLosses(params, gatherBatch(loadMnist('train'), indices));
    const want = reduceEvaluation(s.losses, s.correct);
    const loss = /^loss (\S+)$/m.exec(r.stdout)?.[1];
    const accuracy = /^accuracy (\S+)$/m.exec(r.stdout)?.[1];
    expect(Number(loss), r.stdout).toBe(want.loss);
    expect(Number(accuracy), r.stdout).toBe(want.accuracy);
    expect(r.stdout).toContain(`(${want.correct} of 100 correct, H 50, 3 shards)`);
    expect((await keysUnder(url, `${prefix}:ng`)).filter((k) => k.includes(':params:'))).toEqual([]);
  });

  it('run without arguments (built-in weights, images 0–99)', async () => {
    const out = join(dir, 'default-gradient.npy');
    const g = await runExample('submit-gradient.mjs', ['--out', out]);
    expect(g.code, g.stdout + g.stderr).toBe(0);
    expect(readFileSync(out).length).toBe(128 + 39_760 * 8);
    const ce = await runExample('submit-cross-entropy.mjs', []);
    expect(ce.code, ce.stdout + ce.stderr).toBe(0);
    expect(ce.stdout).toMatch(/^loss \d+\.\d+$/m);
    expect(ce.stdout).toMatch(/of 100 correct/);
  });
});
