import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NODE_FLAGS } from '../../src/producer/node-flags.js';
import { ROOT } from '../helpers/redis.js';

describe('the V8 flags of a numgrad process', () => {
  it('the CLI shebang (the bin, the Docker image) carries exactly NODE_FLAGS', () => {
    const first = readFileSync(join(ROOT, 'src/producer/cli.ts'), 'utf8').split('\n')[0];
    expect(first).toBe(`#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
  });

  it('npm start runs node with NODE_FLAGS', () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
    expect(pkg.scripts.start).toBe(`node ${NODE_FLAGS.join(' ')} dist/src/producer/cli.js start`);
  });

  it("the Docker image's numgrad wrapper runs node with NODE_FLAGS", () => {
    const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toContain(`exec node ${NODE_FLAGS.join(' ')} /app/dist/src/producer/cli.js`);
  });
});
