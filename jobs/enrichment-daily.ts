/**
 * enrichment-daily: brings every tracked symbol up to yesterday's close as one small backfill.
 * Partition: the trading date it completes (the day before the 01:30 tick). Backfill chunks are
 * checkpointed, so a rerun fetches nothing twice. Not built yet: the run is recorded and says
 * it did nothing.
 */
import { tickDate } from '../src/cron.ts';
import { basePayload, createNothingDoneSummary, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';

const payload = basePayload.extend({ date: payloadDate.optional() });

export const enrichmentDaily = defineJob({
  name: 'enrichment-daily',
  queue: 'enrichment',
  description: 'Incremental enrichment of every tracked symbol up to yesterday',
  payload,
  schedule: { cron: '30 1 * * *', tz: 'America/New_York', calendar: 'nyse', overlap: 'skip' },
  partition: (p) => p.date ?? tickDate(scheduledInstant(p), 'America/New_York', -1),
  catchup: { mode: 'all', windowHours: 72, max: 3 },
  process: async () => createNothingDoneSummary('enrichment-daily'),
});
