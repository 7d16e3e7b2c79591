-- Facts loaded under the 'unassigned' strategy (key 0) although they name an order: its order or
-- strategy was not known yet. Every trade-ETL run looks their orders up again, to move them to
-- their strategy once it is known (src/queries/trades.ts loadUnassignedOrders); rare rows, so
-- a small index.
CREATE INDEX fact_trades_unassigned_order_idx ON warehouse.fact_trades (order_id)
  WHERE strategy_key = 0 AND order_id IS NOT NULL;
