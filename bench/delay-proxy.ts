/**
 * A TCP proxy that adds round-trip latency, for `npm run bench:network`: a stand-in for `tc netem`
 * on kernels built without it (CONFIG_NET_SCH_NETEM unset, as on these machines). Every chunk a
 * client sends is held `delay` ms before it is forwarded to the target (what netem's `delay` does to
 * a worker's egress); answers come back at once. So each request/answer round trip through the
 * proxy costs `delay` more, pipelined requests overlap as they do on a real link, and the order of
 * the bytes on each connection is kept.
 *
 * Timers have millisecond granularity, so a held chunk leaves 0–1 ms late; the bench measures the
 * round trip it actually got (PINGs through the proxy) rather than trusting the setting.
 *
 *   node dist/bench/delay-proxy.js <target port> [target host]
 *     prints `listening <port>` on stdout; each line on stdin (a number, ms) sets the delay;
 *     stdin's end stops it.
 */
import { type Server, type Socket, connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { runIfEntry } from './entry.js';

export class DelayProxy {
  private delayMs = 0;
  private readonly sockets = new Set<Socket>();
  private server: Server | undefined;

  constructor(
    private readonly targetPort: number,
    private readonly targetHost = '127.0.0.1',
  ) {}

  /** The delay added to each client → target chunk from now on (ms, ≥ 0). */
  setDelay(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) throw new Error(`delay-proxy: delay must be a number of ms ≥ 0 (got ${ms})`);
    this.delayMs = ms;
  }

  /** Listens on 127.0.0.1 (port 0: a free one); resolves to the port. */
  listen(port = 0): Promise<number> {
    const server = createServer((client) => this.accept(client));
    this.server = server;
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
  }

  private accept(client: Socket): void {
    const upstream = connect(this.targetPort, this.targetHost);
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
      s.on('error', () => undefined);
    }
    this.forward(client, upstream, () => this.delayMs);
    this.forward(upstream, client, () => 0);
  }

  /** Copies `from` to `to`, each chunk `delay()` ms after it arrived, in order; an end follows the last chunk. */
  private forward(from: Socket, to: Socket, delay: () => number): void {
    const held: { due: number; data: Buffer | null }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const flush = (): void => {
      timer = undefined;
      const now = performance.now();
      while (held.length > 0 && held[0].due <= now) {
        const { data } = held.shift() as { due: number; data: Buffer | null };
        if (data === null) to.destroySoon();
        else if (!to.destroyed) to.write(data);
      }
      if (held.length > 0) timer = setTimeout(flush, Math.max(0, held[0].due - now));
    };
    const push = (data: Buffer | null): void => {
      const d = delay();
      if (d === 0 && held.length === 0) {
        if (data === null) to.destroySoon();
        else if (!to.destroyed) to.write(data);
        return;
      }
      held.push({ due: performance.now() + d, data });
      timer ??= setTimeout(flush, d);
    };
    from.on('data', (b: Buffer) => push(b));
    from.on('end', () => push(null));
    from.on('close', () => {
      if (held.length === 0) to.destroySoon();
    });
  }

  /** Stops listening and drops every connection; safe to call twice. */
  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    const server = this.server;
    this.server = undefined;
    return server === undefined ? Promise.resolve() : new Promise((resolve) => server.close(() => resolve()));
  }
}

export async function main(argv: string[]): Promise<number> {
  const port = Number(argv[0]);
  if (!Number.isInteger(port) || port <= 0 || port > 65_535) {
    console.error('delay-proxy: usage: delay-proxy <target port> [target host]');
    return 2;
  }
  const proxy = new DelayProxy(port, argv[1]);
  console.log(`listening ${await proxy.listen()}`);
  const lines = createInterface({ input: process.stdin });
  for await (const line of lines) if (line.trim() !== '') proxy.setDelay(Number(line));
  await proxy.close();
  return 0;
}

runIfEntry(import.meta.url, 'delay-proxy', main);
