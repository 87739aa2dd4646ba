import type { Command } from 'commander';
import { initParams } from '../../core/network.js';
import { Rng } from '../../core/prng.js';
import { checkMnistDir, paramsOption } from '../input-files.js';
import { LocalPool } from '../../workers/threads/pool.js';
import { choiceOption, intOption } from '../options.js';
import type { Output } from '../output.js';
import type { Config } from '../../io/config.js';
import { resolveBackend } from '../backend.js';

const OP = 'numgrad evaluate';

export function registerEvaluate(program: Command, out: Output, config: () => Config): void {
  program
    .command('evaluate')
    .description('mean cross-entropy and accuracy of a net over a whole MNIST split')
    .option('--params <file>', 'parameters (.npy); default: the seeded initial net')
    .option('--hidden <H>', 'hidden units of the seeded initial net', '50')
    .option('--seed <S>', 'seed of the initial net', '0')
    .option('--split <split>', 'train or test', 'test')
    .option('--threads <N>', 'worker threads (default: all cores)')
    .option('--backend <b>', 'auto, local or queue', 'auto')
    .option('--json', 'print one JSON object on the last line of stdout')
    .action(async (flags: { params?: string; hidden: string; seed: string; split: string; threads?: string; json?: boolean; backend: string }) => {
      const choice = choiceOption(OP, '--backend', flags.backend, ['auto', 'local', 'queue'] as const);
      const split = choiceOption(OP, '--split', flags.split, ['train', 'test'] as const);
      const threads = flags.threads === undefined ? undefined : intOption(OP, '--threads', flags.threads, 1, 256);
      const params = flags.params !== undefined
        ? paramsOption(OP, flags.params)
        : initParams(intOption(OP, '--hidden', flags.hidden, 1, 4096), new Rng(intOption(OP, '--seed', flags.seed, 0)));
      const cfg = threads === undefined ? config() : { ...config(), threads };
      const backend = await resolveBackend(choice, cfg, out);
      // The local pool reads MNIST here; on the queue the workers read their own.
      if (backend.kind === 'local') checkMnistDir(OP, cfg.mnistDir);
      const report = (r: { loss: number; accuracy: number; count: number; correct: number; seconds: number }, where: string): void => {
        out.line(`evaluate: split ${split}, ${r.count} images, loss ${r.loss}, accuracy ${r.accuracy} (${r.correct} correct), ${r.seconds.toFixed(3)} s (${where})`);
        if (flags.json) out.json({ command: 'evaluate', backend: backend.kind, split, count: r.count, loss: r.loss, accuracy: r.accuracy, correct: r.correct, seconds: r.seconds });
      };
      if (backend.kind === 'queue') {
        try {
          report(await backend.client.evaluate(params, split), 'queue');
        } finally {
          await backend.close();
        }
        return;
      }
      const pool = new LocalPool({ threads: cfg.threads, mnistDir: cfg.mnistDir });
      try {
        report(await pool.evaluate(params, split), `local, ${pool.threads} thread(s)`);
      } finally {
        await pool.close();
      }
    });
}
