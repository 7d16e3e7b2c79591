/**
 * Small hand-made OLTP fixtures for trade-ETL tests: reference members and executions with
 * sensible defaults, plus a natural-key snapshot of what the ETL wrote (surrogate keys and
 * load timestamps left out, so two loads of the same source compare equal).
 */
import type { Sql } from '../../src/db.ts';

export interface ExecutionRow {
  execution_id: number;
  order_id?: number | null;
  account_id?: number | null;
  instrument_id?: number | null;
  executed_at?: string | null;
  ingested_at?: string | null;
  side?: string | null;
  quantity?: string | null;
  price?: string | null;
  commission?: string | null;
  fees?: string | null;
  liquidity_flag?: string | null;
  venue?: string | null;
  reported_at?: string | null;
}

export async function seedReference(sql: Sql): Promise<void> {
  await sql`
    insert into oltp.accounts (account_id, account_number, account_name, account_type, broker, currency, risk_tier, updated_at) values
      (1, 'ACC-001', 'Alpha', 'margin', 'IBKR', 'USD', 'low', '2020-01-01T00:00:00Z'),
      (2, 'ACC-002', 'Beta', 'cash', 'IBKR', 'USD', 'medium', '2020-01-01T00:00:00Z')`;
  await sql`
    insert into oltp.instruments (instrument_id, symbol, exchange, instrument_type, full_name, sector, industry, currency, tick_size, lot_size, is_active, updated_at) values
      (1, 'AAPL', 'NASDAQ', 'stock', 'Apple Inc.', 'Information Technology', 'Hardware', 'USD', 0.01, 1, true, '2020-01-01T00:00:00Z'),
      (2, 'XOM', 'NYSE', 'stock', 'Exxon Mobil', 'Energy', 'Oil & Gas', 'USD', 0.01, 1, true, '2020-01-01T00:00:00Z'),
      (3, 'SPY', 'ARCA', 'etf', 'SPDR S&P 500', null, null, 'USD', 0.01, 1, true, '2020-01-01T00:00:00Z')`;
  await sql`
    insert into oltp.strategies (strategy_id, strategy_name, strategy_type, risk_tier, version, is_active, updated_at) values
      (1, 'momentum', 'trend', 'medium', 1, true, '2020-01-01T00:00:00Z'),
      (2, 'mean-reversion', 'reversion', 'low', 1, true, '2020-01-01T00:00:00Z')`;
  await sql`
    insert into oltp.orders (order_id, account_id, instrument_id, strategy_id, side, quantity, limit_price, created_at) values
      (100, 1, 1, 1, 'BUY', 1000, null, '2026-01-01T00:00:00Z'),
      (200, 1, 1, 2, 'SELL', 1000, null, '2026-01-01T00:00:00Z'),
      (300, 2, 2, 1, 'BUY', 1000, null, '2026-01-01T00:00:00Z'),
      (400, 1, 1, 99, 'BUY', 1000, null, '2026-01-01T00:00:00Z')`;
}

