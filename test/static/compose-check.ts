import { builtinModules } from 'node:module';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { ENV } from '../../src/io/config.js';

/**
 * The static checks of docker-compose.yml that neither `docker compose config` nor a real run of
 * the stack (`npm run test:docker`) can make: a run cannot tell a misspelt variable from an unset
 * one (both fall back to the default), nor see a policy that only matters on a bad day (Redis
 * without AOF, with eviction, or published; workers that start before Redis is healthy), nor reach
 * the code paths a short training run does not import. Commands, options, ports, healthchecks,
 * scaling and the Dockerfile are checked by building and running them (see test/docker/).
 */

export type Compose = { services: Record<string, Service>; [k: string]: unknown };
export type Service = {
  command?: string | string[];
  environment?: Record<string, string | number | null> | string[];
  ports?: unknown[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  profiles?: string[];
  [k: string]: unknown;
};

const ROOT = process.cwd();
/**
 * Variables the compose file interpolates that no numgrad process reads: the Redis password (in the
 * URLs), the dashboard's host port and the producer's uid:gid.
 */
export const COMPOSE_ONLY_VARS = ['REDIS_PASSWORD', 'DASHBOARD_PORT', 'NUMGRAD_USER'];
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

/** Every problem found in a parsed compose file (and its raw text, for interpolated names). */
export function checkCompose(compose: Compose, text: string): string[] {
  const errors: string[] = [];
  const services = compose.services ?? {};
  for (const [name, s] of Object.entries(services)) {
    if (argv(s.command)[0] !== 'numgrad') continue;
    for (const k of Object.keys(envOf(s))) {
      if (OURS.test(k) && !KNOWN.has(k)) errors.push(`service ${name}: environment ${k} is not a variable numgrad reads (src/io/config.ts ENV: ${[...KNOWN].join(', ')})`);
    }
    const dep = s.depends_on;
    const cond = dep !== undefined && !Array.isArray(dep) ? dep.redis?.condition : undefined;
    if (cond !== 'service_healthy') errors.push(`service ${name}: depends_on redis should wait for condition service_healthy, got ${String(cond)}`);
  }
  // Names the file interpolates: numgrad's must be ones the code reads; others are compose-only.
  for (const m of text.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)/g)) {
    if (OURS.test(m[1]) && !KNOWN.has(m[1]) && !COMPOSE_ONLY_VARS.includes(m[1])) errors.push(`\${${m[1]}}: not a variable numgrad reads nor a compose-only one (${COMPOSE_ONLY_VARS.join(', ')})`);
  }
  const redis = services.redis;
  if (redis === undefined) errors.push('service redis: missing');
  else {
    if (redis.ports !== undefined && redis.ports.length > 0) errors.push('service redis: published to the host (ports); keep it on the compose network');
    const cmd = argv(redis.command).join(' ');
    for (const want of [/--appendonly yes\b/, /--maxmemory-policy noeviction\b/, /--requirepass \$\{REDIS_PASSWORD/]) {
      if (!want.test(cmd)) errors.push(`service redis: command lacks ${want.source.replace(/\\/g, '')}`);
    }
  }
  const producer = services.producer;
  if (producer !== undefined && !(producer.profiles ?? []).includes('tools')) errors.push('service producer: should be in profile "tools" (one-shot, not started by `up`)');
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
