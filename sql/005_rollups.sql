-- Rollups (build-rollups): daily and monthly performance, the equity curve and its metrics,
-- daily positions, time buckets and the warehousing seed's materialized views. Every table
-- here is derived from warehouse.fact_trades and rebuilt by (trade date, account): a rebuild
-- replaces rows, so running one twice changes nothing.

-- The cost basis of the open FIFO lots after each fill (Σ lot quantity × lot price, ≥ 0),
-- written by the trade ETL alongside position_after; fact_positions_daily reads it for the
-- average entry price. NULL only for facts loaded before this column existed.
ALTER TABLE warehouse.fact_trades ADD COLUMN open_cost numeric;

-- Daily bars the enrichment jobs write; rollups read the 1d closes to mark positions.
CREATE SCHEMA IF NOT EXISTS market;
CREATE TABLE market.bars (
  symbol     text        NOT NULL,
  timeframe  text        NOT NULL,          -- 5m 15m 30m 1h 4h 1d 1w
  ts         timestamptz NOT NULL,          -- bar open; a 1d bar opens at midnight EXCHANGE_TZ of its session date
  open       numeric     NOT NULL,
  high       numeric     NOT NULL,
  low        numeric     NOT NULL,
  close      numeric     NOT NULL,
  volume     numeric     NOT NULL,
  source     text        NOT NULL,
  PRIMARY KEY (symbol, timeframe, ts)
);

-- Starting capital per account where it differs from STARTING_CAPITAL. Changing a value
-- restates that account's whole curve: run build-rollups with {"full": true} afterwards.
CREATE TABLE warehouse.account_capital (
  account_id        bigint      PRIMARY KEY,
  starting_capital  numeric     NOT NULL CHECK (starting_capital > 0),
  updated_at        timestamptz NOT NULL DEFAULT now()
);

-- Trading date × account × strategy (keys of the dimension versions the fills resolved to).
-- Ratios are NULL where DESIGN.md says so (no winners or losers; profit factor with no losses).
CREATE TABLE warehouse.fact_performance_daily (
  date_key        integer     NOT NULL,
  account_key     integer     NOT NULL,
  strategy_key    integer     NOT NULL,
  trade_date      date        NOT NULL,
  account_id      bigint      NOT NULL,
  total_trades    integer     NOT NULL,
  winning_trades  integer     NOT NULL,
  losing_trades   integer     NOT NULL,
  total_volume    numeric     NOT NULL,
  total_notional  numeric     NOT NULL,
  gross_profit    numeric     NOT NULL,     -- Σ winners' realized PnL
  gross_loss      numeric     NOT NULL,     -- |Σ losers' realized PnL|
  realized_pnl    numeric     NOT NULL,
  commissions     numeric     NOT NULL,
  fees            numeric     NOT NULL,
  net_pnl         numeric     NOT NULL,     -- realized − commissions − fees
  win_rate        numeric,
  profit_factor   numeric,
  avg_win         numeric,
  avg_loss        numeric,                  -- negative
  largest_win     numeric,
  largest_loss    numeric,                  -- negative
  PRIMARY KEY (date_key, account_key, strategy_key)
);
CREATE INDEX fact_performance_daily_account_idx ON warehouse.fact_performance_daily (account_id, trade_date);

-- Time buckets: trades by trading date × account × hour of day and market session, both
-- in EXCHANGE_TZ (hour 9 holds pre-market and regular fills apart). Day of week and month
-- come from the date; the v_performance_by_* views roll it up.
CREATE TABLE warehouse.fact_performance_buckets (
  trade_date      date        NOT NULL,
  account_id      bigint      NOT NULL,
  hour_of_day     smallint    NOT NULL,
  market_session  text        NOT NULL,
  total_trades    integer     NOT NULL,
  winning_trades  integer     NOT NULL,
  losing_trades   integer     NOT NULL,
  total_notional  numeric     NOT NULL,
  gross_profit    numeric     NOT NULL,
  gross_loss      numeric     NOT NULL,
  realized_pnl    numeric     NOT NULL,
  net_pnl         numeric     NOT NULL,
  PRIMARY KEY (account_id, trade_date, hour_of_day, market_session)
);

-- Trading date × instrument version, over all accounts: what mv_instrument_statistics
-- needs, kept at daily grain so refreshing the view never rescans the facts. Σ price and
-- Σ price² give the average and the sample standard deviation exactly.
CREATE TABLE warehouse.fact_instrument_daily (
  trade_date      date        NOT NULL,
  instrument_key  integer     NOT NULL,
  trade_count     integer     NOT NULL,
  total_volume    numeric     NOT NULL,
  total_notional  numeric     NOT NULL,
  sum_price       numeric     NOT NULL,
  sum_price_sq    numeric     NOT NULL,
  min_price       numeric     NOT NULL,
  max_price       numeric     NOT NULL,
  PRIMARY KEY (trade_date, instrument_key)
);

