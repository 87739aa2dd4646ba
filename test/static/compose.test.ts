import { type Dirent, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type Compose, argv, checkCompose, checkDockerfile, containerPort, dockerStages, envOf, optionValue, parseNumgrad, readCompose, runtimeImportsOutsideDependencies,
} from './compose-check.js';

const ROOT = process.cwd();
const { text, compose } = readCompose();
const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
const dockerignore = readFileSync(join(ROOT, '.dockerignore'), 'utf8');
/** Files under src/ that tsc does not emit (the dashboard page): the image must copy them itself. */
const assets = (readdirSync(join(ROOT, 'src'), { recursive: true, withFileTypes: true }) as Dirent[])
  .filter((d) => d.isFile() && !d.name.endsWith('.ts'))
  .map((d) => join(d.parentPath, d.name).slice(ROOT.length + 1));

const copy = (): Compose => structuredClone(compose);

describe('docker-compose.yml against the code', () => {
  it('has no problems: commands, options, variable names, ports, scaling', () => {
    expect(checkCompose(compose, text)).toEqual([]);
  });

  it('runs real numgrad commands in worker, dashboard and producer', () => {
    expect(argv(compose.services.worker.command)).toEqual(['numgrad', 'worker']);
    expect(argv(compose.services.dashboard.command).slice(0, 2)).toEqual(['numgrad', 'dashboard']);
    expect(argv(compose.services.producer.command)[0]).toBe('numgrad');
    // What the README tells people to run through the producer parses too.
    expect(parseNumgrad(['train', '--backend', 'queue', '--out', 'out/train'])).toBeUndefined();
  });

  it('sets REDIS_URL to the redis service, with the password, for every numgrad service', () => {
    for (const name of ['worker', 'dashboard', 'producer']) {
      expect(envOf(compose.services[name]).REDIS_URL, name).toBe('redis://:${REDIS_PASSWORD:?set REDIS_PASSWORD}@redis:6379');
    }
  });

  it('keeps Redis unpublished and the worker scalable', () => {
    expect(compose.services.redis.ports).toBeUndefined();
    expect(compose.services.worker.ports).toBeUndefined();
    expect(compose.services.worker.container_name).toBeUndefined();
  });

  it('publishes the dashboard on the port it listens on and health-checks that port', () => {
    const d = compose.services.dashboard;
    const port = Number(optionValue(argv(d.command), '--port'));
    expect(d.ports?.map(containerPort)).toEqual([port]);
    expect(JSON.stringify(d.healthcheck?.test)).toContain(`:${port}/healthz`);
  });
});

