import { readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { join } from 'node:path';
import { type Command, CommanderError } from 'commander';
import { parse } from 'yaml';
import { ENV } from '../../src/io/config.js';
import { buildProgram } from '../../src/producer/cli.js';
import type { Output } from '../../src/producer/output.js';

/**
 * Static checks of docker-compose.yml and Dockerfile against the code, for a machine without a
 * Docker engine: a command, option or variable name that the code does not know is a failure here
 * rather than a container that exits at start-up.
 */

export type Compose = { services: Record<string, Service>; [k: string]: unknown };
export type Service = {
  image?: string;
  command?: string | string[];
  environment?: Record<string, string | number | null> | string[];
  ports?: (string | number | { target: number; published?: number | string })[];
  container_name?: string;
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
  profiles?: string[];
  [k: string]: unknown;
};

const ROOT = process.cwd();
/** Variables the compose file may interpolate that no numgrad process reads (only Redis and the URLs). */
export const COMPOSE_ONLY_VARS = ['REDIS_PASSWORD'];
/** Names in numgrad's namespaces: each must be one src/io/config.ts reads. */
const OURS = /^(NUMGRAD|REDIS|LOG|DASHBOARD|MNIST)_[A-Z0-9_]*$/;
const KNOWN = new Set<string>(Object.values(ENV));

export function readCompose(path = join(ROOT, 'docker-compose.yml')): { text: string; compose: Compose } {
  const text = readFileSync(path, 'utf8');
  // merge: compose honours YAML merge keys (`<<: *numgrad`); the parsed services must too.
  return { text, compose: parse(text, { merge: true }) as Compose };
}

/** A command as an argv array (compose accepts a string, split on spaces like a shell would for ours). */
export function argv(cmd: Service['command']): string[] {
  if (cmd === undefined) return [];
  return Array.isArray(cmd) ? cmd.map(String) : cmd.trim().split(/\s+/);
}

export function envOf(s: Service): Record<string, string> {
  const env = s.environment;
  if (env === undefined) return {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((e) => [e.split('=')[0], e.slice(e.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, v === null ? '' : String(v)]));
}

const silent: Output = { line: () => undefined, json: () => undefined, error: () => undefined };

function allCommands(c: Command): Command[] {
  return [c, ...c.commands.flatMap(allCommands)];
}

/**
 * Parses `args` (after `numgrad`) with the real commander program, actions replaced by no-ops: an
 * unknown command, an unknown option, a missing option value or an extra argument is the same
 * error the CLI would print. Returns that error, or undefined.
 */
export function parseNumgrad(args: string[]): string | undefined {
  const program = buildProgram(silent, {});
  for (const c of allCommands(program)) {
    c.exitOverride().configureOutput({ writeOut: () => undefined, writeErr: () => undefined, outputError: () => undefined });
    if (c !== program) c.action(() => undefined);
  }
  try {
    program.parse(args, { from: 'user' });
    return undefined;
  } catch (err) {
    if (err instanceof CommanderError) return err.code === 'commander.helpDisplayed' || err.code === 'commander.help' ? undefined : err.message;
    throw err;
  }
}

/** The subcommand an argv names (skipping global options and their values), for option lookups. */
export function subcommandOf(args: string[]): { name: string; rest: string[] } | undefined {
  const program = buildProgram(silent, {});
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (!a.startsWith('-')) return { name: a, rest: args.slice(i + 1) };
    const opt = program.options.find((o) => o.long === a.split('=')[0]);
    if (opt !== undefined && (opt.required || opt.optional) && !a.includes('=')) i++;
  }
  return undefined;
}

/** The value of `--name` in an argv (`--name v` or `--name=v`). */
export function optionValue(args: string[], name: string): string | undefined {
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name) return args[i + 1];
    if (args[i].startsWith(`${name}=`)) return args[i].slice(name.length + 1);
  }
  return undefined;
}

/** The container side of a published port (`"3000"`, `"3000:3000"`, `"127.0.0.1:80:3000/tcp"`, long syntax). */
export function containerPort(p: NonNullable<Service['ports']>[number]): number {
  if (typeof p === 'object') return Number(p.target);
  const parts = String(p).split('/')[0].split(':');
  return Number(parts[parts.length - 1]);
}

const isNumgrad = (s: Service): boolean => argv(s.command)[0] === 'numgrad';

