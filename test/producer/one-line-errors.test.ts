/**
 * Every error a user can cause is one line naming the command, the option or file, and what is
 * expected; exit 2; no stack trace. The table walks every command that takes files, a Redis or a
 * run id through its bad inputs, as a process (what a user sees on stderr).
 *
 * Before this table: `evaluate --backend local` with a params file of the wrong length printed a
 * stack trace from a piscina thread, with a NaN in it printed a loss and exited 0, `train --backend
 * local --detach` printed a stack trace (exit 1), and file errors named the file but not the command
 * or the option.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNpy } from '../../src/core/npy.js';
import { type RedisServer, cleanup, redisUrl, runCli, startRedisServer, uniquePrefix } from '../helpers/redis.js';

const STACK_FRAME = /^\s+at .+|\bat file:\/\/|node:internal/m;
const REFUSED = 'redis://127.0.0.1:1';

interface Case {
  /** The command line after `numgrad`; `F` stands for the fixtures folder. */
  readonly args: (f: Fixtures) => string[];
  /** What the error line must say after `error: numgrad <command>: `. */
  readonly says: (f: Fixtures) => RegExp;
  /** REDIS_URL for the case: a refused port unless told (so nothing reaches a shared Redis by accident). */
  readonly redis?: 'refused' | 'shared' | 'wrong-password';
}

