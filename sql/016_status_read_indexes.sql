-- Reads of the status page and the API that grew with history.
--
-- The partition grid's trade-etl cells: for a date no run was partitioned on, the latest
-- succeeded run whose summary lists it in dates_touched. Found by containment in this index
-- instead of unpacking the summary of every run since that date (a year of minute runs:
-- tens of thousands per grid load).
CREATE INDEX job_runs_etl_dates_touched_idx ON ops.job_runs USING gin ((summary -> 'dates_touched') jsonb_path_ops)
  WHERE job = 'trade-etl' AND status = 'succeeded';

-- GET /api/v1/enrichment/metrics averages the last 7 days' quality of every series: by date,
-- where every other index of the table leads with the symbol.
CREATE INDEX data_quality_metrics_date_idx ON enrichment.data_quality_metrics (metric_date);
