-- Relative strength (refresh-rs): one row per symbol and as-of trading date, kept as history;
-- the current values are copied to market.sector_mapping. Definitions in src/queries/rs.ts.
CREATE TABLE market.rs_scores (
  symbol             text        COLLATE "C" NOT NULL,
  as_of_date         date        NOT NULL,
  sector_name        text,
  sector_etf         text,                    -- the ETF scored against; NULL when unknown (SPY only)
  close              double precision,        -- the as-of close
  sessions           integer     NOT NULL,    -- 1d bars up to the as-of date, at most 253 counted
  return_21d         double precision,        -- fractions: close / close n sessions before − 1
  return_63d         double precision,
  return_126d        double precision,
  return_189d        double precision,
  return_252d        double precision,
  rs_63d_vs_spy      double precision,        -- (return − SPY's return) × 100 over 63 sessions
  rs_score           double precision,        -- weighted RS vs SPY: 40% 3 months, 20% each 6, 9, 12
  rs_sector_score    double precision,        -- the same weighting against the sector ETF
  rs_rating          smallint CHECK (rs_rating BETWEEN 1 AND 99),
  is_sector_leader   boolean,
  note               text,                    -- why a score is NULL (not enough history, no bar that day)
  computed_at        timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (symbol, as_of_date)
);
CREATE INDEX rs_scores_as_of_idx ON market.rs_scores (as_of_date, rs_rating DESC);
