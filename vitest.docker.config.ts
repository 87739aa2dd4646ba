import { defineConfig } from 'vitest/config';

// `npm run test:docker` (test/docker/run.sh): the compose stack, one file at a time, long steps.
export default defineConfig({
  test: {
    include: ['test/docker/**/*.docker.test.ts'],
    testTimeout: 600_000,
    hookTimeout: 900_000,
    pool: 'forks',
    fileParallelism: false,
    reporters: ['default'],
  },
});