-- Month × account × strategy. sharpe_ratio: of the strategy's daily contributions to the
-- account's return (its net PnL / the account's equity at the start of the day) over every
-- row of the account's equity curve in the month, × √252; NULL under two rows or zero
-- variance. max_drawdown: the deepest fall of the strategy's cumulative net PnL within the
-- month from its running peak (starting at 0), in money, ≤ 0.
CREATE TABLE warehouse.agg_performance_monthly (
  month_key       integer     NOT NULL,     -- yyyymm
  account_key     integer     NOT NULL,
  strategy_key    integer     NOT NULL,
  account_id      bigint      NOT NULL,
  year            smallint    NOT NULL,
  month           smallint    NOT NULL,
  trading_days    integer     NOT NULL,     -- dates with fills
  total_trades    integer     NOT NULL,
  winning_trades  integer     NOT NULL,
  losing_trades   integer     NOT NULL,
  total_volume    numeric     NOT NULL,
  total_notional  numeric     NOT NULL,
  gross_profit    numeric     NOT NULL,
  gross_loss      numeric     NOT NULL,
  realized_pnl    numeric     NOT NULL,
  commissions     numeric     NOT NULL,
  fees            numeric     NOT NULL,
  net_pnl         numeric     NOT NULL,
  win_rate        numeric,
  profit_factor   numeric,
  best_day_pnl    numeric     NOT NULL,
  worst_day_pnl   numeric     NOT NULL,
  sharpe_ratio    double precision,
  max_drawdown    numeric     NOT NULL,
  PRIMARY KEY (month_key, account_key, strategy_key)
);
CREATE INDEX agg_performance_monthly_account_idx ON warehouse.agg_performance_monthly (account_id, month_key);

-- One row per account for every NYSE trading day from its first fill's date through the
-- rollup as-of date, and for any other date it traded (DESIGN.md "Equity curve").
-- account_key: the account's dimension version in force at the end of the date.
CREATE TABLE warehouse.equity_curve (
  account_id      bigint      NOT NULL,
  date            date        NOT NULL,
  account_key     integer     NOT NULL,
  date_key        integer     NOT NULL,
  is_trading_day  boolean     NOT NULL,
  total_trades    integer     NOT NULL,
  winning_trades  integer     NOT NULL,
  losing_trades   integer     NOT NULL,
  gross_profit    numeric     NOT NULL,
  gross_loss      numeric     NOT NULL,
  realized_pnl    numeric     NOT NULL,
  commissions     numeric     NOT NULL,
  fees            numeric     NOT NULL,
  net_pnl         numeric     NOT NULL,
  equity          numeric     NOT NULL,
  peak_equity     numeric     NOT NULL,     -- running peak, starting capital included
  drawdown        numeric     NOT NULL,     -- equity − peak_equity, ≤ 0
  drawdown_pct    double precision NOT NULL, -- drawdown / peak_equity
  daily_return    double precision,          -- net_pnl / previous row's equity (starting capital first); NULL when that is ≤ 0
  PRIMARY KEY (account_id, date)
);

-- DESIGN.md "Windows" and "Metrics": one row per account × window × date of its equity
-- curve. A window shorter than its length near the curve's start covers the rows there
-- are (days). Doubles, as in empyrical; never NaN or Infinity (NULL instead).
CREATE TABLE warehouse.performance_metrics (
  account_id             bigint      NOT NULL,
  window_name            text        NOT NULL CHECK (window_name IN ('30d', '90d', '365d', 'all')),
  as_of_date             date        NOT NULL,
  account_key            integer     NOT NULL,
  window_start           date        NOT NULL,
  days                   integer     NOT NULL,
  sharpe                 double precision,
  sortino                double precision,
  calmar                 double precision,
  annual_return          double precision,
  max_drawdown           double precision,
  profit_factor          double precision,
  recovery_factor        double precision,
  win_rate               double precision,
  expectancy             double precision,
  longest_losing_streak  integer     NOT NULL,
  var_95                 double precision,
  var_99                 double precision,
  PRIMARY KEY (account_id, as_of_date, window_name)
);
CREATE INDEX performance_metrics_key_idx ON warehouse.performance_metrics (account_key, as_of_date, window_name);