describe('the compose check fails on mistakes (so a green check means something)', () => {
  it('a command that does not exist: numgrad wroker', () => {
    const c = copy();
    c.services.worker.command = ['numgrad', 'wroker'];
    const errors = checkCompose(c, text);
    expect(errors.some((e) => e.startsWith('service worker:') && /unknown command 'wroker'/.test(e)), errors.join('\n')).toBe(true);
  });

  it('an option the command does not have', () => {
    const c = copy();
    c.services.dashboard.command = ['numgrad', 'dashboard', '--host', '0.0.0.0', '--prot', '3000'];
    const errors = checkCompose(c, text);
    expect(errors.some((e) => e.startsWith('service dashboard:') && /unknown option '--prot'/.test(e)), errors.join('\n')).toBe(true);
  });

  it('an option of another command (worker options on the dashboard)', () => {
    const c = copy();
    c.services.dashboard.command = ['numgrad', 'dashboard', '--port', '3000', '--host', '0.0.0.0', '--no-reducer'];
    expect(checkCompose(c, text).join('\n')).toMatch(/unknown option '--no-reducer'/);
  });

  it('a misspelt environment variable', () => {
    const c = copy();
    const env = c.services.worker.environment as Record<string, string>;
    env.NUMGRAD_PREFX = env.NUMGRAD_PREFIX;
    delete env.NUMGRAD_PREFIX;
    expect(checkCompose(c, text).join('\n')).toMatch(/environment NUMGRAD_PREFX is not a variable numgrad reads/);
    expect(checkCompose(c, text.replace('${NUMGRAD_PREFIX', '${NUMGRAD_PREFX')).join('\n')).toMatch(/\$\{NUMGRAD_PREFX\}: not a variable/);
  });

  it('a missing REDIS_URL', () => {
    const c = copy();
    delete (c.services.producer.environment as Record<string, string>).REDIS_URL;
    expect(checkCompose(c, text).join('\n')).toMatch(/service producer: environment REDIS_URL is not set/);
  });

  it('ports that disagree', () => {
    const c = copy();
    c.services.dashboard.ports = ['3000:8080'];
    expect(checkCompose(c, text).join('\n')).toMatch(/publishes container port 8080, but listens on --port 3000/);
    const d = copy();
    d.services.dashboard.command = ['numgrad', 'dashboard', '--host', '0.0.0.0', '--port', '3001'];
    const errors = checkCompose(d, text).join('\n');
    expect(errors).toMatch(/publishes container port 3000, but listens on --port 3001/);
    expect(errors).toMatch(/healthcheck fetches port 3000, but the dashboard listens on --port 3001/);
  });

  it('a published Redis and an unscalable worker', () => {
    const c = copy();
    c.services.redis.ports = ['6379:6379'];
    c.services.worker.container_name = 'numgrad-worker';
    c.services.worker.ports = ['9000:9000'];
    const errors = checkCompose(c, text).join('\n');
    expect(errors).toMatch(/service redis: published/);
    expect(errors).toMatch(/container_name prevents --scale/);
    expect(errors).toMatch(/published ports prevent --scale/);
  });
});

describe('Dockerfile', () => {
  it('has no problems: multi-stage node:20, npm ci --omit=dev, non-root USER, numgrad on PATH', () => {
    expect(checkDockerfile(dockerfile, dockerignore, assets)).toEqual([]);
    const stages = dockerStages(dockerfile);
    expect(stages.length).toBe(2);
    expect(stages.map((s) => s.from)).toEqual(['node:20-bookworm-slim', 'node:20-bookworm-slim']);
  });

  it('the check fails on a root runtime, a dev install, an old base image and an ignored input', () => {
    expect(checkDockerfile(dockerfile.replace(/^USER node$/m, ''), dockerignore).join('\n')).toMatch(/runs as root/);
    expect(checkDockerfile(dockerfile.replace('npm ci --omit=dev', 'npm ci'), dockerignore).join('\n')).toMatch(/--omit=dev/);
    expect(checkDockerfile(dockerfile.replace(/node:20-bookworm-slim AS runtime/, 'node:18-slim AS runtime'), dockerignore).join('\n')).toMatch(/expected node:20/);
    expect(checkDockerfile(dockerfile, `${dockerignore}\nsrc\n`).join('\n')).toMatch(/COPY src, but .dockerignore excludes it/);
  });

  it('copies the run-time files tsc does not emit (and the check notices when it does not)', () => {
    expect(assets).toContain('src/dashboard/public/index.html');
    expect(checkDockerfile(dockerfile, dockerignore, assets)).toEqual([]);
    const without = dockerfile.replace(/^COPY --from=build \/app\/src\/dashboard\/public.*$/m, '');
    expect(checkDockerfile(without, dockerignore, assets).join('\n')).toMatch(/does not copy src\/dashboard\/public\/index.html/);
  });

  it('the wrapper runs a file the build produces', () => {
    expect(dockerfile).toContain('/app/dist/src/producer/cli.js');
    // tsc maps src/producer/cli.ts to dist/src/producer/cli.js (rootDir "."), which the runtime copies.
    expect(readFileSync(join(ROOT, 'src/producer/cli.ts'), 'utf8')).toMatch(/^#!\/usr\/bin\/env node/);
    expect(dockerfile).toMatch(/COPY --from=build \/app\/dist\/src \.\/dist\/src/);
  });

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
