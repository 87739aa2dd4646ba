import { defineConfig } from 'vitest/config';

/** `npm run test:chaos`: the seeded chaos run alone (test/chaos), minutes long, so not part of `npm test`. */
export default defineConfig({
  test: {
    include: ['test/chaos/**/*.test.ts'],
    testTimeout: 15 * 60_000,
    hookTimeout: 12 * 60_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
