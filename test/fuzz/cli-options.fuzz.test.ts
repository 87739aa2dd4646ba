/**
 * CLI arguments out of range, fuzzed: seeded fast-check values for --batch, --h, --hidden,
 * --threads, --iters and --lr of `numgrad gradient`, `train` and `evaluate` — integers below and
 * above the range, fractions, exponents, NaN/Infinity, empty and non-numeric strings. Each must end
 * with exit code 2 and one error line naming the command and the option ("numgrad train: --lr must
 * be a number > 0, got …"), never a stack trace. Most run in-process through main() (what the
 * binary runs), a seeded sample as real `numgrad` processes (exit code and stderr as a user sees them).
 *
 * Every generated value is outside the option's range by an independent check (the value read as a
 * JS number, as the docs say), so a value that slipped through validation would show up as a run,
 * which the small companion flags (--iters 1, --hidden 1, --batch 1) would keep short.
 */
import { spawn } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { main } from '../../src/producer/cli.js';
import type { Output } from '../../src/producer/output.js';
import { CLI, ROOT } from '../helpers/redis.js';

const SEED = process.env.NUMGRAD_FUZZ_SEED ? Number(process.env.NUMGRAD_FUZZ_SEED) : 20_260_707;
const PER_OPTION = process.env.NUMGRAD_FUZZ_CLI_RUNS ? Number(process.env.NUMGRAD_FUZZ_CLI_RUNS) : 60;
const PROCESSES = 6;

type Range = { kind: 'int'; min: number; max: number } | { kind: 'float'; gt: number; max: number };

interface OptionCase {
  readonly command: 'gradient' | 'train' | 'evaluate';
  readonly option: string;
  readonly range: Range;
}

/** The ranges the docs state (README, --help); the generated values lie outside them. */
const CASES: OptionCase[] = [
  { command: 'gradient', option: '--batch', range: { kind: 'int', min: 1, max: 60_000 } },
  { command: 'gradient', option: '--h', range: { kind: 'float', gt: 0, max: 1 } },
  { command: 'gradient', option: '--hidden', range: { kind: 'int', min: 1, max: 4096 } },
  { command: 'gradient', option: '--threads', range: { kind: 'int', min: 1, max: 256 } },
  { command: 'train', option: '--batch', range: { kind: 'int', min: 1, max: 60_000 } },
  { command: 'train', option: '--h', range: { kind: 'float', gt: 0, max: 1 } },
  { command: 'train', option: '--hidden', range: { kind: 'int', min: 1, max: 4096 } },
  { command: 'train', option: '--threads', range: { kind: 'int', min: 1, max: 256 } },
  { command: 'train', option: '--iters', range: { kind: 'int', min: 1, max: 10_000_000 } },
  { command: 'train', option: '--lr', range: { kind: 'float', gt: 0, max: Infinity } },
  { command: 'evaluate', option: '--hidden', range: { kind: 'int', min: 1, max: 4096 } },
  { command: 'evaluate', option: '--threads', range: { kind: 'int', min: 1, max: 256 } },
];

/** Whether `raw` is inside the range, reading it as a JS number (the documented rule). */
function inRange(raw: string, r: Range): boolean {
  if (raw.trim() === '') return false;
  const v = Number(raw.trim());
  if (r.kind === 'int') return Number.isInteger(v) && v >= r.min && v <= r.max;
  return Number.isFinite(v) && v > r.gt && v <= r.max;
}

/** Values outside `r`: just past each end, far past, fractions, exponents, non-numbers. */
function outside(r: Range): fc.Arbitrary<string> {
  const lo = r.kind === 'int' ? r.min : r.gt;
  const nums: fc.Arbitrary<number>[] = [
    fc.integer({ min: -1e9, max: Math.ceil(lo) - (r.kind === 'int' ? 1 : 0) }),
    fc.double({ max: lo, noNaN: true }),
  ];
  if (Number.isFinite(r.max)) nums.push(fc.integer({ min: Math.floor(r.max) + 1, max: Math.floor(r.max) + 1e6 }), fc.double({ min: r.max, minExcluded: true, noNaN: true }));
  if (r.kind === 'int') nums.push(fc.double({ min: r.min, max: r.max, noNaN: true }).filter((x) => !Number.isInteger(x)));
  const text: fc.Arbitrary<string>[] = [
    fc.oneof(...nums).map((x) => String(x)),
    fc.oneof(...nums).map((x) => x.toExponential()),
    fc.constantFrom('', ' ', 'NaN', 'nan', 'Infinity', '-Infinity', '1e400', '-0', '0', '1_000', '1,5', '0x', '12abc', 'ten', '--', '=', '½', '１２'),
    fc.string({ maxLength: 12 }),
  ];
  return fc.oneof(...text).filter((s) => !inRange(s, r) && !s.includes('\0'));
}

