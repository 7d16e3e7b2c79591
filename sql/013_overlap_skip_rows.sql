-- A tick dropped by an overlap policy used to leave a 'skipped' row, which catch-up, deadlines
-- and the status grid took for done although the partition never ran. Such ticks now leave no
-- row; the old rows go too, so their partitions show as missing and catch-up (inside its
-- window) or a re-run can still run them.
DELETE FROM ops.job_runs WHERE status = 'skipped' AND summary->>'skipped' = 'overlap';
