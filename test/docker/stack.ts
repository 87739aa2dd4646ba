/**
 * The compose stack of the Docker test: a copy of the project (what a clean clone holds) in a temp
 * folder, run with the project's own Dockerfile and docker-compose.yml, through `docker compose` (v2)
 * when the CLI has it, else `docker-compose` (v1, Debian's). Everything the stack starts carries the
 * label com.docker.compose.project=<project>, which is how the test finds (and checks the removal of)
 * its containers, networks and volumes.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';

export interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** A command, bounded in time; never throws (the caller asserts on the status). */
export function sh(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {}): Run {
  const t0 = performance.now();
  const r = spawnSync(cmd, args, { encoding: 'utf8', env: opts.env, cwd: opts.cwd, timeout: opts.timeoutMs ?? 120_000, input: opts.input, maxBuffer: 64 << 20 });
  return { status: r.status, stdout: r.stdout ?? '', stderr: (r.stderr ?? '') + (r.error ? String(r.error) : ''), ms: performance.now() - t0 };
}

export function mustSh(cmd: string, args: string[], opts: Parameters<typeof sh>[2] = {}): string {
  const r = sh(cmd, args, opts);
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.status}:\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-2000)}`);
  return r.stdout;
}

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((ok) => srv.listen(0, '127.0.0.1', ok));
  const { port } = srv.address() as AddressInfo;
  await new Promise((ok) => srv.close(ok));
  return port;
}

/** `docker compose` when the CLI has the v2 plugin, else `docker-compose`; COMPOSE="docker-compose" forces one. */
export function composeCommand(): string[] {
  const forced = process.env.COMPOSE;
  if (forced) return forced.split(' ');
  return sh('docker', ['compose', 'version'], { timeoutMs: 20_000 }).status === 0 ? ['docker', 'compose'] : ['docker-compose'];
}

export const sleep = (ms: number): Promise<void> => new Promise((ok) => setTimeout(ok, ms));

export class Stack {
  readonly dir: string;
  readonly project = `ngdocker${randomBytes(3).toString('hex')}`;
  readonly password = randomBytes(24).toString('hex');
  readonly token = randomBytes(16).toString('hex');
  readonly compose = composeCommand();
  private closed = false;

  constructor(root: string, readonly dashboardPort: number) {
    this.dir = mkdtempSync('/tmp/numgrad-docker-');
    // What a clone holds: no node_modules, dist, out or git metadata (.dockerignore would drop them anyway).
    const skip = new Set(['node_modules', 'dist', 'out', '.git', 'test-artifacts', 'coverage', '.bench-tmp']);
    cpSync(root, this.dir, { recursive: true, filter: (src) => !skip.has(src.slice(root.length + 1).split('/')[0]) });
  }

  /** The environment a user exports (README), plus the project name and the dashboard's host port. */
  env(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      REDIS_PASSWORD: this.password,
      DASHBOARD_TOKEN: this.token,
      DASHBOARD_PORT: String(this.dashboardPort),
      COMPOSE_PROJECT_NAME: this.project,
      ...extra,
    };
    for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
    return env;
  }

  run(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Run {
    return sh(this.compose[0], [...this.compose.slice(1), ...args], { cwd: this.dir, env: opts.env ?? this.env(), timeoutMs: opts.timeoutMs });
  }

  mustRun(args: string[], opts: { env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Run {
    const r = this.run(args, opts);
    if (r.status !== 0) throw new Error(`${this.compose.join(' ')} ${args.join(' ')} exited ${r.status}:\n${r.stderr.slice(-3000)}\n${r.stdout.slice(-2000)}`);
    return r;
  }

  /** A compose command in the background (a training run to disturb while it is in flight). */
  spawn(args: string[], env = this.env()): { child: ChildProcess; done: Promise<Run> } {
    const t0 = performance.now();
    const child = spawn(this.compose[0], [...this.compose.slice(1), ...args], { cwd: this.dir, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    // 'exit', then up to 2 s for the pipes: a grandchild holding them open must not hold the result.
    const done = new Promise<Run>((ok) =>
      child.on('exit', (status) => {
        const ms = performance.now() - t0;
        const timer = setTimeout(() => ok({ status, stdout, stderr, ms }), 2000);
        child.on('close', () => {
          clearTimeout(timer);
          ok({ status, stdout, stderr, ms });
        });
      }));
    return { child, done };
  }

  /** Container ids of a service (running ones unless `all`). */
  containers(service?: string, all = false): string[] {
    const filters = ['--filter', `label=com.docker.compose.project=${this.project}`];
    if (service) filters.push('--filter', `label=com.docker.compose.service=${service}`);
    return mustSh('docker', ['ps', '-q', '--no-trunc', ...(all ? ['-a'] : []), ...filters]).split('\n').filter(Boolean).sort();
  }

  inspect(id: string, format: string): string {
    return mustSh('docker', ['inspect', '--format', format, id]).trim();
  }

  /** Health of every container of a service ('healthy', 'starting', 'unhealthy', or 'none' without a healthcheck). */
  health(service: string): string[] {
    return this.containers(service).map((id) => this.inspect(id, '{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}'));
  }

  async waitFor<T>(what: string, timeoutMs: number, probe: () => T | undefined, everyMs = 500): Promise<T> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const v = probe();
      if (v !== undefined) return v;
      if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
      await sleep(everyMs);
    }
  }

  /** redis-cli inside the Redis container (Redis is not published to the host, as in the README). */
  redis(...args: string[]): string {
    const [id] = this.containers('redis');
    return mustSh('docker', ['exec', id, 'redis-cli', '-a', this.password, '--no-auth-warning', ...args], { timeoutMs: 30_000 }).trim();
  }

  /** The newest run's id and step (src/queue/keys.ts: `<prefix>:ng:runs`, `<prefix>:ng:run:<id>`; prefix `numgrad`). */
  latestRun(): { id: string; step: number } | undefined {
    const id = this.redis('ZREVRANGE', 'numgrad:ng:runs', '0', '0');
    if (!id) return undefined;
    return { id, step: Number(this.redis('HGET', `numgrad:ng:run:${id}`, 'step')) };
  }

  /**
   * The steps of the newest run, sampled every ~50 ms by a loop inside the Redis container (one
   * `docker exec`, so the samples are not spaced by docker's own start-up): resolves with
   * [time ms, step] pairs once the run reaches `until`.
   */
  sampleSteps(until: number, timeoutMs: number, onSample?: (step: number) => void): Promise<[number, number][]> {
    const [id] = this.containers('redis');
    const script = `cli() { redis-cli -a "$P" --no-auth-warning "$@"; }
      while :; do r=$(cli ZREVRANGE numgrad:ng:runs 0 0); [ -n "$r" ] && s=$(cli HGET "numgrad:ng:run:$r" step) && echo "$(date +%s%N) $r $s"; sleep 0.05; done`;
    const child = spawn('docker', ['exec', '-e', `P=${this.password}`, id, 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    const samples: [number, number][] = [];
    let first: string | undefined;
    let buf = '';
    return new Promise((ok, fail) => {
      const timer = setTimeout(() => finish(new Error(`step ${until} not reached in ${timeoutMs} ms (last ${samples.at(-1)?.[1]})`)), timeoutMs);
      const finish = (err?: Error): void => {
        clearTimeout(timer);
        child.kill('SIGKILL');
        if (err) fail(err);
        else ok(samples);
      };
      child.stdout.on('data', (d: Buffer) => {
        buf += d.toString();
        const lines = buf.split('\n');
        buf = lines.pop() ?? '';
        for (const l of lines) {
          const [ns, run, step] = l.trim().split(' ');
          first ??= run;
          if (run !== first || step === undefined) continue;
          samples.push([Number(BigInt(ns) / 1_000_000n), Number(step)]);
          onSample?.(Number(step));
          if (Number(step) >= until) finish();
        }
      });
    });
  }

  /** Removes one-shot `run` containers still up (a producer whose client was stopped at a timeout). */
  removeRuns(): void {
    const ids = mustSh('docker', ['ps', '-aq', '--filter', `label=com.docker.compose.project=${this.project}`, '--filter', 'label=com.docker.compose.oneoff=True']).split('\n').filter(Boolean);
    if (ids.length > 0) sh('docker', ['rm', '-f', ...ids]);
  }

  /** The compose network of the project (for `docker network disconnect`). */
  network(): string {
    const [id] = this.containers('worker');
    return this.inspect(id, '{{range $k, $v := .NetworkSettings.Networks}}{{$k}}{{end}}');
  }

  logs(id: string): string {
    const r = sh('docker', ['logs', id], { timeoutMs: 30_000 });
    return r.stdout + r.stderr;
  }

  /** What the project left behind: containers, networks and volumes carrying its label. */
  leftovers(): { containers: string[]; networks: string[]; volumes: string[] } {
    const label = `label=com.docker.compose.project=${this.project}`;
    const list = (args: string[]): string[] => mustSh('docker', [...args, '--filter', label]).split('\n').filter(Boolean);
    return { containers: list(['ps', '-aq']), networks: list(['network', 'ls', '-q']), volumes: list(['volume', 'ls', '-q']) };
  }

  /** `down -v` (safe twice) and the copy removed; the ./out files may belong to other uids, root removes them. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.run(['--profile', 'tools', 'down', '-v', '--remove-orphans', '--timeout', '5'], { timeoutMs: 180_000 });
    rmSync(this.dir, { recursive: true, force: true });
  }

  path(...p: string[]): string {
    return join(this.dir, ...p);
  }
}
