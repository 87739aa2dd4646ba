import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { NumgradError } from '../core/errors.js';

/**
 * Worker threads run compiled JavaScript (Node 20 cannot load .ts workers). When this module itself
 * runs from source (tests import src/*.ts), the sibling file is looked up under dist/ instead.
 */
export function compiledSibling(moduleUrl: string, name: string): string {
  const here = fileURLToPath(moduleUrl);
  const dir = here.slice(0, here.lastIndexOf('/'));
  if (here.endsWith('.js')) return `${dir}/${name}`;
  const marker = '/src/';
  const at = dir.lastIndexOf(marker);
  const path = `${dir.slice(0, at)}/dist/src/${dir.slice(at + marker.length)}/${name}`;
  if (!existsSync(path)) throw new NumgradError(`${path} is missing: run \`npm run build\` first (worker threads load compiled JavaScript)`);
  return path;
}