/** The small companions that keep a run short if validation ever let a value through. */
function argv(c: OptionCase, value: string): string[] {
  const extra: string[] = ['--backend', 'local'];
  if (c.command === 'train') {
    if (c.option !== '--iters') extra.push('--iters', '1');
    if (c.option !== '--hidden') extra.push('--hidden', '1');
    if (c.option !== '--batch') extra.push('--batch', '1');
  } else if (c.command === 'gradient') {
    if (c.option !== '--hidden') extra.push('--hidden', '1');
    if (c.option !== '--batch') extra.push('--batch', '1');
  } else if (c.option !== '--hidden') extra.push('--hidden', '1');
  // `--opt=value`: a value that starts with '-' stays the option's value.
  return [c.command, ...extra, `${c.option}=${value}`];
}

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
const expected = (c: OptionCase): RegExp => new RegExp(`^error: numgrad ${c.command}: ${escape(c.option)} must be `);
const STACK = /\n\s+at |\bat [\w.<>]+ \(|node:internal|\.js:\d+:\d+/;

describe('numgrad options out of range (in-process main)', () => {
  it.each(CASES)(`$command $option: ${PER_OPTION} seeded values outside its range each exit 2 naming the option, no stack trace`, async (c) => {
    const values = fc.sample(outside(c.range), { seed: SEED + CASES.indexOf(c), numRuns: PER_OPTION });
    const problems: string[] = [];
    for (const value of values) {
      const lines: string[] = [];
      const errors: string[] = [];
      const out: Output = { line: (t) => lines.push(t), json: (v) => lines.push(JSON.stringify(v)), error: (t) => errors.push(t) };
      const code = await main(argv(c, value), out);
      const text = errors.join('\n');
      if (code !== 2 || errors.length !== 1 || !expected(c).test(text) || STACK.test(text) || lines.length !== 0) {
        problems.push(`${c.option}=${JSON.stringify(value)} → exit ${code}, stderr ${JSON.stringify(text.slice(0, 300))}, stdout ${lines.length} line(s)`);
      }
    }
    expect(problems).toEqual([]);
  });
});

/** Runs the compiled CLI to its end; its exit code, signal and output. */
function runCli(args: string[]): Promise<{ status: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

describe('numgrad options out of range (real processes)', () => {
  it(`${PROCESSES} seeded values as \`numgrad\` processes: exit code 2, one stderr line naming the option, nothing on stdout`, async () => {
    const picks = fc.sample(fc.tuple(fc.constantFrom(...CASES), fc.nat()), { seed: SEED + 99, numRuns: PROCESSES });
    const problems: string[] = [];
    // Three at a time: a process spends most of its ~2 s starting up.
    for (let i = 0; i < picks.length; i += 3) {
      await Promise.all(
        picks.slice(i, i + 3).map(async ([c, k]) => {
          const [value] = fc.sample(outside(c.range), { seed: SEED + k, numRuns: 1 });
          const r = await runCli(argv(c, value));
          const err = r.stderr.trimEnd();
          if (r.status !== 2 || err.split('\n').length !== 1 || !expected(c).test(err) || STACK.test(err) || r.stdout !== '') {
            problems.push(`${c.command} ${c.option}=${JSON.stringify(value)} → exit ${r.status} ${r.signal ?? ''}, stderr ${JSON.stringify(err.slice(0, 300))}, stdout ${JSON.stringify(r.stdout.slice(0, 100))}`);
          }
        }),
      );
    }
    expect(problems).toEqual([]);
  }, 120_000);
});
