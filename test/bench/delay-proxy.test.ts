/**
 * The delaying proxy of `npm run bench:network` (bench/delay-proxy.ts): bytes arrive whole and in
 * order whatever the delay, and a round trip through it costs at least the delay set.
 */
import { randomBytes } from 'node:crypto';
import { type AddressInfo, type Server, type Socket, connect, createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { DelayProxy } from '../../bench/delay-proxy.js';

let echo: Server | undefined;
let proxy: DelayProxy | undefined;

afterEach(async () => {
  await proxy?.close();
  await proxy?.close();
  await new Promise<void>((r) => (echo === undefined ? r() : echo.close(() => r())));
  proxy = undefined;
  echo = undefined;
});

async function echoThroughProxy(): Promise<number> {
  echo = createServer((s) => s.pipe(s));
  const echoPort = await new Promise<number>((r) => echo?.listen(0, '127.0.0.1', () => r((echo?.address() as AddressInfo).port)));
  proxy = new DelayProxy(echoPort);
  return proxy.listen();
}

const open = (port: number): Promise<Socket> =>
  new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => resolve(s));
    s.setNoDelay(true);
    s.on('error', reject);
  });

/** ms from a 1-byte write to its echo. */
const roundTrip = (s: Socket): Promise<number> =>
  new Promise((resolve) => {
    const t0 = performance.now();
    s.once('data', () => resolve(performance.now() - t0));
    s.write('x');
  });

describe('delay proxy', () => {
  it('passes every byte in order, in many chunks, while the delay changes under it', async () => {
    const port = await echoThroughProxy();
    const s = await open(port);
    const sent = randomBytes(256 * 1024);
    const got: Buffer[] = [];
    let n = 0;
    const all = new Promise<void>((resolve) =>
      s.on('data', (b: Buffer) => {
        got.push(b);
        n += b.length;
        if (n >= sent.length) resolve();
      }),
    );
    for (let i = 0; i < 64; i++) {
      proxy?.setDelay(i % 3 === 0 ? 0 : i % 3);
      s.write(sent.subarray(i * 4096, (i + 1) * 4096));
      if (i % 8 === 0) await new Promise((r) => setTimeout(r, 1));
    }
    await all;
    s.destroy();
    expect(Buffer.concat(got).equals(sent)).toBe(true);
  });

  it('a round trip costs at least the delay, and returns to direct speed at 0', async () => {
    const port = await echoThroughProxy();
    const s = await open(port);
    await roundTrip(s);
    proxy?.setDelay(5);
    const slow: number[] = [];
    for (let i = 0; i < 5; i++) slow.push(await roundTrip(s));
    proxy?.setDelay(0);
    const fast: number[] = [];
    for (let i = 0; i < 5; i++) fast.push(await roundTrip(s));
    s.destroy();
    expect(Math.min(...slow)).toBeGreaterThanOrEqual(4.9);
    expect(Math.min(...fast)).toBeLessThan(Math.min(...slow));
  });

  it('refuses a delay that is not a number of ms ≥ 0', () => {
    const p = new DelayProxy(1);
    expect(() => p.setDelay(-1)).toThrow(/delay must be a number of ms ≥ 0 \(got -1\)/);
    expect(() => p.setDelay(Number.NaN)).toThrow(/got NaN/);
  });
});