interface Fixtures {
  readonly F: string;
  readonly shared: string;
  readonly wrongPassword: string;
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const H50 = 39_760;

/** Bad files: the same for every option that reads a params vector. */
const PARAMS_FILES: [string, (f: Fixtures) => RegExp][] = [
  ['short.npy', (f) => new RegExp(`--params ${esc(join(f.F, 'short.npy'))} must be of length 795·H \\+ 10 .*got "length 100"$`)],
  ['nan.npy', (f) => new RegExp(`--params ${esc(join(f.F, 'nan.npy'))}\\[5\\] must be a finite number, got NaN$`)],
  ['inf.npy', (f) => new RegExp(`--params ${esc(join(f.F, 'inf.npy'))}\\[39759\\] must be a finite number, got -Infinity$`)],
  ['not.npy', (f) => new RegExp(`--params ${esc(join(f.F, 'not.npy'))}: .*magic`)],
  ['int.npy', (f) => new RegExp(`--params ${esc(join(f.F, 'int.npy'))}: dtype int32: expected a float64`)],
  ['missing.npy', (f) => new RegExp(`--params ${esc(join(f.F, 'missing.npy'))}: file not found: expected a \\.npy file$`)],
  ['folder', (f) => new RegExp(`--params ${esc(join(f.F, 'folder'))}: is a folder: expected a \\.npy file$`)],
];

const MNIST_WRONG: [string, (f: Fixtures) => RegExp][] = [
  ['no-such-dir', (f) => new RegExp(`^--mnist-dir / MNIST_DIR ${esc(join(f.F, 'no-such-dir'))}: does not exist: expected a folder with the four uncompressed MNIST IDX files \\(train-images-idx3-ubyte, `)],
  ['folder', (f) => new RegExp(`^--mnist-dir / MNIST_DIR ${esc(join(f.F, 'folder'))}: has no train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte: expected a folder with the four`)],
  ['short.npy', (f) => new RegExp(`^--mnist-dir / MNIST_DIR ${esc(join(f.F, 'short.npy'))}: is not a folder: expected a folder with the four`)],
];

const CASES: Record<string, Case> = {};
for (const [file, says] of PARAMS_FILES) {
  CASES[`gradient --params ${file}`] = { args: (f) => ['gradient', '--backend', 'inline', '--batch', '2', '--params', join(f.F, file)], says };
  CASES[`evaluate --backend local --params ${file}`] = { args: (f) => ['evaluate', '--backend', 'local', '--threads', '1', '--params', join(f.F, file)], says };
  CASES[`evaluate --backend queue --params ${file}`] = { args: (f) => ['evaluate', '--backend', 'queue', '--params', join(f.F, file)], says };
}
Object.assign(CASES, <Record<string, Case>>{
  'gradient --indices float64': { args: (f) => ['gradient', '--backend', 'inline', '--indices', join(f.F, 'short.npy')], says: (f) => new RegExp(`--indices ${esc(join(f.F, 'short.npy'))}: dtype float64: expected integer indices`) },
  'gradient --indices out of range': { args: (f) => ['gradient', '--backend', 'inline', '--indices', join(f.F, 'big-index.npy')], says: (f) => new RegExp(`--indices ${esc(join(f.F, 'big-index.npy'))}\\[1\\] must be an integer in \\[0, 60000\\), got 60000$`) },
  'gradient --indices missing': { args: (f) => ['gradient', '--backend', 'inline', '--indices', join(f.F, 'missing.npy')], says: (f) => new RegExp(`--indices ${esc(join(f.F, 'missing.npy'))}: file not found`) },
  'gradient --indices a folder': { args: (f) => ['gradient', '--backend', 'inline', '--indices', join(f.F, 'folder')], says: () => /--indices .*folder: is a folder: expected a \.npy file$/ },
  'gradient --out a folder': { args: (f) => ['gradient', '--backend', 'inline', '--batch', '2', '--out', join(f.F, 'folder')], says: () => /--out .*folder is a folder: give the name of a file to write/ },
  'train --backend local --detach': { args: () => ['train', '--backend', 'local', '--detach'], says: () => /^--detach must be used with --backend queue or auto \(it submits the run to Redis and exits\), got "--backend local"$/ },
  'train --detach, Redis refusing connections': { args: () => ['train', '--detach'], says: () => /^--detach needs the queue: Redis at redis:\/\/127\.0\.0\.1:1 does not answer: .*ECONNREFUSED/ },
  'train --backend queue, Redis refusing connections': { args: () => ['train', '--backend', 'queue', '--iters', '2', '--out', join(tmpdir(), 'numgrad-never')], says: () => /^Redis at redis:\/\/127\.0\.0\.1:1 does not answer: .*ECONNREFUSED.* \(start it, or give the right --redis \/ REDIS_URL\)$/ },
  'train --backend queue, wrong password': { redis: 'wrong-password', args: () => ['train', '--backend', 'queue', '--iters', '2', '--out', join(tmpdir(), 'numgrad-never')], says: () => /^Redis at redis:\/\/\*\*\*@127\.0\.0\.1:\d+ refused the credentials \(check the password in --redis \/ REDIS_URL\)/ },
  'gradient --backend queue, Redis refusing connections': { args: () => ['gradient', '--backend', 'queue', '--batch', '2'], says: () => /^Redis at redis:\/\/127\.0\.0\.1:1 does not answer/ },
  'evaluate --backend queue, Redis refusing connections': { args: () => ['evaluate', '--backend', 'queue'], says: () => /^Redis at redis:\/\/127\.0\.0\.1:1 does not answer/ },
  'runs, Redis refusing connections': { args: () => ['runs'], says: () => /^Redis at redis:\/\/127\.0\.0\.1:1 does not answer/ },
  'runs, wrong password': { redis: 'wrong-password', args: () => ['runs'], says: () => /^Redis at redis:\/\/\*\*\*@127\.0\.0\.1:\d+ refused the credentials/ },
  'follow, Redis refusing connections': { args: () => ['follow', 'r1'], says: () => /^Redis at redis:\/\/127\.0\.0\.1:1 does not answer/ },
  'follow of a run that does not exist': { redis: 'shared', args: () => ['follow', 'no-such-run', '--out', join(tmpdir(), 'numgrad-never')], says: () => /^RUN must be the id of an existing run \(see `numgrad runs`\), got "no-such-run"$/ },
  'cancel of a run that does not exist': { redis: 'shared', args: () => ['cancel', 'no-such-run'], says: () => /^RUN must be the id of an existing run \(see `numgrad runs`\), got "no-such-run"$/ },
  'runs --redis not a URL': { args: () => ['--redis', 'localhost', 'runs'], says: () => /^--redis \/ REDIS_URL must be a URL like redis:\/\/host:6379/ },
});
for (const [dir, says] of MNIST_WRONG) {
  CASES[`gradient --mnist-dir ${dir}`] = { args: (f) => ['--mnist-dir', join(f.F, dir), 'gradient', '--backend', 'inline', '--batch', '2'], says };
  CASES[`evaluate --backend local --mnist-dir ${dir}`] = { args: (f) => ['--mnist-dir', join(f.F, dir), 'evaluate', '--backend', 'local', '--threads', '1'], says };
  CASES[`train --backend local --mnist-dir ${dir}`] = { args: (f) => ['--mnist-dir', join(f.F, dir), 'train', '--backend', 'local', '--iters', '1', '--threads', '1', '--out', join(f.F, 'out')], says };
}
CASES['start --mnist-dir (no Redis: local threads)'] = { args: (f) => ['--mnist-dir', join(f.F, 'folder'), 'start', '--iters', '1', '--out', join(f.F, 'out')], says: MNIST_WRONG[1][1] };
CASES['demo --mnist-dir'] = { args: (f) => ['--mnist-dir', join(f.F, 'no-such-dir'), 'demo', '--out', join(f.F, 'out')], says: MNIST_WRONG[0][1] };

/** The CLI without an MNIST_DIR from the environment (the cases name their own). */
const run = (args: string[], url: string, prefix: string) => runCli(args, { url, prefix, extra: { MNIST_DIR: '' } }, 60_000);

describe('one-line errors: every command through a table of bad inputs', () => {
  const prefix = uniquePrefix();
  let fx: Fixtures;
  let locked: RedisServer;
  beforeAll(async () => {
    const F = mkdtempSync(join(tmpdir(), 'numgrad-errors-'));
    const good = new Float64Array(H50).fill(0.01);
    writeFileSync(join(F, 'short.npy'), encodeNpy(new Float64Array(100)));
    writeFileSync(join(F, 'nan.npy'), encodeNpy(Float64Array.from(good, (v, i) => (i === 5 ? NaN : v))));
    writeFileSync(join(F, 'inf.npy'), encodeNpy(Float64Array.from(good, (v, i) => (i === H50 - 1 ? -Infinity : v))));
    writeFileSync(join(F, 'not.npy'), 'W1,b1,W2,b2\n0.1,0.2\n');
    writeFileSync(join(F, 'int.npy'), encodeNpy(new Int32Array(H50)));
    writeFileSync(join(F, 'big-index.npy'), encodeNpy(Int32Array.from([0, 60_000])));
    mkdirSync(join(F, 'folder'));
    locked = await startRedisServer({ requirepass: 'right-password' });
    fx = { F, shared: await redisUrl(), wrongPassword: locked.url.replace('right-password', 'wrong-password') };
  }, 30_000);
  afterAll(async () => {
    await locked?.stop();
    await cleanup(prefix, fx.shared);
    rmSync(fx.F, { recursive: true, force: true });
  });

  it.for(Object.entries(CASES))('%s', { timeout: 120_000 }, async ([_name, c]) => {
    const url = c.redis === 'shared' ? fx.shared : c.redis === 'wrong-password' ? fx.wrongPassword : REFUSED;
    const args = c.args(fx);
    const r = await run(args, url, prefix);
    expect(r.stderr, 'no stack frame').not.toMatch(STACK_FRAME);
    expect(r.code, r.stderr).toBe(2);
    const errors = r.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors, r.stderr).toHaveLength(1);
    const command = args.find((a) => /^[a-z]+$/.test(a) && !a.startsWith('-') && ['gradient', 'evaluate', 'train', 'start', 'demo', 'runs', 'follow', 'cancel'].includes(a));
    const head = `error: numgrad ${command}: `;
    expect(errors[0].startsWith(head), `${errors[0]} starts with ${head}`).toBe(true);
    expect(errors[0].slice(head.length)).toMatch(c.says(fx));
    // Nothing else but the backend notice may precede it: no half-done work, no log dump.
    const others = r.stderr.split('\n').filter((l) => l !== '' && !l.startsWith('error: ') && !l.startsWith('backend: '));
    expect(others, r.stderr).toEqual([]);
  });
});
