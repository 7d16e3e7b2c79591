/**
 * nightly-report: per-account and firm-wide daily report, JSON and HTML. Partition: the
 * report date (the UTC date of the 23:50 UTC tick). Files are replaced atomically, so a rerun
 * is harmless. Not built yet: the run is recorded and says it did nothing.
 */
import { tickDate } from '../src/cron.ts';
import { basePayload, createNothingDoneSummary, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';

const payload = basePayload.extend({ date: payloadDate.optional() });

export const nightlyReport = defineJob({
  name: 'nightly-report',
  queue: 'reports',
  description: 'Per-account and firm-wide daily report (JSON + HTML), stored and served under /reports/',
  payload,
  schedule: {
    cron: '50 23 * * *',
    tz: 'UTC',
    calendar: 'all',
    overlap: 'skip',
    // The trading-loop seed's window: the day's report exists by 00:30 UTC the next day.
    deadline: { by: '00:30', tz: 'UTC', dayOffset: 1 },
  },
  partition: (p) => p.date ?? tickDate(scheduledInstant(p), 'UTC'),
  catchup: { mode: 'all', windowHours: 7 * 24, max: 7 },
  process: async () => createNothingDoneSummary('nightly-report'),
});
