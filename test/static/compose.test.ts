import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Compose, checkCompose, envOf, readCompose, runtimeImportsOutsideDependencies } from './compose-check.js';

// What a real run cannot check (see compose-check.ts); the rest is `npm run test:docker`.
const ROOT = process.cwd();
const { text, compose } = readCompose();
const copy = (): Compose => structuredClone(compose);

describe('docker-compose.yml: what a real run cannot check', () => {
  it('has no problems: variable names, Redis persistence and exposure, start order, the producer profile', () => {
    expect(checkCompose(compose, text)).toEqual([]);
  });

  it('fails on a misspelt environment variable, set or interpolated (a run would silently use the default)', () => {
    const c = copy();
    const env = c.services.worker.environment as Record<string, string>;
    env.NUMGRAD_THREAD = env.NUMGRAD_THREADS;
    delete env.NUMGRAD_THREADS;
    expect(checkCompose(c, text).join('\n')).toMatch(/service worker: environment NUMGRAD_THREAD is not a variable numgrad reads/);
    expect(checkCompose(compose, text.replace('${NUMGRAD_PREFIX', '${NUMGRAD_PREFX')).join('\n')).toMatch(/\$\{NUMGRAD_PREFX\}: not a variable/);
    expect(Object.keys(envOf(compose.services.worker))).toContain('NUMGRAD_THREADS');
  });

  it('fails on a Redis without AOF or noeviction, or published to the host', () => {
    const c = copy();
    c.services.redis.command = ['redis-server', '--requirepass', '${REDIS_PASSWORD:?set REDIS_PASSWORD}'];
    c.services.redis.ports = ['6379:6379'];
    const errors = checkCompose(c, text).join('\n');
    expect(errors).toMatch(/command lacks --appendonly yes/);
    expect(errors).toMatch(/command lacks --maxmemory-policy noeviction/);
    expect(errors).toMatch(/service redis: published/);
  });

  it('fails on a numgrad service that does not wait for a healthy Redis, and on a producer started by `up`', () => {
    const c = copy();
    c.services.worker.depends_on = ['redis'];
    delete c.services.producer.profiles;
    const errors = checkCompose(c, text).join('\n');
    expect(errors).toMatch(/service worker: depends_on redis should wait for condition service_healthy/);
    expect(errors).toMatch(/service producer: should be in profile "tools"/);
  });
});

describe('the image has what the code imports', () => {
  it('everything src/ imports at run time is a production dependency (the image has no devDependencies)', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    const files = (readdirSync(join(ROOT, 'src'), { recursive: true }) as string[])
      .filter((f) => f.endsWith('.ts'))
      .map((f) => ({ path: `src/${f}`, text: readFileSync(join(ROOT, 'src', f), 'utf8') }));
    expect(files.length).toBeGreaterThan(10);
    expect(runtimeImportsOutsideDependencies(files, Object.keys(pkg.dependencies))).toEqual([]);
    expect(runtimeImportsOutsideDependencies([{ path: 'x.ts', text: "import { parse } from 'yaml';" }], Object.keys(pkg.dependencies))).toHaveLength(1);
  });
});