-- End of day per account × instrument with an open position, on every date of the
-- account's equity curve. quantity is signed (+ long, − short); cost_basis is the open
-- lots' Σ quantity × price. Market fields are NULL, not zero, without a 1d bar that date.
CREATE TABLE warehouse.fact_positions_daily (
  account_id       bigint      NOT NULL,
  instrument_id    bigint      NOT NULL,
  trade_date       date        NOT NULL,
  date_key         integer     NOT NULL,
  account_key      integer     NOT NULL,
  instrument_key   integer     NOT NULL,
  quantity         numeric     NOT NULL,
  side             text        NOT NULL CHECK (side IN ('LONG', 'SHORT')),
  cost_basis       numeric,
  avg_entry_price  numeric,
  close_price      numeric,
  market_value     numeric,
  unrealized_pnl   numeric,
  PRIMARY KEY (account_id, trade_date, instrument_id)
);
-- A desk's positions on a date, across accounts (the nightly report). Every index here is paid
-- for on each rebuild, so only the reads that need one get one.
CREATE INDEX fact_positions_daily_date_idx ON warehouse.fact_positions_daily (trade_date);

-- Per-strategy trade statistics over the windows of performance_metrics (same rows of the
-- equity curve): filter on account_id, window_name and as_of_date.
CREATE VIEW warehouse.strategy_performance_windows AS
SELECT pm.account_id, pm.window_name, pm.as_of_date, pm.window_start, ds.strategy_id,
       min(ds.strategy_name) AS strategy_name,
       sum(f.total_trades)::integer AS total_trades,
       sum(f.winning_trades)::integer AS winning_trades,
       sum(f.losing_trades)::integer AS losing_trades,
       sum(f.gross_profit) AS gross_profit,
       sum(f.gross_loss) AS gross_loss,
       sum(f.realized_pnl) AS realized_pnl,
       sum(f.net_pnl) AS net_pnl,
       sum(f.winning_trades)::numeric / nullif(sum(f.winning_trades) + sum(f.losing_trades), 0) AS win_rate,
       sum(f.gross_profit) / nullif(sum(f.gross_loss), 0) AS profit_factor,
       sum(f.realized_pnl) / nullif(sum(f.winning_trades) + sum(f.losing_trades), 0) AS expectancy,
       sum(f.gross_profit) / nullif(sum(f.winning_trades), 0) AS avg_win,
       -sum(f.gross_loss) / nullif(sum(f.losing_trades), 0) AS avg_loss
FROM warehouse.performance_metrics pm
JOIN warehouse.fact_performance_daily f
  ON f.account_id = pm.account_id AND f.trade_date BETWEEN pm.window_start AND pm.as_of_date
JOIN warehouse.dim_strategy ds ON ds.strategy_key = f.strategy_key
GROUP BY pm.account_id, pm.window_name, pm.as_of_date, pm.window_start, ds.strategy_id;

-- Time-bucket views over the whole history; for a date range query fact_performance_buckets.
CREATE VIEW warehouse.v_performance_by_hour AS
SELECT account_id, hour_of_day, sum(total_trades)::integer AS total_trades,
       sum(winning_trades)::integer AS winning_trades, sum(losing_trades)::integer AS losing_trades,
       sum(winning_trades)::numeric / nullif(sum(winning_trades) + sum(losing_trades), 0) AS win_rate,
       sum(realized_pnl) AS realized_pnl, sum(net_pnl) AS net_pnl,
       sum(net_pnl) / nullif(sum(total_trades), 0) AS avg_net_pnl_per_trade
FROM warehouse.fact_performance_buckets GROUP BY account_id, hour_of_day;

CREATE VIEW warehouse.v_performance_by_session AS
SELECT account_id, market_session, sum(total_trades)::integer AS total_trades,
       sum(winning_trades)::integer AS winning_trades, sum(losing_trades)::integer AS losing_trades,
       sum(winning_trades)::numeric / nullif(sum(winning_trades) + sum(losing_trades), 0) AS win_rate,
       sum(realized_pnl) AS realized_pnl, sum(net_pnl) AS net_pnl,
       sum(net_pnl) / nullif(sum(total_trades), 0) AS avg_net_pnl_per_trade
FROM warehouse.fact_performance_buckets GROUP BY account_id, market_session;

CREATE VIEW warehouse.v_performance_by_day_of_week AS
SELECT b.account_id, d.day_of_week, d.day_name, sum(b.total_trades)::integer AS total_trades,
       sum(b.winning_trades)::integer AS winning_trades, sum(b.losing_trades)::integer AS losing_trades,
       sum(b.winning_trades)::numeric / nullif(sum(b.winning_trades) + sum(b.losing_trades), 0) AS win_rate,
       sum(b.realized_pnl) AS realized_pnl, sum(b.net_pnl) AS net_pnl,
       sum(b.net_pnl) / nullif(sum(b.total_trades), 0) AS avg_net_pnl_per_trade
FROM warehouse.fact_performance_buckets b JOIN warehouse.dim_date d ON d.date = b.trade_date
GROUP BY b.account_id, d.day_of_week, d.day_name;

