/**
 * The V8 flags every `numgrad` process runs with: the shebang of cli.ts carries them (the `numgrad`
 * bin), and so do `npm start` (package.json) and the Docker image's `numgrad` wrapper (Dockerfile);
 * `numgrad up` passes them to its children. test/producer/node-flags.test.ts checks that all three
 * spell this list.
 *
 * `--max-semi-space-size=2` (MB): the main thread's young generation. Its default (16 MB a
 * semi-space, 48 MB in all) is slack a worker process does not need: the main thread only moves jobs
 * and small buffers, and the threads compute. Measured on a `numgrad worker --threads 2` through a
 * 400-iteration queue training: peak RSS 289–299 MB with the default, 261–264 MB with 2 MB.
 */
export const NODE_FLAGS: readonly string[] = ['--max-semi-space-size=2'];

