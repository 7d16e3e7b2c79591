/**
 * build-rollups: daily and monthly performance, equity curve and drawdown, performance
 * metrics, daily positions and materialized views. Partition: the trading date it rebuilds
 * (nightly: that evening's New York date). Rebuilding replaces rows, so a rerun is harmless.
 * Not built yet: the run is recorded and says it did nothing.
 */
import { z } from 'zod';
import { tickDate } from '../src/cron.ts';
import { basePayload, createNothingDoneSummary, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';

const payload = basePayload.extend({
  date: payloadDate.optional(),
  from: payloadDate.optional(),
  to: payloadDate.optional(),
  full: z.boolean().optional(),
  /** Rebuild the (date, account) partitions listed in ops.rollup_requests (what trade-etl enqueues). */
  pending: z.boolean().optional(),
  /** The run that asked for a pending rebuild, e.g. `trade-etl@2026-11-21T062500Z`; names the partition. */
  trigger: z.string().min(1).max(200).optional(),
});

export const buildRollups = defineJob({
  name: 'build-rollups',
  queue: 'rollups',
  description: 'Daily/monthly performance, equity curve, drawdown, metrics, positions, materialized views',
  payload,
  schedule: { cron: '30 23 * * *', tz: 'America/New_York', calendar: 'all', overlap: 'skip' },
  partition: (p) => {
    if (p.full) return 'full';
    if (p.pending) return `pending@${p.trigger ?? scheduledInstant(p)}`;
    if (p.from || p.to) return `${p.from ?? 'start'}..${p.to ?? 'end'}`;
    return p.date ?? tickDate(scheduledInstant(p), 'America/New_York');
  },
  catchup: { mode: 'latest', windowHours: 48 },
  process: async () => createNothingDoneSummary('build-rollups'),
});
