/**
 * enrichment-backfill: resumable chunked fetch → validate → features → store for symbols ×
 * timeframes × a date range. Partition: the backfill request id; chunks checkpoint, so a rerun
 * resumes rather than repeats. Not built yet: the run is recorded and says it did nothing.
 */
import { z } from 'zod';
import { basePayload, createNothingDoneSummary, defineJob } from '../src/job-definition.ts';

const payload = basePayload.extend({
  backfillId: z.string().regex(/^[A-Za-z0-9_.-]+$/, 'must be letters, digits, "_", "." or "-"'),
});

export const enrichmentBackfill = defineJob({
  name: 'enrichment-backfill',
  queue: 'enrichment',
  description: 'Ad-hoc resumable market-data backfill for symbols × timeframes × date range',
  payload,
  schedule: null,
  partition: (p) => p.backfillId,
  catchup: { mode: 'none' },
  process: async () => createNothingDoneSummary('enrichment-backfill'),
});
