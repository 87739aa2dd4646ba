import { createServer } from 'node:net';
import { NumgradError } from '../core/errors.js';

/** The first port from `start` that `host` can bind, trying `tries` more after it. */
export async function freePort(host: string, start: number, tries: number): Promise<number> {
  for (let p = start; p <= start + tries && p <= 65_535; p++) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(p, host, () => s.close(() => resolve(true)));
    });
    if (ok) return p;
  }
  throw new NumgradError(`numgrad dashboard: no free port on ${host} in ${start}–${start + tries}`);
}
