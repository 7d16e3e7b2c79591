-- Deadline misses the scheduler has reported (logged with alert "deadline-missed" and counted in
-- bullpen_deadline_misses_total). The scheduler used to remember them in memory only, so every
-- restart (a deploy) and every other scheduler process reported each miss still in its window
-- again. A miss is reported by the process whose insert makes its row, once.
-- The scheduler deletes rows whose deadline is long past (see DEADLINE_MISS_RETENTION_MS).
CREATE TABLE ops.deadline_misses (
  schedule     text        NOT NULL,
  partition    text        NOT NULL,
  due_at       timestamptz NOT NULL,
  reported_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (schedule, partition)
);
CREATE INDEX deadline_misses_due_at_idx ON ops.deadline_misses (due_at);
