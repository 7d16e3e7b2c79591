/**
 * refresh-rs: relative strength vs SPY and the sector ETF, RS rating 1–99 and sector leaders.
 * Partition: the NYSE trading date scored. Scores for a date are replaced whole, so a rerun is
 * harmless. Not built yet: the run is recorded and says it did nothing.
 */
import { tickDate } from '../src/cron.ts';
import { basePayload, createNothingDoneSummary, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';

const payload = basePayload.extend({ date: payloadDate.optional() });

export const refreshRs = defineJob({
  name: 'refresh-rs',
  queue: 'rs',
  description: 'RS vs SPY and sector ETF, RS rating 1–99, sector leaders, history',
  payload,
  schedule: { cron: '0 18 * * 1-5', tz: 'America/New_York', calendar: 'nyse', overlap: 'skip' },
  partition: (p) => p.date ?? tickDate(scheduledInstant(p), 'America/New_York'),
  // Missed evenings are filled in order: five trading days fit in a week.
  catchup: { mode: 'all', windowHours: 7 * 24, max: 5 },
  process: async () => createNothingDoneSummary('refresh-rs'),
});
