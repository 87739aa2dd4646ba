import { type ChildProcess, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { NODE_FLAGS } from './node-flags.js';
import type { Output } from './output.js';

export interface SupervisorOptions {
  /** The node binary (process.execPath) and the compiled CLI it runs. */
  readonly node: string;
  readonly cli: string;
  /** The children's environment (config travels here, not in argv, so a Redis password is not in `ps`). */
  readonly env: NodeJS.ProcessEnv;
  readonly out: Output;
  /** How long a child may take to finish its active jobs after SIGTERM before SIGKILL. Default 60 s. */
  readonly graceMs?: number;
  /** Called once per child that exits without being asked to. */
  readonly onUnexpectedExit?: (child: Child, how: number | string) => void;
}

export interface Child {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves with the exit code (or signal name) when the child has exited. */
  readonly exited: Promise<number | string>;
  readonly alive: boolean;
}

/**
 * Runs `numgrad <command>` children the way `docker compose up` runs containers: each output line
 * prefixed with the child's name, SIGTERM to all on stop (then SIGKILL after a grace period), and a
 * child that dies on its own reported rather than silently missing.
 */
export class Supervisor {
  private readonly children: Child[] = [];
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: SupervisorOptions) {}

  get all(): readonly Child[] {
    return this.children;
  }

  start(name: string, args: string[]): Child {
    const proc = spawn(this.opts.node, [...NODE_FLAGS, this.opts.cli, ...args], { env: this.opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let alive = true;
    const exited = new Promise<number | string>((resolve) => {
      // 'close' (not 'exit'): the output pipes are drained, so the child's last log lines come first.
      proc.on('close', (code, signal) => {
        alive = false;
        resolve(code ?? signal ?? 'unknown');
      });
      proc.on('error', (err) => {
        this.opts.out.error(`${name} | could not start: ${err.message}`);
        alive = false;
        resolve('spawn error');
      });
    });
    const child: Child = { name, process: proc, exited, get alive() { return alive; } };
    const pad = name.padEnd(10);
    if (proc.stdout) createInterface({ input: proc.stdout, crlfDelay: Infinity }).on('line', (l) => this.opts.out.line(`${pad}| ${l}`));
    if (proc.stderr) createInterface({ input: proc.stderr, crlfDelay: Infinity }).on('line', (l) => this.opts.out.error(`${pad}| ${l}`));
    void exited.then((how) => {
      if (this.stopping === undefined) this.opts.onUnexpectedExit?.(child, how);
    });
    this.children.push(child);
    return child;
  }

  /** SIGTERM to every live child, SIGKILL to those still alive after the grace period; safe twice. */
  stop(): Promise<void> {
    if (this.stopping === undefined) {
      this.stopping = (async () => {
        for (const c of this.children) if (c.alive) c.process.kill('SIGTERM');
        const timer = setTimeout(() => this.kill(), this.opts.graceMs ?? 60_000);
        await Promise.all(this.children.map((c) => c.exited));
        clearTimeout(timer);
      })();
    }
    return this.stopping;
  }

  /** SIGKILL to every live child at once (a second Ctrl-C, or the grace period ran out). */
  kill(): void {
    for (const c of this.children) if (c.alive) c.process.kill('SIGKILL');
  }
}
