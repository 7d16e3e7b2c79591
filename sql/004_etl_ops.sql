-- Bookkeeping of the trade ETL in ops: idempotent quarantine, the amendment audit, and the
-- (date, account) partitions whose rollups are stale.

-- A re-run over the same window must not quarantine a row twice.
ALTER TABLE ops.etl_rejects ADD COLUMN raw_hash text;
UPDATE ops.etl_rejects SET raw_hash = md5(raw::text) WHERE raw_hash IS NULL;
ALTER TABLE ops.etl_rejects ALTER COLUMN raw_hash SET NOT NULL;
CREATE UNIQUE INDEX etl_rejects_dedup_idx ON ops.etl_rejects (source, source_key, raw_hash);
-- Set when a later version of the same source row loads (the source fixed it).
ALTER TABLE ops.etl_rejects ADD COLUMN resolved_at timestamptz;
CREATE INDEX etl_rejects_open_idx ON ops.etl_rejects (source, source_key) WHERE resolved_at IS NULL;

-- Every amendment the ETL applied: the fact as it was and the source row that replaced it
-- (NULL current when the amended row was rejected and its fact removed).
CREATE TABLE ops.etl_amendments (
  amendment_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  source         text        NOT NULL,
  execution_id   bigint      NOT NULL,
  previous_hash  text        NOT NULL,
  current_hash   text        NOT NULL,
  previous       jsonb       NOT NULL,
  current        jsonb       NOT NULL,
  run_partition  text,
  amended_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (source, execution_id, previous_hash, current_hash)
);

-- Rollup partitions made stale by a load, written in the load's transaction so a lost Redis
-- job never loses the request; build-rollups consumes them.
CREATE TABLE ops.rollup_requests (
  trade_date     date        NOT NULL,
  account_id     bigint      NOT NULL,
  requested_at   timestamptz NOT NULL DEFAULT now(),
  requested_by   text,
  PRIMARY KEY (trade_date, account_id)
);