CREATE VIEW warehouse.v_performance_by_month AS
SELECT account_id, date_trunc('month', trade_date)::date AS month, sum(total_trades)::integer AS total_trades,
       sum(winning_trades)::integer AS winning_trades, sum(losing_trades)::integer AS losing_trades,
       sum(winning_trades)::numeric / nullif(sum(winning_trades) + sum(losing_trades), 0) AS win_rate,
       sum(realized_pnl) AS realized_pnl, sum(net_pnl) AS net_pnl,
       sum(net_pnl) / nullif(sum(total_trades), 0) AS avg_net_pnl_per_trade
FROM warehouse.fact_performance_buckets GROUP BY account_id, date_trunc('month', trade_date);

-- The warehousing seed's materialized views, over the 30 (90) calendar days up to the
-- rollup as-of date (the last date of any equity curve; today when there is none), not
-- CURRENT_DATE, so a desk replaying history sees its own last month. Grouped by the
-- natural id and labelled with the current dimension version; unique indexes let
-- build-rollups REFRESH … CONCURRENTLY, so readers are never blocked.
CREATE MATERIALIZED VIEW warehouse.mv_top_performing_strategies AS
WITH as_of AS (SELECT coalesce(max(date), current_date) AS d FROM warehouse.equity_curve),
per_strategy AS (
  SELECT ds.strategy_id, sum(f.net_pnl) AS total_pnl, sum(f.realized_pnl) AS realized_pnl,
         sum(f.total_trades)::integer AS total_trades, sum(f.winning_trades)::integer AS winning_trades,
         sum(f.losing_trades)::integer AS losing_trades,
         sum(f.winning_trades)::numeric / nullif(sum(f.winning_trades) + sum(f.losing_trades), 0) AS win_rate,
         sum(f.gross_profit) / nullif(sum(f.gross_loss), 0) AS profit_factor,
         count(DISTINCT f.trade_date)::integer AS trading_days, count(DISTINCT f.account_id)::integer AS accounts,
         max(f.trade_date) AS last_trade_date
  FROM warehouse.fact_performance_daily f
  JOIN warehouse.dim_strategy ds ON ds.strategy_key = f.strategy_key
  CROSS JOIN as_of
  WHERE f.trade_date > as_of.d - 30 AND f.trade_date <= as_of.d
  GROUP BY ds.strategy_id
)
SELECT cur.strategy_key, p.strategy_id, cur.strategy_name, cur.strategy_type,
       rank() OVER (ORDER BY p.total_pnl DESC)::integer AS pnl_rank,
       p.total_pnl, p.realized_pnl, p.total_trades, p.winning_trades, p.losing_trades, p.win_rate,
       p.profit_factor, p.trading_days, p.accounts, p.last_trade_date,
       (SELECT d FROM as_of) AS as_of_date
FROM per_strategy p
JOIN warehouse.dim_strategy cur ON cur.is_current AND cur.strategy_id IS NOT DISTINCT FROM p.strategy_id;
CREATE UNIQUE INDEX mv_top_performing_strategies_key_idx ON warehouse.mv_top_performing_strategies (strategy_key);

CREATE MATERIALIZED VIEW warehouse.mv_instrument_statistics AS
WITH as_of AS (SELECT coalesce(max(date), current_date) AS d FROM warehouse.equity_curve),
per_instrument AS (
  SELECT di.instrument_id, count(DISTINCT f.trade_date)::integer AS trading_days,
         sum(f.trade_count)::bigint AS trade_count, sum(f.total_volume) AS total_volume,
         sum(f.sum_price) / sum(f.trade_count) AS avg_price, min(f.min_price) AS min_price,
         max(f.max_price) AS max_price,
         CASE WHEN sum(f.trade_count) > 1 THEN
           sqrt(greatest(sum(f.sum_price_sq) - sum(f.sum_price) ^ 2 / sum(f.trade_count), 0) / (sum(f.trade_count) - 1))
         END AS price_volatility,
         sum(f.total_notional) AS total_notional
  FROM warehouse.fact_instrument_daily f
  JOIN warehouse.dim_instrument di ON di.instrument_key = f.instrument_key
  CROSS JOIN as_of
  WHERE f.trade_date > as_of.d - 90 AND f.trade_date <= as_of.d
  GROUP BY di.instrument_id
)
SELECT p.instrument_id, cur.instrument_key, cur.symbol, cur.exchange, cur.instrument_type,
       p.trading_days, p.trade_count, p.total_volume, p.avg_price, p.min_price, p.max_price,
       p.price_volatility, p.total_notional, (SELECT d FROM as_of) AS as_of_date
FROM per_instrument p
JOIN warehouse.dim_instrument cur ON cur.is_current AND cur.instrument_id = p.instrument_id;
CREATE UNIQUE INDEX mv_instrument_statistics_key_idx ON warehouse.mv_instrument_statistics (instrument_id);