/** Inserts executions; an omitted field gets a valid default (ingested a second after execution). */
export async function insertExecutions(sql: Sql, rows: readonly ExecutionRow[]): Promise<void> {
  const full = rows.map((r) => {
    const executedAt = r.executed_at === undefined ? '2026-03-02T15:00:00Z' : r.executed_at;
    const ingestedAt =
      r.ingested_at !== undefined ? r.ingested_at : executedAt === null ? '2026-03-02T15:00:01Z' : new Date(Date.parse(executedAt) + 1000).toISOString();
    return {
      execution_id: r.execution_id,
      order_id: r.order_id === undefined ? 100 : r.order_id,
      account_id: r.account_id === undefined ? 1 : r.account_id,
      instrument_id: r.instrument_id === undefined ? 1 : r.instrument_id,
      executed_at: executedAt,
      ingested_at: ingestedAt,
      side: r.side === undefined ? 'BUY' : r.side,
      quantity: r.quantity === undefined ? '100' : r.quantity,
      price: r.price === undefined ? '10' : r.price,
      commission: r.commission === undefined ? '1' : r.commission,
      fees: r.fees === undefined ? '0.1' : r.fees,
      liquidity_flag: r.liquidity_flag ?? 'REMOVE',
      venue: r.venue ?? 'NASDAQ',
      reported_at: r.reported_at === undefined ? (executedAt === null ? null : new Date(Date.parse(executedAt) + 25).toISOString()) : r.reported_at,
    };
  });
  await sql`
    insert into oltp.executions ${sql(full)}
    on conflict (execution_id) do update set order_id = excluded.order_id, account_id = excluded.account_id,
      instrument_id = excluded.instrument_id, executed_at = excluded.executed_at, ingested_at = excluded.ingested_at,
      side = excluded.side, quantity = excluded.quantity, price = excluded.price, commission = excluded.commission,
      fees = excluded.fees, liquidity_flag = excluded.liquidity_flag, venue = excluded.venue, reported_at = excluded.reported_at`;
}

export interface FactRow {
  execution_id: string;
  trade_date: string;
  symbol: string;
  account_number: string;
  strategy_name: string;
  side: string;
  quantity: string;
  price: string;
  realized_pnl: string;
  position_after: string;
}

export async function loadFacts(sql: Sql): Promise<FactRow[]> {
  return sql<FactRow[]>`
    select f.execution_id::text, f.trade_date::text, i.symbol, a.account_number, s.strategy_name, f.side,
           f.quantity::text, f.price::text, f.realized_pnl::text, f.position_after::text
    from warehouse.fact_trades f
    join warehouse.dim_instrument i using (instrument_key)
    join warehouse.dim_account a using (account_key)
    join warehouse.dim_strategy s using (strategy_key)
    order by f.execution_id`;
}

/** Everything the ETL writes, by natural keys, for "same result" comparisons. */
export async function snapshotWarehouse(sql: Sql): Promise<Record<string, unknown>> {
  const facts = await sql`
    select f.trade_date::text, f.execution_id::text, f.date_key, f.time_key, a.account_id::text, a.effective_from::text as account_version,
           i.instrument_id::text, i.effective_from::text as instrument_version, s.strategy_id::text, s.effective_from::text as strategy_version,
           f.order_id::text, f.executed_at::text, f.side, f.quantity::text, f.price::text, f.notional_value::text,
           f.commission::text, f.fees::text, f.realized_pnl::text, f.position_after::text, f.liquidity_flag, f.venue, f.latency_ms
    from warehouse.fact_trades f
    join warehouse.dim_account a using (account_key)
    join warehouse.dim_instrument i using (instrument_key)
    join warehouse.dim_strategy s using (strategy_key)
    order by f.execution_id`;
  const keys = await sql`select execution_id::text, trade_date::text, row_hash from warehouse.fact_trade_keys order by execution_id`;
  const positions = await sql`select account_id::text, instrument_id::text, position, quantity::text from warehouse.fifo_positions order by 1, 2`;
  const rejects = await sql`select source_key, reason, detail, raw, resolved_at is not null as resolved from ops.etl_rejects order by source_key, raw_hash`;
  const requests = await sql`select trade_date::text, account_id::text from ops.rollup_requests order by 1, 2`;
  const dimensions = await sql`
    select 'account' as dim, account_id::text as id, effective_from::text, effective_to::text, is_current from warehouse.dim_account
    union all select 'instrument', instrument_id::text, effective_from::text, effective_to::text, is_current from warehouse.dim_instrument
    union all select 'strategy', strategy_id::text, effective_from::text, effective_to::text, is_current from warehouse.dim_strategy
    order by 1, 2, 3`;
  const watermark = await sql`select source, last_ingested_at::text, last_execution_id::text from ops.etl_watermarks`;
  return { facts, keys, positions, rejects, requests, dimensions, watermark };
}
