/**
 * Rows for `npm run bench`: a fresh `numgrad gradient --backend local` process per run (node start,
 * module loading, the batch's images, thread start-up, JIT warm-up, the gradient, the written .npy),
 * beside the warm per-gradient time of the local pool rows and the textbook, in the same run. The
 * goal (issue 14): cold wall ≤ 2.5 × the warm per-gradient time + 0.3 s, on 1 and on all threads.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fdGradient } from '../src/core/fd-engine.js';
import { readNpyFile } from '../src/io/npy-file.js';
import { NODE_FLAGS } from '../src/producer/node-flags.js';
import { START_THREADS_AFTER_MS } from '../src/workers/threads/one-off-gradient.js';
import { REPO } from './contenders.js';
import type { Contender, Row } from './run.js';

const CLI = join(REPO, 'dist/src/producer/cli.js');
export const COLD_PREFIX = 'numgrad gradient, cold one-off process';
/** Cold wall ≤ SLOPE × warm + OFFSET seconds. */
const SLOPE = 2.5;
const OFFSET = 0.3;

export function coldGradientContender(threads: number): Contender {
  let want: Buffer | undefined;
  // One object for every run (the row keeps the first run's info): how often worker threads started.
  const info = { wallSeconds: 0, runs: 0, runsWithWorkerThreads: 0, runsSharedWithWorkerThreads: 0 };
  return {
    name: `${COLD_PREFIX}, ${threads} thread${threads > 1 ? 's' : ''} (\`numgrad gradient --backend local --threads ${threads} --out\`: spawn to exit)`,
    warmup: 0,
    run(ctx) {
      const out = join(ctx.tmpDir, `cold-${threads}.npy`);
      // With the flags of the `numgrad` bin (its shebang): the process a user starts.
      const args = [...NODE_FLAGS, CLI, 'gradient', '--backend', 'local', '--threads', String(threads), '--params', ctx.paramsPath, '--indices', ctx.indicesPath, '--out', out, '--json'];
      const t0 = performance.now();
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', env: { ...process.env, LOG_LEVEL: 'warn' } });
      const seconds = (performance.now() - t0) / 1000;
      if (r.status !== 0) throw new Error(`numgrad gradient exited with ${r.status}: ${r.stderr}`);
      const j = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as { seconds: number; wallSeconds: number; threads: { units: number; mainThreadUnits: number; threadsStartedAt: number | null } };
      want ??= Buffer.from(fdGradient(ctx.params, ctx.batch, ctx.h).buffer);
      const got = readNpyFile(out).data as Float64Array;
      if (!Buffer.from(got.buffer, got.byteOffset, got.byteLength).equals(want)) throw new Error(`${out}: not the bytes of fdGradient`);
      return {
        seconds,
        // compute: the gradient itself (its JSON `seconds`); the rest is start-up, inputs, writing and exit.
        parts: { compute: j.seconds, 'start-up, inputs, .npy, exit': seconds - j.seconds },
        info: Object.assign(info, {
          wallSeconds: j.wallSeconds,
          runs: info.runs + 1,
          runsWithWorkerThreads: info.runsWithWorkerThreads + (j.threads.threadsStartedAt !== null ? 1 : 0),
          runsSharedWithWorkerThreads: info.runsSharedWithWorkerThreads + (j.threads.mainThreadUnits < j.threads.units ? 1 : 0),
        }),
      };
    },
  };
}

export const NODE_FLOOR = 'node process start and exit, nothing loaded';

/**
 * `node -e ''` with the bin's flags, spawn to exit: what any one-off command pays before numgrad's
 * first module (this machine's Node, and its environment: NODE_EXTRA_CA_CERTS, when set, is read at
 * every start). The cold rows' start-up is this plus numgrad's own.
 */
export function nodeFloorContender(): Contender {
  return {
    name: `${NODE_FLOOR} (\`node ${NODE_FLAGS.join(' ')} -e ''\`: spawn to exit)`,
    warmup: 0,
    run() {
      const t0 = performance.now();
      const r = spawnSync(process.execPath, [...NODE_FLAGS, '-e', ''], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`node -e '' exited with ${r.status}: ${r.stderr}`);
      return { seconds: (performance.now() - t0) / 1000 };
    },
  };
}

/** Lines for the summary: each cold row against 2.5 × the warm row of the same thread count + 0.3 s. */
export function coldLines(rows: readonly Row[]): string[] {
  const L: string[] = [];
  for (const cold of rows.filter((r) => r.name.startsWith(COLD_PREFIX))) {
    const threads = Number(/, (\d+) threads?/.exec(cold.name.slice(COLD_PREFIX.length))?.[1]);
    const warm = rows.find((r) => r.name.startsWith(`numgrad local pool, ${threads} thread${threads > 1 ? 's' : ''} `));
    if (warm === undefined) continue;
    const bound = SLOPE * warm.medianSeconds + OFFSET;
    const verdict = cold.medianSeconds <= bound ? 'ok' : '**not met**';
    const i = cold.info;
    const who = threads > 1 && i !== undefined ? ` Worker threads started in ${i.runsWithWorkerThreads} of ${i.runs} runs and ran units in ${i.runsSharedWithWorkerThreads} (they start only for work left after ${START_THREADS_AFTER_MS} ms; the main thread computes from the start).` : '';
    L.push(`- cold one-off \`numgrad gradient\`, ${threads} thread${threads > 1 ? 's' : ''}: ${fmt(cold.medianSeconds)} from spawn to exit (median; compute ${fmt(cold.parts?.compute ?? NaN)}), warm per-gradient ${fmt(warm.medianSeconds)}: goal ≤ ${SLOPE} × warm + ${OFFSET} s = ${fmt(bound)}: ${verdict}.${who}`);
  }
  const floor = rows.find((r) => r.name.startsWith(NODE_FLOOR));
  if (floor !== undefined && L.length > 0) L.push(`- of which Node itself, starting and exiting with nothing loaded: ${fmt(floor.medianSeconds)} (median${process.env.NODE_EXTRA_CA_CERTS ? '; NODE_EXTRA_CA_CERTS is set here, and Node reads it at every start' : ''}).`);
  if (L.length > 0) L.unshift('## A cold one-off gradient', '', 'A fresh process per run (with the `numgrad` bin\'s Node flags), against the warm local pool row of the same thread count in the same run:', '');
  if (L.length > 0) L.push('');
  return L;
}

const fmt = (s: number): string => (s < 1 ? `${(s * 1000).toFixed(0)} ms` : `${s.toFixed(2)} s`);
