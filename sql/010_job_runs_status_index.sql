-- ops.job_runs' second index led with job, like its (job, partition) key. A table without
-- statistics (a new deployment, before autovacuum's first ANALYZE) makes the two look alike to
-- the planner, and a plan cached then found a run by scanning every run of its job: each claim
-- and finish of a large backfill cost more than the last. Led by status, it serves the same
-- reads (a job's last success, its running or failed runs, every one with status fixed), and
-- (job, partition) lookups use the key. NULLS LAST as the history reads order (a job's last
-- success is one index entry, not a sort of all of them).
CREATE INDEX job_runs_status_job_idx ON ops.job_runs (status, job, finished_at DESC NULLS LAST);
DROP INDEX ops.job_runs_job_status_idx;
