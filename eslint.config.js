// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** Modules that do I/O or transport: src/core must stay pure (typed arrays and numbers only). */
const IO_MODULES = [
  'fs', 'node:fs', 'fs/promises', 'node:fs/promises', 'net', 'node:net', 'http', 'node:http',
  'https', 'node:https', 'child_process', 'node:child_process', 'worker_threads', 'node:worker_threads',
  'bullmq', 'piscina', 'ioredis', 'pino', 'pino-pretty', 'fastify', 'process', 'node:process',
];

/**
 * The layers, bottom up: core → io → queue (Redis/BullMQ: keys, store, flows, codec) and
 * workers/threads (the piscina runtime) → workers (the worker process) → dashboard → producer. A
 * layer imports only layers below it (docs/ARCHITECTURE.md); the rule names the layers it may not.
 */
const layer = (files, banned, why) => ({
  files,
  rules: {
    'no-restricted-imports': ['error', {
      paths: files[0] === 'src/core/**/*.ts' ? IO_MODULES.map((name) => ({ name, message: 'src/core is pure: no I/O or transport imports.' })) : [],
      patterns: banned.map((regex) => ({ regex, message: why })),
    }],
  },
});

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'out/**', 'coverage/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { process: 'readonly', console: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly', performance: 'readonly', SharedArrayBuffer: 'readonly', fetch: 'readonly', AbortController: 'readonly', structuredClone: 'readonly', setImmediate: 'readonly', queueMicrotask: 'readonly', TextEncoder: 'readonly', TextDecoder: 'readonly', document: 'readonly', window: 'readonly', EventSource: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  layer(['src/core/**/*.ts'], ['(^|/)(io|queue|workers|dashboard|producer)/'], 'src/core is the bottom layer: it imports only src/core (docs/ARCHITECTURE.md).'),
  layer(['src/io/**/*.ts'], ['(^|/)(queue|workers|dashboard|producer)/'], 'src/io stands on src/core only (docs/ARCHITECTURE.md).'),
  layer(['src/queue/**/*.ts'], ['(^|/)(workers|dashboard|producer)/'], 'src/queue (Redis/BullMQ) stands on src/core and src/io only (docs/ARCHITECTURE.md).'),
  layer(['src/workers/threads/**/*.ts'], ['(^|/)(queue|dashboard|producer)/', '^\\.\\./[^./][^/]*$'], 'src/workers/threads (the thread runtime) stands on src/core and src/io only, not on the worker process (docs/ARCHITECTURE.md).'),
  layer(['src/workers/*.ts'], ['(^|/)(dashboard|producer)/'], 'the worker process stands on core, io, queue and its threads, never on the dashboard or the CLI (docs/ARCHITECTURE.md).'),
  layer(['src/dashboard/**/*.ts'], ['(^|/)producer/', '(^|/)workers/(?!threads/)'], 'the dashboard reads Redis through src/queue; it never imports the worker process or the CLI (docs/ARCHITECTURE.md).'),
  {
    files: ['src/core/**/*.ts'],
    rules: {
      'no-restricted-globals': ['error', { name: 'process', message: 'src/core is pure: config is passed in, never read from process.env.' }],
      'no-restricted-properties': ['error', { object: 'process', property: 'env', message: 'src/core never reads process.env.' }],
      'no-console': 'error',
    },
  },
);
