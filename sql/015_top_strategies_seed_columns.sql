-- mv_top_performing_strategies gains the warehousing seed's own columns, so a dashboard written
-- against the seed's view reads it unchanged: avg_win_rate and avg_profit_factor (the averages of
-- the daily rows' rates, as the seed computes them), last_updated (the last date with fills in
-- the window) and avg_sharpe_ratio. The seed averaged a per-day Sharpe ratio, which a single day
-- does not have; here it is the strategy's Sharpe over the window: the mean of its daily net PnL
-- (every account; 0 on sessions it did not trade) over their standard deviation, × √252. NULL
-- with fewer than two days or no variation. The earlier columns stay as they were.
DROP MATERIALIZED VIEW warehouse.mv_top_performing_strategies;
CREATE MATERIALIZED VIEW warehouse.mv_top_performing_strategies AS
WITH as_of AS (SELECT coalesce(max(date), current_date) AS d FROM warehouse.equity_curve),
window_rows AS (
  SELECT ds.strategy_id, f.trade_date, f.account_id, f.net_pnl, f.realized_pnl, f.total_trades, f.winning_trades,
         f.losing_trades, f.gross_profit, f.gross_loss, f.win_rate, f.profit_factor
  FROM warehouse.fact_performance_daily f
  JOIN warehouse.dim_strategy ds ON ds.strategy_key = f.strategy_key
  CROSS JOIN as_of
  WHERE f.trade_date > as_of.d - 30 AND f.trade_date <= as_of.d
),
per_strategy AS (
  SELECT strategy_id, sum(net_pnl) AS total_pnl, sum(realized_pnl) AS realized_pnl,
         sum(total_trades)::integer AS total_trades, sum(winning_trades)::integer AS winning_trades,
         sum(losing_trades)::integer AS losing_trades,
         sum(winning_trades)::numeric / nullif(sum(winning_trades) + sum(losing_trades), 0) AS win_rate,
         sum(gross_profit) / nullif(sum(gross_loss), 0) AS profit_factor,
         count(DISTINCT trade_date)::integer AS trading_days, count(DISTINCT account_id)::integer AS accounts,
         max(trade_date) AS last_trade_date, avg(win_rate) AS avg_win_rate, avg(profit_factor) AS avg_profit_factor
  FROM window_rows
  GROUP BY strategy_id
),
-- The window's sessions, and any other date with fills.
window_days AS (
  SELECT dd.date FROM warehouse.dim_date dd CROSS JOIN as_of
  WHERE dd.is_trading_day AND dd.date > as_of.d - 30 AND dd.date <= as_of.d
  UNION
  SELECT trade_date FROM window_rows
),
daily_pnl AS (
  SELECT strategy_id, trade_date, sum(net_pnl) AS net_pnl FROM window_rows GROUP BY strategy_id, trade_date
),
sharpe AS (
  SELECT p.strategy_id,
         (avg(coalesce(d.net_pnl, 0)) / nullif(stddev_samp(coalesce(d.net_pnl, 0)), 0))::float8 * sqrt(252) AS sharpe
  FROM per_strategy p
  CROSS JOIN window_days w
  LEFT JOIN daily_pnl d ON d.strategy_id IS NOT DISTINCT FROM p.strategy_id AND d.trade_date = w.date
  GROUP BY p.strategy_id
)
SELECT cur.strategy_key, p.strategy_id, cur.strategy_name, cur.strategy_type,
       rank() OVER (ORDER BY p.total_pnl DESC)::integer AS pnl_rank,
       p.total_pnl, p.realized_pnl, p.total_trades, p.winning_trades, p.losing_trades, p.win_rate,
       p.profit_factor, p.trading_days, p.accounts, p.last_trade_date,
       (SELECT d FROM as_of) AS as_of_date,
       p.avg_win_rate, s.sharpe AS avg_sharpe_ratio, p.avg_profit_factor, p.last_trade_date AS last_updated
FROM per_strategy p
JOIN sharpe s ON s.strategy_id IS NOT DISTINCT FROM p.strategy_id
JOIN warehouse.dim_strategy cur ON cur.is_current AND cur.strategy_id IS NOT DISTINCT FROM p.strategy_id;
CREATE UNIQUE INDEX mv_top_performing_strategies_key_idx ON warehouse.mv_top_performing_strategies (strategy_key);
