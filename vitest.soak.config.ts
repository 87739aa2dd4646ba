import { defineConfig } from 'vitest/config';

/** `npm run test:soak`: long memory soaks, one at a time (each needs the machine's cores). */
export default defineConfig({
  test: {
    include: ['test/soak/**/*.soak.ts'],
    testTimeout: 45 * 60_000,
    hookTimeout: 120_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
