import type { Command } from 'commander';
import { ValidationError } from '../../core/errors.js';
import type { Config } from '../../io/config.js';
import type { RemovedRun } from '../../queue/retention.js';
import type { Output } from '../output.js';
import { withClient } from './with-client.js';

const UNITS: Record<string, number> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** `7d`, `12h`, `30m`, `90s`, `2w`, `1.5d` in ms; anything else names the option. */
export function parseDuration(op: string, option: string, text: string): number {
  const m = /^(\d+(?:\.\d+)?)([smhdw])$/.exec(text.trim());
  const ms = m === null ? NaN : Number(m[1]) * UNITS[m[2]];
  if (!Number.isFinite(ms)) throw new ValidationError(op, option, 'a duration such as 7d, 12h, 30m or 90s', text);
  return ms;
}

export const PRUNE_STATES = ['done', 'failed', 'cancelled', 'corrupt', 'running'] as const;

/** A comma list of run states; `running` only with --force (those runs are cancelled first). */
export function parseStates(op: string, text: string, force: boolean): string[] {
  const states = text.split(',').map((s) => s.trim());
  const bad = states.find((s) => !(PRUNE_STATES as readonly string[]).includes(s));
  if (bad !== undefined || states.length === 0) throw new ValidationError(op, '--state', `a comma list of ${PRUNE_STATES.join(', ')}`, text);
  if (states.includes('running') && !force) throw new ValidationError(op, '--state', 'without running unless --force (which cancels those runs first)', text);
  return states;
}

const describeRemoved = (r: RemovedRun): string =>
  `run ${r.id}: removed (${r.state}; ${r.jobs} job${r.jobs === 1 ? '' : 's'}, ${r.snapshots} params snapshot${r.snapshots === 1 ? '' : 's'}, ${r.keys} run key${r.keys === 1 ? '' : 's'})`;

/** `numgrad runs rm RUN` and `numgrad runs prune`: runs live in Redis until removed. */
export function registerRetention(runs: Command, out: Output, config: () => Config): void {
  runs
    .command('rm <run>')
    .description('remove a run and every key it has in Redis (its jobs, snapshots, metrics); a running run only with --force')
    .option('--force', 'cancel the run first if it is running')
    .action(async (id: string, flags: { force?: boolean }) => {
      await withClient(config(), async (c) => {
        const r = await (await c.retention()).remove(id, { force: flags.force === true, op: 'numgrad runs rm' });
        out.line(describeRemoved(r));
      });
    });
  runs
    .command('prune')
    .description('remove every run of the given states last updated longer ago than --older-than')
    .requiredOption('--older-than <duration>', 'age since the run last changed: 7d, 12h, 30m, 90s')
    .option('--state <list>', `states to remove, a comma list of ${PRUNE_STATES.join(', ')}`, 'done,failed,cancelled')
    .option('--force', 'with --state running: cancel those runs first')
    .action(async (flags: { olderThan: string; state: string; force?: boolean }) => {
      const op = 'numgrad runs prune';
      const ms = parseDuration(op, '--older-than', flags.olderThan);
      const states = parseStates(op, flags.state, flags.force === true);
      await withClient(config(), async (c) => {
        const removed = await (await c.retention()).prune(ms, states, { force: flags.force === true, op });
        for (const r of removed) out.line(describeRemoved(r));
        out.line(`pruned ${removed.length} run${removed.length === 1 ? '' : 's'} (${states.join(', ')}) not updated for ${flags.olderThan}`);
      });
    });
}
