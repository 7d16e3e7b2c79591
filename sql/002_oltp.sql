-- oltp: the source trading system, as DESIGN.md names it. In production it usually lives in
-- another database (SOURCE_DATABASE_URL); this copy serves the embedded default and
-- `bullpen demo`. Like a real raw fill store only the primary keys are NOT NULL: the ETL,
-- not the source, judges a row. bullpen reads these tables and writes them only when seeding.

CREATE SCHEMA IF NOT EXISTS oltp;

CREATE TABLE oltp.accounts (
  account_id      bigint PRIMARY KEY,
  account_number  text,
  account_name    text,
  account_type    text,
  broker          text,
  currency        text,
  risk_tier       text,
  updated_at      timestamptz
);

CREATE TABLE oltp.instruments (
  instrument_id   bigint PRIMARY KEY,
  symbol          text,
  exchange        text,
  instrument_type text,
  full_name       text,
  sector          text,
  industry        text,
  currency        text,
  tick_size       numeric,
  lot_size        integer,
  is_active       boolean,
  updated_at      timestamptz
);

CREATE TABLE oltp.strategies (
  strategy_id     bigint PRIMARY KEY,
  strategy_name   text,
  strategy_type   text,
  risk_tier       text,
  version         integer,
  is_active       boolean,
  updated_at      timestamptz
);

CREATE TABLE oltp.orders (
  order_id        bigint PRIMARY KEY,
  account_id      bigint,
  instrument_id   bigint,
  strategy_id     bigint,
  side            text,
  quantity        numeric,
  limit_price     numeric,
  created_at      timestamptz
);

CREATE TABLE oltp.executions (
  execution_id    bigint PRIMARY KEY,
  order_id        bigint,
  account_id      bigint,
  instrument_id   bigint,
  executed_at     timestamptz,
  -- When the row reached the source: the ETL's watermark, with execution_id as tie-break.
  ingested_at     timestamptz,
  side            text,
  quantity        numeric,
  price           numeric,
  commission      numeric,
  fees            numeric,
  liquidity_flag  text,
  venue           text,
  reported_at     timestamptz
);
-- The ETL reads "everything after (ingested_at, execution_id)" in that order.
CREATE INDEX executions_watermark_idx ON oltp.executions (ingested_at, execution_id);
