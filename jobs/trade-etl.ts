/**
 * trade-etl: incremental load of new and amended executions from the OLTP schema into the
 * warehouse by watermark. Partition: the tick it stands for (each five-minute tick is its
 * own partition). A rerun is harmless because the watermark, not the tick, decides what is
 * read. Not built yet: the run is recorded and says it did nothing.
 */
import { tickPartition } from '../src/cron.ts';
import { basePayload, createNothingDoneSummary, defineJob, scheduledInstant } from '../src/job-definition.ts';

const payload = basePayload;

export const tradeEtl = defineJob({
  name: 'trade-etl',
  queue: 'etl',
  description: 'Incremental load of executions into the warehouse star schema, FIFO realized PnL, rejects to quarantine',
  payload,
  schedule: { cron: '*/5 * * * *', tz: 'America/New_York', calendar: 'all', overlap: 'skip' },
  partition: (p) => tickPartition(scheduledInstant(p)),
  // The watermark makes any later run pick up what a missed one would have: only the latest matters.
  catchup: { mode: 'latest', windowHours: 1 },
  process: async () => createNothingDoneSummary('trade-etl'),
});
