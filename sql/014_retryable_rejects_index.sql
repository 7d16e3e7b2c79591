-- The trade ETL's retry pass looks, on every run, for open rejects of an account or instrument
-- unknown at the time (src/queries/trades.ts, loadRetryableRejects). Without an index of its own
-- it combined the reason index and the open-rejects index over every reject ever stored, and
-- its misestimated cost brought in JIT: 140-210 ms a run with 300,000 rejects. This one holds
-- only the rows it can find, in the order it reads them.
CREATE INDEX etl_rejects_retryable_idx ON ops.etl_rejects (source, (source_key::bigint))
  WHERE resolved_at IS NULL AND reason IN ('account_unknown', 'instrument_unknown');
