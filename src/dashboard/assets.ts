import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NumgradError } from '../core/errors.js';

/** The package root (holds package.json), from src/dashboard or dist/src/dashboard alike. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src', 'dashboard', 'public'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new NumgradError(`numgrad dashboard: cannot find src/dashboard/public above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** The static assets, read once: the page and uPlot from node_modules (no CDN). */
export function loadAssets(): { page: string; uplotJs: string; uplotCss: string } {
  const page = readFileSync(join(packageRoot(), 'src', 'dashboard', 'public', 'index.html'), 'utf8');
  const uplotDist = dirname(createRequire(import.meta.url).resolve('uplot'));
  return {
    page,
    uplotJs: readFileSync(join(uplotDist, 'uPlot.iife.min.js'), 'utf8'),
    uplotCss: readFileSync(join(uplotDist, 'uPlot.min.css'), 'utf8'),
  };
}
