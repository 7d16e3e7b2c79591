-- ops: the record of what bullpen did. Redis may lose its data; these tables may not.
-- (ops.schema_migrations is created by the migration runner itself, before any file.)

CREATE TABLE ops.job_runs (
  run_id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job            text        NOT NULL,
  partition      text        NOT NULL,
  queue          text        NOT NULL,
  -- BullMQ id of the job that ran (or is running) this partition last.
  job_id         text,
  status         text        NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'retrying', 'skipped', 'buffered')),
  -- Attempts of that BullMQ job so far (1 on the first try).
  attempts       integer     NOT NULL DEFAULT 0,
  -- Times this partition has been executed in all, forced re-runs included.
  run_count      integer     NOT NULL DEFAULT 0,
  scheduled_for  timestamptz,
  started_at     timestamptz,
  finished_at    timestamptz,
  duration_ms    integer GENERATED ALWAYS AS ((EXTRACT(EPOCH FROM (finished_at - started_at)) * 1000)::integer) STORED,
  -- Refreshed while a run is active; a stale heartbeat means its worker died.
  heartbeat_at   timestamptz,
  worker         text,
  summary        jsonb,
  error          text,
  created_at     timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  -- The real guard against running a partition twice: a BullMQ id dedupes only while the job is stored.
  -- running/retrying/failed/succeeded as usual; skipped: a tick dropped (overlap, no session);
  -- buffered: a tick held back until the active run of its schedule ends (overlap buffer-one).
  CONSTRAINT job_runs_job_partition_key UNIQUE (job, partition)
);
CREATE INDEX job_runs_job_status_idx ON ops.job_runs (job, status, finished_at DESC);

-- Attempts that did not succeed (retrying, failed, skipped), for the history a job_runs row
-- overwrites; a success is fully described by its job_runs row.
CREATE TABLE ops.job_run_events (
  event_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  job         text        NOT NULL,
  partition   text        NOT NULL,
  job_id      text,
  attempt     integer     NOT NULL,
  outcome     text        NOT NULL CHECK (outcome IN ('succeeded', 'failed', 'retrying', 'skipped')),
  error       text,
  at          timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_run_events_job_idx ON ops.job_run_events (job, partition, at DESC);

CREATE TABLE ops.etl_watermarks (
  source          text        PRIMARY KEY,
  last_ingested_at timestamptz,
  last_execution_id bigint,
  updated_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE ops.etl_rejects (
  reject_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source        text        NOT NULL,
  source_key    text        NOT NULL,
  reason        text        NOT NULL,
  detail        text,
  raw           jsonb       NOT NULL,
  ingested_at   timestamptz,
  run_partition text,
  rejected_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX etl_rejects_source_key_idx ON ops.etl_rejects (source, source_key);
CREATE INDEX etl_rejects_reason_idx ON ops.etl_rejects (reason, rejected_at DESC);

CREATE TABLE ops.reports (
  report_date   date        NOT NULL,
  kind          text        NOT NULL DEFAULT 'daily',
  json_path     text        NOT NULL,
  html_path     text,
  summary       jsonb,
  generated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (report_date, kind)
);
