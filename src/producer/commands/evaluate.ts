import type { Command } from 'commander';
import { checkMnistDir, netOf } from '../input-files.js';
import { OPTIONS, addNetOptions } from '../cli-options.js';
import type { Output } from '../output.js';
import type { Config } from '../../io/config.js';
import { type BackendChoice, resolveBackend } from '../backend.js';

const OP = 'numgrad evaluate';

export function registerEvaluate(program: Command, out: Output, config: () => Config): void {
  addNetOptions(program.command('evaluate').description('mean cross-entropy and accuracy of a net over a whole MNIST split'), 'parameters (.npy); default: the seeded initial net', 'seed of the initial net')
    .addOption(OPTIONS.split())
    .addOption(OPTIONS.threads('worker threads (default: all cores)'))
    .addOption(OPTIONS.backend('auto, local or queue'))
    .addOption(OPTIONS.json())
    .action(async (flags: { params?: string; hidden: number; seed: number; split: 'train' | 'test'; threads?: number; json?: boolean; backend: BackendChoice }) => {
      const { backend: choice, split, threads } = flags;
      const params = netOf(OP, flags);
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
      const { LocalPool } = await import('../../workers/threads/pool.js');
      const pool = new LocalPool({ threads: cfg.threads, mnistDir: cfg.mnistDir });
      try {
        report(await pool.evaluate(params, split), `local, ${pool.threads} thread(s)`);
      } finally {
        await pool.close();
      }
    });
}
