/**
 * maintain-partitions: creates the next months' fact_trades partitions ahead of time.
 * Partition: the UTC date of the tick. CREATE … IF NOT EXISTS makes a rerun harmless.
 * Not built yet (fact_trades arrives with the trade ETL): the run is recorded and says it did nothing.
 */
import { tickDate } from '../src/cron.ts';
import { basePayload, createNothingDoneSummary, defineJob, scheduledInstant } from '../src/job-definition.ts';

const payload = basePayload;

export const maintainPartitions = defineJob({
  name: 'maintain-partitions',
  queue: 'maintenance',
  description: 'Creates the next months of fact partitions ahead of time',
  payload,
  schedule: { cron: '15 0 * * *', tz: 'UTC', calendar: 'all', overlap: 'skip' },
  partition: (p) => tickDate(scheduledInstant(p), 'UTC'),
  catchup: { mode: 'latest', windowHours: 48 },
  process: async () => createNothingDoneSummary('maintain-partitions'),
});