/** Every problem found in a parsed compose file (and its raw text, for interpolated names). */
export function checkCompose(compose: Compose, text: string): string[] {
  const errors: string[] = [];
  const services = compose.services ?? {};
  for (const want of ['redis', 'worker', 'dashboard', 'producer']) if (services[want] === undefined) errors.push(`service ${want}: missing`);

  for (const [name, s] of Object.entries(services)) {
    if (!isNumgrad(s)) continue;
    const args = argv(s.command).slice(1);
    const bad = parseNumgrad(args);
    if (bad !== undefined) errors.push(`service ${name}: \`numgrad ${args.join(' ')}\`: ${bad}`);

    const env = envOf(s);
    for (const k of Object.keys(env)) {
      if (OURS.test(k) && !KNOWN.has(k)) errors.push(`service ${name}: environment ${k} is not a variable numgrad reads (src/io/config.ts ENV: ${[...KNOWN].join(', ')})`);
    }
    const url = env[ENV.redisUrl];
    if (url === undefined) {
      errors.push(`service ${name}: environment ${ENV.redisUrl} is not set (it would connect to 127.0.0.1 inside its container)`);
    } else {
      let host = '';
      try {
        host = new URL(url.replace(/\$\{[^}]*\}/g, 'x')).hostname;
      } catch {
        errors.push(`service ${name}: ${ENV.redisUrl} is not a URL: ${url}`);
      }
      if (host && !(services[host]?.image ?? '').startsWith('redis')) errors.push(`service ${name}: ${ENV.redisUrl} names host "${host}", which is not the Redis service`);
    }
    const dep = s.depends_on;
    const cond = dep !== undefined && !Array.isArray(dep) ? dep.redis?.condition : undefined;
    if (cond !== 'service_healthy') errors.push(`service ${name}: depends_on redis should wait for condition service_healthy, got ${String(cond)}`);
  }

  // Names the file interpolates: numgrad's must be ones the code reads; others are compose-only secrets.
  for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) {
    if (OURS.test(m[1]) && !KNOWN.has(m[1]) && !COMPOSE_ONLY_VARS.includes(m[1])) errors.push(`\${${m[1]}}: not a variable numgrad reads nor a compose-only one (${COMPOSE_ONLY_VARS.join(', ')})`);
  }

  const redis = services.redis;
  if (redis !== undefined) {
    if (redis.ports !== undefined && redis.ports.length > 0) errors.push('service redis: published to the host (ports); keep it on the compose network');
    const cmd = argv(redis.command).join(' ');
    for (const want of [/--appendonly yes\b/, /--maxmemory-policy noeviction\b/, /--requirepass \$\{REDIS_PASSWORD/]) {
      if (!want.test(cmd)) errors.push(`service redis: command lacks ${want.source.replace(/\\/g, '')}`);
    }
    const hc = argv(redis.healthcheck?.test as string[] | undefined).join(' ');
    if (!/redis-cli\b.*-a\b.*\bping\b/.test(hc)) errors.push('service redis: healthcheck should run `redis-cli -a … ping`');
  }

  const worker = services.worker;
  if (worker !== undefined) {
    if (worker.container_name !== undefined) errors.push('service worker: container_name prevents --scale worker=N');
    if (worker.ports !== undefined && worker.ports.length > 0) errors.push('service worker: published ports prevent --scale worker=N');
    const sub = subcommandOf(argv(worker.command).slice(1));
    if (sub?.name !== 'worker') errors.push(`service worker: runs \`numgrad ${sub?.name ?? ''}\`, not \`numgrad worker\``);
  }

  const dash = services.dashboard;
  if (dash !== undefined) {
    const args = argv(dash.command);
    const sub = subcommandOf(args.slice(1));
    if (sub?.name !== 'dashboard') errors.push(`service dashboard: runs \`numgrad ${sub?.name ?? ''}\`, not \`numgrad dashboard\``);
    const port = Number(optionValue(args, '--port'));
    if (!Number.isInteger(port)) errors.push('service dashboard: no --port in its command');
    if (optionValue(args, '--host') !== '0.0.0.0') errors.push('service dashboard: --host 0.0.0.0 is needed to be reachable through the published port');
    const published = (dash.ports ?? []).map(containerPort);
    if (published.length === 0) errors.push('service dashboard: no published port');
    for (const p of published) if (p !== port) errors.push(`service dashboard: publishes container port ${p}, but listens on --port ${port}`);
    const hc = argv(dash.healthcheck?.test as string[] | undefined).join(' ');
    const hcPort = /https?:\/\/[^/:\s'"]+:(\d+)\/healthz/.exec(hc)?.[1];
    if (hcPort === undefined) errors.push('service dashboard: healthcheck does not fetch http://…:PORT/healthz');
    else if (Number(hcPort) !== port) errors.push(`service dashboard: healthcheck fetches port ${hcPort}, but the dashboard listens on --port ${port}`);
    const tokenRef = envOf(dash)[ENV.dashboardToken] ?? '';
    if (!/^\$\{DASHBOARD_TOKEN:\?/.test(tokenRef)) errors.push('service dashboard: DASHBOARD_TOKEN should be required from the environment (${DASHBOARD_TOKEN:?…})');
  }

  const producer = services.producer;
  if (producer !== undefined && !(producer.profiles ?? []).includes('tools')) errors.push('service producer: should be in profile "tools" (one-shot, not started by `up`)');
  return errors;
}

export interface DockerStage {
  from: string;
  name?: string;
  lines: string[];
}

/** FROM-separated stages of a Dockerfile, with continuation lines joined and comments dropped. */
export function dockerStages(text: string): DockerStage[] {
  const lines = text
    .replace(/\\\r?\n/g, ' ')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const stages: DockerStage[] = [];
  for (const l of lines) {
    const from = /^FROM\s+(\S+)(?:\s+AS\s+(\S+))?/i.exec(l);
    if (from) stages.push({ from: from[1], name: from[2], lines: [] });
    else stages.at(-1)?.lines.push(l);
  }
  return stages;
}

/**
 * Every problem found in the Dockerfile (and .dockerignore, which must let the build inputs in).
 * `assets`: files under src/ that are not TypeScript (tsc does not emit them) and that the code
 * reads at run time; the runtime stage must copy each.
 */
export function checkDockerfile(text: string, dockerignore = '', assets: string[] = []): string[] {
  const errors: string[] = [];
  const stages = dockerStages(text);
  if (stages.length < 2) errors.push(`Dockerfile: ${stages.length} stage(s); expected a build stage and a runtime stage`);
  for (const s of stages) if (!/^node:20(\b|[.-])/.test(s.from)) errors.push(`Dockerfile: stage ${s.name ?? s.from} is FROM ${s.from}, expected node:20`);
  const build = stages[0];
  const runtime = stages.at(-1);
  if (build !== undefined && !build.lines.some((l) => /^RUN\b.*\bnpm ci\b/.test(l))) errors.push('Dockerfile: build stage has no `npm ci`');
  if (build !== undefined && !build.lines.some((l) => /^RUN\b.*\bnpm run build\b/.test(l))) errors.push('Dockerfile: build stage has no `npm run build`');
  if (runtime !== undefined && runtime !== build) {
    if (!runtime.lines.some((l) => /^RUN\b.*\bnpm ci\b.*--omit=dev/.test(l))) errors.push('Dockerfile: runtime stage does not install with `npm ci --omit=dev`');
    if (!runtime.lines.some((l) => /^COPY\s+--from=/.test(l))) errors.push('Dockerfile: runtime stage copies nothing from the build stage');
    const users = runtime.lines.filter((l) => /^USER\s/i.test(l)).map((l) => l.split(/\s+/)[1]);
    const user = users.at(-1);
    if (user === undefined || user === 'root' || /^0(:|$)/.test(user)) errors.push(`Dockerfile: runtime stage runs as ${user ?? 'root (no USER)'}; expected a non-root USER`);
    const cli = /\/app\/(dist\/src\/producer\/cli\.js)/.exec(runtime.lines.join('\n'))?.[1];
    if (cli === undefined) errors.push('Dockerfile: runtime stage does not put `numgrad` (dist/src/producer/cli.js) on PATH');
    if (!runtime.lines.some((l) => /\/usr\/local\/bin\/numgrad\b/.test(l))) errors.push('Dockerfile: no /usr/local/bin/numgrad');
    const copied = runtime.lines
      .map((l) => /^COPY\s+(?:--\S+\s+)*(\S+)\s+\S+$/.exec(l)?.[1])
      .filter((src): src is string => src !== undefined)
      .map((src) => src.replace(/^\/app\//, '').replace(/\/$/, ''));
    for (const a of assets) {
      if (!copied.some((src) => a === src || a.startsWith(`${src}/`))) errors.push(`Dockerfile: runtime stage does not copy ${a} (not emitted by tsc; read at run time)`);
    }
  }
  // What the build stage copies must not be excluded by .dockerignore.
  const ignored = dockerignore
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const l of build?.lines ?? []) {
    const m = /^COPY\s+(?!--from)(.+)\s+\S+$/.exec(l);
    if (!m) continue;
    for (const src of m[1].split(/\s+/)) if (ignored.includes(src)) errors.push(`Dockerfile: COPY ${src}, but .dockerignore excludes it`);
  }
  return errors;
}

/**
 * The runtime image installs `dependencies` only: a package that compiled code imports at run time
 * (a value import, not `import type`) must be one of them.
 */
export function runtimeImportsOutsideDependencies(files: { path: string; text: string }[], dependencies: string[]): string[] {
  const errors: string[] = [];
  for (const f of files) {
    for (const m of f.text.matchAll(/^\s*import\s+(?!type\b)[^'"]*?from\s+'([^'.][^']*)'|^\s*import\s+'([^'.][^']*)'|\bimport\('([^'.][^']*)'\)/gm)) {
      const spec = m[1] ?? m[2] ?? m[3];
      if (spec.startsWith('node:') || builtinModules.includes(spec.split('/')[0])) continue;
      const pkg = spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0];
      if (!dependencies.includes(pkg)) errors.push(`${f.path}: imports ${pkg}, which is not in dependencies (npm ci --omit=dev leaves it out of the image)`);
    }
  }
  return errors;
}
