import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Their own scripts: the compose stack needs Docker and root (`npm run test:docker`), the chaos run
    // takes minutes (`npm run test:chaos`).
    exclude: [...configDefaults.exclude, 'test/docker/**', 'test/chaos/**'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    fileParallelism: true,
    maxWorkers: 2,
    reporters: ['default', './test/helpers/summary-reporter.ts'],
  },
});
