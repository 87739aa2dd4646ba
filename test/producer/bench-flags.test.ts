import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '../..');
const run = (script: string, args: string[]) => spawnSync(process.execPath, [join(ROOT, 'dist/bench', script), ...args], { encoding: 'utf8', timeout: 30_000 });

describe('bench scripts: flags', () => {
  it('a bad value exits 2 with one line naming the flag; an unknown flag exits 2; --help exits 0', () => {
    const bad = run('pool-scaling.js', ['--windows', '0']);
    expect(bad.status).toBe(2);
    expect(bad.stderr.trim()).toBe('bench:pool: --windows must be an integer in [1, 100], got "0"');
    expect(run('pool-scaling.js', ['--threads', 'x']).stderr).toMatch(/--threads must be an integer/);
    expect(run('run.js', ['--runs', '-1']).status).toBe(2);
    expect(run('run.js', ['--bogus']).status).toBe(2);
    const help = run('pool-scaling.js', ['--help']);
    expect(help.status).toBe(0);
    expect(help.stdout).toMatch(/--pairs/);
  });
});
