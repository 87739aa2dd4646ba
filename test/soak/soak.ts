/**
 * What the soak tests share: the dashboard page polled as a browser polls it, resident memory read
 * from /proc, a process's live heap measured by a heap snapshot (V8 collects garbage before it writes
 * one, so the sum of the snapshot's objects is the heap that survives a full GC), and the curves
 * written to test-artifacts/ for the record.
 */
import { mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, sleep } from '../helpers/redis.js';

/** The dashboard's address from the line `numgrad dashboard` and `numgrad start` print. */
export function dashboardUrl(stdout: string): string | undefined {
  return /dashboard: (http:\/\/[^\s/]+)\//.exec(stdout)?.[1];
}

/**
 * Polls the dashboard as src/dashboard/public/index.html does, every 2 s: the page once, then status
 * and runs, then the chosen run's new metrics from where the last answer ended; /metrics every 15 s
 * as a Prometheus scrape would. Without `runId` it shows the running run (else the newest), as the
 * page picks one. Returns a stop function, the number of polls done and the errors seen.
 */
export function pollLikeABrowser(base: string, runId: string | undefined): { stop(): Promise<void>; polls(): number; errors(until?: number): string[] } {
  let stopped = false;
  let polls = 0;
  let next = 0;
  let lastScrape = 0;
  const errors: { at: number; message: string }[] = [];
  const get = async (path: string): Promise<unknown> => {
    const r = await fetch(base + path, { headers: { 'cache-control': 'no-store' } });
    const body = path === '/' || path === '/metrics' ? await r.text() : await r.json();
    if (!r.ok) throw new Error(`${path}: ${r.status}`);
    return body;
  };
  const loop = (async () => {
    try {
      await get('/');
    } catch (err) {
      errors.push({ at: Date.now(), message: String(err) });
    }
    while (!stopped) {
      try {
        const [, list] = (await Promise.all([get('/api/status'), get('/api/runs')])) as [unknown, { runs: { id: string; state: string }[] }];
        const shown = runId ?? (list.runs.find((r) => r.state === 'running') ?? list.runs[0])?.id;
        if (shown !== undefined) {
          const m = (await get(`/api/runs/${shown}/metrics?from=${next}`).catch(() => undefined)) as { next?: number } | undefined;
          if (m?.next !== undefined) next = m.next;
        }
        if (Date.now() - lastScrape > 15_000) {
          lastScrape = Date.now();
          await get('/metrics');
        }
        polls++;
      } catch (err) {
        if (errors.length < 20) errors.push({ at: Date.now(), message: String(err) });
      }
      await sleep(2_000);
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
    polls: () => polls,
    /** What failed, up to the time `until` (ms since the epoch) when given. */
    errors: (until = Infinity) => errors.filter((e) => e.at <= until).map((e) => `${new Date(e.at).toISOString()} ${e.message}`),
  };
}

/** Resident set size of a process in MB (VmRSS: every thread of it included). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m === null ? NaN : Number(m[1]) / 1024;
}

/** The sum of every object in a V8 heap snapshot, in MB. */
export function snapshotMb(file: string): number {
  const s = JSON.parse(readFileSync(file, 'utf8')) as { snapshot: { meta: { node_fields: string[] } }; nodes: number[] };
  const fields = s.snapshot.meta.node_fields;
  const size = fields.indexOf('self_size');
  let total = 0;
  for (let i = size; i < s.nodes.length; i += fields.length) total += s.nodes[i];
  return total / 1e6;
}

/**
 * The live heap of a process started with `--heapsnapshot-signal=SIGUSR2 --diagnostic-dir=<dir>`:
 * signals it, waits for the snapshot to be complete, measures it and deletes it.
 */
export async function liveHeapMb(pid: number, dir: string, timeoutMs = 120_000): Promise<number> {
  const before = new Set(readdirSync(dir));
  process.kill(pid, 'SIGUSR2');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const fresh = readdirSync(dir).filter((f) => f.endsWith('.heapsnapshot') && !before.has(f));
    if (fresh.length > 0) {
      const file = join(dir, fresh[0]);
      // Written in one pass: complete once its size has stopped changing and it parses.
      let last = -1;
      for (;;) {
        const size = statSync(file).size;
        if (size > 0 && size === last) {
          try {
            const mb = snapshotMb(file);
            rmSync(file, { force: true });
            return mb;
          } catch {
            // still being written
          }
        }
        last = size;
        if (Date.now() > deadline) throw new Error(`heap snapshot of ${pid} not complete within ${timeoutMs} ms`);
        await sleep(500);
      }
    }
    if (Date.now() > deadline) throw new Error(`no heap snapshot from ${pid} within ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Writes a soak's samples to test-artifacts/<name>.json (kept by CI for the record). */
export function keepCurve(name: string, data: unknown): string {
  const dir = join(ROOT, 'test-artifacts');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(data, null, 1));
  return file;
}
