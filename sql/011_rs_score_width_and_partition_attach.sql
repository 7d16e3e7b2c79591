-- Two fixes to earlier migrations' objects (files are append-only, so they change here).
--
-- 1. market.sector_mapping.rs_score was numeric(10,4) (the pattern-performance seed's column):
--    an extreme but real return (a stock at 0.001 for a year, then 50) gives an RS score above
--    999999.9999, and publishing it failed the whole refresh-rs run with "numeric field
--    overflow". Unbounded numeric holds any score; refresh-rs still rounds it to 4 decimals.
--    Dropping the typmod is binary-compatible: no table rewrite.
ALTER TABLE market.sector_mapping ALTER COLUMN rs_score TYPE numeric;

-- 2. A month's fact_trades partition is created as a standalone table and then attached.
--    CREATE TABLE … PARTITION OF takes ACCESS EXCLUSIVE on warehouse.fact_trades, so
--    maintain-partitions, holding the partition advisory lock, waited for the trade ETL's batch
--    (which reads fact_trades), while that batch waited for the advisory lock to create a month
--    it met: a deadlock (40P01). ATTACH PARTITION takes only SHARE UPDATE EXCLUSIVE on the
--    parent, which readers and writers of fact_trades (ACCESS SHARE, ROW EXCLUSIVE) do not
--    block. The bounds' CHECK constraint lets ATTACH skip scanning the new table; the parent's
--    indexes (primary key included) are built on it by ATTACH.
CREATE OR REPLACE FUNCTION warehouse.ensure_fact_trades_partition(p_day date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
  first_day date := date_trunc('month', p_day)::date;
  next_day date := (date_trunc('month', p_day) + interval '1 month')::date;
  part text := 'fact_trades_' || to_char(first_day, 'YYYY_MM');
BEGIN
  IF to_regclass('warehouse.' || part) IS NOT NULL THEN
    RETURN false;
  END IF;
  PERFORM pg_advisory_xact_lock(hashtext('bullpen.fact_trades.partitions'));
  IF to_regclass('warehouse.' || part) IS NOT NULL THEN
    RETURN false;
  END IF;
  EXECUTE format('CREATE TABLE warehouse.%I (LIKE warehouse.fact_trades INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
  EXECUTE format('ALTER TABLE warehouse.%I ADD CONSTRAINT %I CHECK (trade_date IS NOT NULL AND trade_date >= %L AND trade_date < %L)',
                 part, part || '_bounds', first_day, next_day);
  EXECUTE format('ALTER TABLE warehouse.fact_trades ATTACH PARTITION warehouse.%I FOR VALUES FROM (%L) TO (%L)',
                 part, first_day, next_day);
  EXECUTE format('ALTER TABLE warehouse.%I DROP CONSTRAINT %I', part, part || '_bounds');
  RETURN true;
END
$$;
