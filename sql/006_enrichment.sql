-- Market-data enrichment: backfill requests and their resumable state, the chunk ledger that
-- keeps a range from being fetched twice, features per bar, data quality per day, fetch and
-- compute logs, corrections, rejected bars, and each symbol's status (the enrichment seed's
-- tables, in schema enrichment, with the columns resumable chunked backfills need).
CREATE SCHEMA IF NOT EXISTS enrichment;

-- The universe the daily enrichment tracks and refresh-rs scores (issue: RS refresh fills it).
CREATE TABLE market.sector_mapping (
  symbol            text        PRIMARY KEY,
  sector_name       text        NOT NULL,
  industry          text,
  sector_etf        text,
  asset_class       text        NOT NULL DEFAULT 'stock' CHECK (asset_class IN ('stock', 'etf', 'crypto')),
  rs_score          numeric(10,4),
  rs_rating         smallint,
  is_sector_leader  boolean,
  last_updated      timestamptz
);

-- One row per stored bar; the definitions are in src/analytics/features.ts.
CREATE TABLE market.features (
  symbol               text        COLLATE "C" NOT NULL,
  timeframe            text        COLLATE "C" NOT NULL,
  ts                   timestamptz NOT NULL,
  return_1bar          double precision,
  return_1d            double precision,
  volatility_20        double precision,
  volatility_50        double precision,
  atr_14               double precision,
  sma_20               double precision,
  sma_50               double precision,
  ema_20               double precision,
  ema_50               double precision,
  rsi_14               double precision,
  volume_sma_20        double precision,
  trend_direction      smallint,
  market_structure     text,
  vsa_no_demand        boolean     NOT NULL,
  vsa_no_supply        boolean     NOT NULL,
  vsa_stopping_volume  boolean     NOT NULL,
  PRIMARY KEY (symbol, timeframe, ts)
);

-- A request: symbols × timeframes × dates from one source. Status: queued → in_progress →
-- completed | failed | cancelled (cancelling while children reach a chunk boundary).
CREATE TABLE enrichment.backfills (
  backfill_id   uuid        PRIMARY KEY,
  symbols       text[]      NOT NULL,
  timeframes    text[]      NOT NULL,
  asset_class   text        NOT NULL CHECK (asset_class IN ('stock', 'etf', 'crypto')),
  from_date     date        NOT NULL,
  to_date       date        NOT NULL CHECK (to_date >= from_date),
  source        text        NOT NULL,
  reprocess     text        NOT NULL CHECK (reprocess IN ('missing', 'failed', 'all')),
  requested_by  text        NOT NULL,
  status        text        NOT NULL CHECK (status IN ('queued', 'in_progress', 'completed', 'failed', 'cancelling', 'cancelled')),
  job_id        text,
  resumes       integer     NOT NULL DEFAULT 0,
  error         text,
  created_at    timestamptz NOT NULL DEFAULT now(),
  started_at    timestamptz,
  finished_at   timestamptz,
  updated_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX backfills_created_idx ON enrichment.backfills (created_at DESC);
CREATE INDEX backfills_status_idx ON enrichment.backfills (status);

-- One row per symbol × timeframe of a request: its chunk plan, where it is, and the feature
-- state after its last committed chunk, written in that chunk's transaction (so a resumed
-- child continues the series exactly).
CREATE TABLE enrichment.backfill_state (
  id                    bigserial   PRIMARY KEY,
  backfill_job_id       uuid        NOT NULL REFERENCES enrichment.backfills ON DELETE CASCADE,
  symbol                text        NOT NULL,
  asset_class           text        NOT NULL,
  timeframe             text        NOT NULL,
  status                text        NOT NULL CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
  chunks                jsonb       NOT NULL,             -- [{start, end}] in order
  next_chunk            integer     NOT NULL DEFAULT 0,   -- index of the first chunk not yet handled
  chunks_done           integer     NOT NULL DEFAULT 0,
  chunks_skipped        integer     NOT NULL DEFAULT 0,   -- already complete in enrichment.chunks
  chunks_failed         integer     NOT NULL DEFAULT 0,
  bars_written          bigint      NOT NULL DEFAULT 0,
  bars_rejected         bigint      NOT NULL DEFAULT 0,
  last_successful_date  date,
  feature_state         jsonb,
  state_through         timestamptz,                      -- open of the last bar feature_state has seen
  error_message         text,
  retry_count           integer     NOT NULL DEFAULT 0,
  created_at            timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  UNIQUE (backfill_job_id, symbol, timeframe)
);
CREATE INDEX backfill_state_symbol_status_idx ON enrichment.backfill_state (symbol, status);

-- The chunk ledger, across requests: which grid cells of a series were fetched, through which
-- date, and how that went. A later request skips cells already complete (reprocess 'missing').
CREATE TABLE enrichment.chunks (
  symbol           text        NOT NULL,
  timeframe        text        NOT NULL,
  chunk_start      date        NOT NULL,
  chunk_end        date        NOT NULL,
  status           text        NOT NULL CHECK (status IN ('completed', 'failed')),
  covered_to       date,                               -- last date fetched; complete when >= chunk_end
  source           text        NOT NULL,
  backfill_job_id  uuid,
  bars_stored      integer     NOT NULL DEFAULT 0,
  bars_rejected    integer     NOT NULL DEFAULT 0,
  error            text,
  updated_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (symbol, timeframe, chunk_start)
);

