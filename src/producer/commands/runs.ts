import type { Command } from 'commander';
import type { Config } from '../../io/config.js';
import { OPTIONS } from '../cli-options.js';
import type { Output } from '../output.js';
import { registerRetention } from './runs-retention.js';
import { withClient } from './with-client.js';
import { followRun } from './train.js';

const fmt = (v: number | null, d = 4): string => (v === null ? '-' : v.toFixed(d));

export function registerRuns(program: Command, out: Output, config: () => Config): void {
  const runsCommand = program
    .command('runs')
    .description('training runs in Redis: id, state, step, loss, accuracy (`runs rm`, `runs prune` remove them)')
    .addOption(OPTIONS.json('print the runs as JSON'))
    .action(async (flags: { json?: boolean }) => {
      await withClient(config(), async (c) => {
        const runs = await c.listRuns();
        if (flags.json) return out.json(runs.map((r) => (r.state === 'corrupt' ? r : (({ config: _c, ...rest }) => rest)(r))));
        out.line(['run', 'state', 'step', 'loss', 'train_acc', 'test_acc', 'updated', 'reason'].join('\t'));
        for (const r of runs) {
          // A malformed hash is listed with what is wrong (`numgrad runs rm` removes it); the others as usual, a failed run with its reason.
          if (r.state === 'corrupt') out.line([r.id, r.state, '-', '-', '-', '-', '-', r.problem].join('\t'));
          else out.line([r.id, r.state, `${r.step}/${r.iters}`, fmt(r.loss), fmt(r.trainAcc), fmt(r.testAcc), new Date(r.updatedAt).toISOString(), r.error ?? ''].join('\t'));
        }
        if (runs.length === 0) out.line('(no runs)');
      });
    });
  registerRetention(runsCommand, out, config);
  program
    .command('follow <run>')
    .description('follow a run until it ends and write its files')
    .option('--out <dir>', 'folder for params.npy, metrics.jsonl, curves.svg')
    .addOption(OPTIONS.json('print one JSON summary on the last line of stdout'))
    .action(async (id: string, flags: { out?: string; json?: boolean }) => {
      await withClient(config(), (c) => followRun(c, id, flags.out, out, flags.json));
    });
  program
    .command('resume <run>')
    .description('restart a failed or cancelled run from its last completed step (after its cause is fixed)')
    .action(async (id: string) => {
      await withClient(config(), async (c) => {
        const r = await c.resume(id);
        out.line(`run ${id}: ${r.state} again from step ${r.step}/${r.iters} (\`numgrad follow ${id}\` to watch it)`);
      });
    });
  program
    .command('cancel <run>')
    .description('cancel a run: no further step is enqueued')
    .action(async (id: string) => {
      await withClient(config(), async (c) => {
        const r = await c.cancel(id);
        out.line(`run ${id}: ${r.state} at step ${r.step}/${r.iters}`);
      });
    });
}
