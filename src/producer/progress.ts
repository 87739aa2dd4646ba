/**
 * Progress of long work: a redrawn bar on a TTY, plain log lines otherwise (so CI logs and pipes
 * stay readable).
 */
export class Progress {
  private readonly t0 = performance.now();
  private lastLine = 0;
  /** The rate counts the work done after this point only: (time, done) when it was set. */
  private since = { t: this.t0, done: 0 };

  constructor(
    private readonly total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
    private readonly everySeconds = 5,
  ) {}

  /**
   * `done` was already done when watching began (a run followed at step 8,094): the rate and the
   * ETA count only what advances from now on, not what was done before anyone watched.
   */
  from(done: number): void {
    this.since = { t: performance.now(), done };
  }

  update(done: number, status: string): void {
    const now = performance.now();
    const elapsed = (now - this.t0) / 1000;
    const advanced = done - this.since.done;
    const rate = advanced > 0 ? advanced / Math.max((now - this.since.t) / 1000, 1e-9) : 0;
    const eta = rate > 0 ? (this.total - done) / rate : Infinity;
    const text = `${done}/${this.total} ${status} ${rate.toFixed(1)} it/s ETA ${formatDuration(eta)}`;
    if (this.stream.isTTY) {
      const width = 24;
      const filled = Math.round((done / this.total) * width);
      this.stream.write(`\r[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${text}\x1b[K`);
    } else if (elapsed - this.lastLine >= this.everySeconds || done === this.total) {
      this.lastLine = elapsed;
      this.stream.write(`progress ${text}\n`);
    }
  }

  /** A line that must be kept (epoch results): printed above the bar. */
  note(line: string): void {
    this.stream.write(this.stream.isTTY ? `\r${line}\x1b[K\n` : `${line}\n`);
  }

  end(): void {
    if (this.stream.isTTY) this.stream.write('\n');
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  if (seconds < 60) return `${seconds.toFixed(0)}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
  return `${Math.floor(seconds / 3600)}h${String(Math.round((seconds % 3600) / 60)).padStart(2, '0')}m`;
}