CREATE TABLE enrichment.fetch_log (
  id                       bigserial   PRIMARY KEY,
  symbol                   text        NOT NULL,
  timeframe                text        NOT NULL,
  source                   text        NOT NULL,
  backfill_job_id          uuid,
  chunk_start              date,
  chunk_end                date,
  records_fetched          integer     NOT NULL DEFAULT 0,
  records_inserted         integer     NOT NULL DEFAULT 0,
  requests                 integer     NOT NULL DEFAULT 0,
  success                  boolean     NOT NULL,
  source_response_time_ms  integer,
  api_quota_remaining      integer,
  error                    text,
  created_at               timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX fetch_log_symbol_time_idx ON enrichment.fetch_log (symbol, created_at DESC);
CREATE INDEX fetch_log_time_idx ON enrichment.fetch_log (created_at);

CREATE TABLE enrichment.compute_log (
  id                   bigserial   PRIMARY KEY,
  symbol               text        NOT NULL,
  timeframe            text        NOT NULL,
  backfill_job_id      uuid,
  chunk_start          date,
  features_computed    integer     NOT NULL DEFAULT 0,
  computation_time_ms  integer,
  success              boolean     NOT NULL,
  error_details        text,
  created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX compute_log_symbol_time_idx ON enrichment.compute_log (symbol, created_at DESC);
CREATE INDEX compute_log_time_idx ON enrichment.compute_log (created_at);

-- Per symbol, timeframe and market-local day (src/analytics/data-quality.ts).
CREATE TABLE enrichment.data_quality_metrics (
  symbol              text        NOT NULL,
  timeframe           text        NOT NULL,
  metric_date         date        NOT NULL,
  total_records       integer     NOT NULL,
  validated_records   integer     NOT NULL,
  validation_rate     numeric(5,2) NOT NULL,
  gaps_detected       integer     NOT NULL,
  anomalies_detected  integer     NOT NULL,
  avg_quality_score   numeric(3,2) NOT NULL,
  data_completeness   numeric(3,2) NOT NULL,
  features_rate       numeric(3,2) NOT NULL,
  freshness           numeric(3,2) NOT NULL,
  backfill_job_id     uuid,
  computed_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (symbol, timeframe, metric_date)
);
CREATE INDEX data_quality_symbol_date_idx ON enrichment.data_quality_metrics (symbol, metric_date DESC);

-- A stored bar replaced by different values from a later fetch.
CREATE TABLE enrichment.data_corrections (
  id                    bigserial   PRIMARY KEY,
  symbol                text        NOT NULL,
  timeframe             text        NOT NULL,
  ts                    timestamptz NOT NULL,
  field_corrected       text        NOT NULL,
  old_value             text,
  new_value             text,
  reason                text        NOT NULL,   -- source_updated, bug_fix, manual_correction
  corrected_by          text        NOT NULL,
  backfill_job_id       uuid,
  correction_timestamp  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX data_corrections_symbol_time_idx ON enrichment.data_corrections (symbol, correction_timestamp DESC);

-- Bars validation kept out of market.bars, with the reason.
CREATE TABLE enrichment.bar_rejects (
  id               bigserial   PRIMARY KEY,
  symbol           text        NOT NULL,
  timeframe        text        NOT NULL,
  ts               timestamptz,
  reason           text        NOT NULL,
  detail           text        NOT NULL,
  bar              jsonb       NOT NULL,
  source           text        NOT NULL,
  backfill_job_id  uuid,
  created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX bar_rejects_symbol_time_idx ON enrichment.bar_rejects (symbol, created_at DESC);

-- What is known of each symbol's enrichment; the API derives healthy / warning / stale from it
-- with the current time (data age changes while nothing is written).
CREATE TABLE enrichment.status (
  symbol                text        PRIMARY KEY,
  asset_class           text        NOT NULL,
  status                text        NOT NULL CHECK (status IN ('healthy', 'warning', 'stale', 'error', 'not_enriched')),
  last_enrichment_time  timestamptz,
  latest_bar_ts         timestamptz,
  records_available     bigint      NOT NULL DEFAULT 0,
  timeframes_available  text[]      NOT NULL DEFAULT '{}',
  error_message         text,
  updated_at            timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX status_status_idx ON enrichment.status (status);

-- Bars as binary floats, the form every provider delivers them in: exact decimals bought
-- nothing but twice the width and a text COPY. Rollups cast the 1d close to numeric (its
-- shortest decimal) before multiplying it with quantities.
-- Symbols and timeframes are ASCII codes: byte order is their order, and the primary keys'
-- comparisons skip the locale's collation on every bar loaded.
ALTER TABLE market.bars
  ALTER COLUMN symbol TYPE text COLLATE "C",
  ALTER COLUMN timeframe TYPE text COLLATE "C",
  ALTER COLUMN open TYPE double precision,
  ALTER COLUMN high TYPE double precision,
  ALTER COLUMN low TYPE double precision,
  ALTER COLUMN close TYPE double precision,
  ALTER COLUMN volume TYPE double precision;
