-- Two things the enrichment backfills keep from now on.
--
-- A series' failed chunk has an error of its own, apart from the series' current error
-- (error_message: a retry's, or the one its job failed of). A failed chunk is a hole the series
-- keeps until it ends, so its error is why the series fails; the others say nothing once the
-- series goes on (a later chunk stored, a resume). Existing series take it from the ledger, or
-- their error when the ledger no longer has it.
ALTER TABLE enrichment.backfill_state ADD COLUMN chunk_error text;
UPDATE enrichment.backfill_state s SET chunk_error = coalesce(
  (SELECT c.error FROM enrichment.chunks c
   WHERE c.backfill_job_id = s.backfill_job_id AND c.symbol = s.symbol AND c.timeframe = s.timeframe AND c.status = 'failed'
   ORDER BY c.chunk_start DESC LIMIT 1),
  s.error_message)
WHERE s.chunks_failed > 0;

-- A provider's request budget, shared by every worker process: the instants (PostgreSQL's clock)
-- of its last grants, at most as many as the budget allows per window. A fetch from a source the
-- enrichment queue's BullMQ limiter does not meter takes a grant here first (polygon asked for
-- on a deployment whose default source is another).
CREATE TABLE enrichment.provider_budget (
  provider  text          PRIMARY KEY,
  grants    timestamptz[] NOT NULL DEFAULT '{}'
);
