-- The as-of date of the rollups and of both materialized views is the last date of any equity
-- curve: max(date) over the whole table. With this index it is one index probe instead of a
-- scan of every account's history, twice per refresh and once per build-rollups run.
CREATE INDEX equity_curve_date_idx ON warehouse.equity_curve (date);
