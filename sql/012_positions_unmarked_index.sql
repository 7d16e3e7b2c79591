-- Positions not yet marked to market: a day's 1d bar arrives after that day was rolled up
-- (enrichment-daily stores day D's bar on D+1), so every build-rollups run marks the rows of
-- its last days whose close is still NULL once their bar exists. Partial and by date, so that
-- statement reads only those rows and never the table.
CREATE INDEX fact_positions_daily_unmarked_idx ON warehouse.fact_positions_daily (trade_date)
  WHERE close_price IS NULL;
