/**
 * build-rollups on hand-worked days (src/rollups.ts): daily performance, the equity curve
 * with a day without trades, metrics, positions marked to 1d bars, months, the views;
 * incremental equals full; overlapping rebuilds at once; and the job (debounced requests
 * from the trade ETL, bad payloads, the counter).
 *
 * The fixture (New York trading dates, capital 100,000 for account 1 and 50,000 for 2):
 *   Mon 03-02  acct 1 AAPL BUY 100 @ 10, BUY 50 @ 12 (momentum)        opening only
 *   Tue 03-03  acct 1 AAPL SELL 120 @ 11 (mean-reversion)              100×(11−10) + 20×(11−12) = +80
 *              acct 1 AAPL SELL 10 @ 11.5 (momentum)                   10×(11.5−12) = −5; 20 @ 12 left
 *   Wed 03-04  acct 2 XOM BUY 10 @ 50 (momentum)                       opening only; held to the end
 *   Thu 03-05  acct 1 AAPL SELL 20 @ 12 (order of an unknown strategy)  20×(12−12) = 0: flat, neither
 *   Fri 03-06, Mon 03-09: no fills. Every fill pays commission 1 and fees 0.1.
 */
import { QueueEvents } from 'bullmq';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildRollups } from '../../jobs/build-rollups.ts';
import { tradeEtl } from '../../jobs/trade-etl.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { rebuildRollups, type RollupScope } from '../../src/rollups.ts';
import { loadTrades } from '../../src/trade-loader.ts';
import { tradingDaysBetween } from '../../src/analytics/calendar.ts';
import { startWorkers } from '../../src/worker.ts';
import { createDb, type Sql } from '../../src/db.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { insertExecutions, seedReference } from '../helpers/oltp.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const TZ = 'America/New_York';
const at = (date: string, time = '15:00:00') => `${date}T${time}Z`;

async function seedFixture(sql: Sql): Promise<void> {
  await seedReference(sql);
  await insertExecutions(sql, [
    { execution_id: 1, executed_at: at('2026-03-02'), side: 'BUY', quantity: '100', price: '10' },
    { execution_id: 2, executed_at: at('2026-03-02', '16:00:00'), side: 'BUY', quantity: '50', price: '12' },
    { execution_id: 3, order_id: 200, executed_at: at('2026-03-03'), side: 'SELL', quantity: '120', price: '11' },
    { execution_id: 4, executed_at: at('2026-03-03', '16:00:00'), side: 'SELL', quantity: '10', price: '11.5' },
    { execution_id: 5, order_id: 300, account_id: 2, instrument_id: 2, executed_at: at('2026-03-04'), side: 'BUY', quantity: '10', price: '50' },
    { execution_id: 6, order_id: 400, executed_at: at('2026-03-05'), side: 'SELL', quantity: '20', price: '12' },
  ]);
  await sql`insert into warehouse.account_capital (account_id, starting_capital) values (2, 50000)`;
  await sql`insert into market.bars values ('XOM', '1d', '2026-03-05 00:00:00-05', 54, 56, 53, 55, 1000000, 'test')`;
}

function load(sql: Sql) {
  return loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'test' });
}

function rebuild(sql: Sql, scope: RollupScope, asOf?: string) {
  return rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope, ...(asOf ? { asOf } : {}) });
}

/** Every rollup row by natural keys, for "same result" comparisons. */
async function snapshotRollups(sql: Sql): Promise<Record<string, unknown>> {
  const tables = {
    daily: 'select * from warehouse.fact_performance_daily order by date_key, account_key, strategy_key',
    buckets: 'select * from warehouse.fact_performance_buckets order by 1, 2, 3, 4',
    instruments: 'select * from warehouse.fact_instrument_daily order by 1, 2',
    monthly: 'select * from warehouse.agg_performance_monthly order by 1, 2, 3',
    curve: 'select * from warehouse.equity_curve order by account_id, date',
    metrics: 'select * from warehouse.performance_metrics order by account_id, window_name, as_of_date',
    positions: 'select * from warehouse.fact_positions_daily order by account_id, trade_date, instrument_id',
    topStrategies: 'select * from warehouse.mv_top_performing_strategies order by strategy_key',
    instrumentStats: 'select * from warehouse.mv_instrument_statistics order by instrument_id',
  };
  const out: Record<string, unknown> = {};
  for (const [name, query] of Object.entries(tables)) out[name] = await sql.unsafe(query);
  return out;
}

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase();
  await seedFixture(db.sql);
  await load(db.sql);
  await rebuild(db.sql, { kind: 'range', from: '2026-03-02', to: '2026-03-09' }, '2026-03-09');
});

afterAll(async () => {
  await db?.drop();
});

describe('fact_performance_daily', () => {
  it('holds the hand-worked days: wins, losses, a flat close and opening-only fills', async () => {
    const rows = await db.sql`
      select f.trade_date::text, f.account_id::text, s.strategy_name, f.total_trades, f.winning_trades, f.losing_trades,
             f.total_volume::text, f.total_notional::text, f.gross_profit::text, f.gross_loss::text, f.realized_pnl::text,
             f.commissions::text, f.fees::text, f.net_pnl::text, f.win_rate::float8, f.profit_factor::float8,
             f.avg_win::text, f.avg_loss::text, f.largest_win::text, f.largest_loss::text
      from warehouse.fact_performance_daily f join warehouse.dim_strategy s using (strategy_key)
      order by f.trade_date, f.account_id, s.strategy_name`;
    const n = (v: string | null) => (v === null ? null : Number(v));
    expect(rows.map((r) => ({ ...r, total_volume: n(r.total_volume), total_notional: n(r.total_notional), gross_profit: n(r.gross_profit), gross_loss: n(r.gross_loss), realized_pnl: n(r.realized_pnl), commissions: n(r.commissions), fees: n(r.fees), net_pnl: n(r.net_pnl), avg_win: n(r.avg_win), avg_loss: n(r.avg_loss), largest_win: n(r.largest_win), largest_loss: n(r.largest_loss) }))).toEqual([
      // Opening fills only: they count as trades, nothing else; ratios and averages NULL.
      { trade_date: '2026-03-02', account_id: '1', strategy_name: 'momentum', total_trades: 2, winning_trades: 0, losing_trades: 0, total_volume: 150, total_notional: 1600, gross_profit: 0, gross_loss: 0, realized_pnl: 0, commissions: 2, fees: 0.2, net_pnl: -2.2, win_rate: null, profit_factor: null, avg_win: null, avg_loss: null, largest_win: null, largest_loss: null },
      // A win: profit factor NULL without losses.
      { trade_date: '2026-03-03', account_id: '1', strategy_name: 'mean-reversion', total_trades: 1, winning_trades: 1, losing_trades: 0, total_volume: 120, total_notional: 1320, gross_profit: 80, gross_loss: 0, realized_pnl: 80, commissions: 1, fees: 0.1, net_pnl: 78.9, win_rate: 1, profit_factor: null, avg_win: 80, avg_loss: null, largest_win: 80, largest_loss: null },
      // A loss: gross_loss is a positive magnitude, avg and largest loss negative.
      { trade_date: '2026-03-03', account_id: '1', strategy_name: 'momentum', total_trades: 1, winning_trades: 0, losing_trades: 1, total_volume: 10, total_notional: 115, gross_profit: 0, gross_loss: 5, realized_pnl: -5, commissions: 1, fees: 0.1, net_pnl: -6.1, win_rate: 0, profit_factor: 0, avg_win: null, avg_loss: -5, largest_win: null, largest_loss: -5 },
      { trade_date: '2026-03-04', account_id: '2', strategy_name: 'momentum', total_trades: 1, winning_trades: 0, losing_trades: 0, total_volume: 10, total_notional: 500, gross_profit: 0, gross_loss: 0, realized_pnl: 0, commissions: 1, fees: 0.1, net_pnl: -1.1, win_rate: null, profit_factor: null, avg_win: null, avg_loss: null, largest_win: null, largest_loss: null },
      // A flat close (realized exactly 0) is neither winner nor loser.
      { trade_date: '2026-03-05', account_id: '1', strategy_name: 'unassigned', total_trades: 1, winning_trades: 0, losing_trades: 0, total_volume: 20, total_notional: 240, gross_profit: 0, gross_loss: 0, realized_pnl: 0, commissions: 1, fees: 0.1, net_pnl: -1.1, win_rate: null, profit_factor: null, avg_win: null, avg_loss: null, largest_win: null, largest_loss: null },
    ]);
  });

  it('buckets fills by hour and session in New York time', async () => {
    // 15:00Z is 10:00 EST before 2026-03-08 and 11:00 EDT after; 16:00Z is 11:00 / 12:00.
    const rows = await db.sql`
      select trade_date::text, account_id::int, hour_of_day, market_session, total_trades
      from warehouse.fact_performance_buckets order by 1, 2, 3`;
    expect(rows).toEqual([
      { trade_date: '2026-03-02', account_id: 1, hour_of_day: 10, market_session: 'regular', total_trades: 1 },
      { trade_date: '2026-03-02', account_id: 1, hour_of_day: 11, market_session: 'regular', total_trades: 1 },
      { trade_date: '2026-03-03', account_id: 1, hour_of_day: 10, market_session: 'regular', total_trades: 1 },
      { trade_date: '2026-03-03', account_id: 1, hour_of_day: 11, market_session: 'regular', total_trades: 1 },
      { trade_date: '2026-03-04', account_id: 2, hour_of_day: 10, market_session: 'regular', total_trades: 1 },
      { trade_date: '2026-03-05', account_id: 1, hour_of_day: 10, market_session: 'regular', total_trades: 1 },
    ]);
    const [dow] = await db.sql`select total_trades from warehouse.v_performance_by_day_of_week where account_id = 1 and day_of_week = 2`;
    expect(dow?.total_trades).toBe(2); // Tuesday
  });
});

describe('equity_curve', () => {
  it('has every trading day from the first fill through the as-of date, days without fills carried forward', async () => {
    const rows = await db.sql`
      select date::text, net_pnl::float8, equity::float8, peak_equity::float8, drawdown::float8, drawdown_pct, daily_return
      from warehouse.equity_curve where account_id = 1 order by date`;
    const capital = 100000;
    const e1 = capital - 2.2;
    const e2 = e1 + 72.8;
    const e4 = e2 - 1.1;
    expect(rows).toEqual([
      { date: '2026-03-02', net_pnl: -2.2, equity: e1, peak_equity: capital, drawdown: -2.2, drawdown_pct: expect.closeTo(-2.2 / capital, 15), daily_return: expect.closeTo(-2.2 / capital, 15) },
      { date: '2026-03-03', net_pnl: 72.8, equity: e2, peak_equity: e2, drawdown: 0, drawdown_pct: 0, daily_return: expect.closeTo(72.8 / e1, 15) },
      { date: '2026-03-04', net_pnl: 0, equity: e2, peak_equity: e2, drawdown: 0, drawdown_pct: 0, daily_return: 0 },
      { date: '2026-03-05', net_pnl: -1.1, equity: e4, peak_equity: e2, drawdown: expect.closeTo(-1.1, 9), drawdown_pct: expect.closeTo(-1.1 / e2, 15), daily_return: expect.closeTo(-1.1 / e2, 15) },
      { date: '2026-03-06', net_pnl: 0, equity: e4, peak_equity: e2, drawdown: expect.closeTo(-1.1, 9), drawdown_pct: expect.closeTo(-1.1 / e2, 15), daily_return: 0 },
      { date: '2026-03-09', net_pnl: 0, equity: e4, peak_equity: e2, drawdown: expect.closeTo(-1.1, 9), drawdown_pct: expect.closeTo(-1.1 / e2, 15), daily_return: 0 },
    ]);
  });

  it('starts account 2 at its own capital on its first fill date', async () => {
    const rows = await db.sql`select date::text, equity::text from warehouse.equity_curve where account_id = 2 order by date`;
    expect(rows.map((r) => r.date)).toEqual(['2026-03-04', '2026-03-05', '2026-03-06', '2026-03-09']);
    expect(rows[0]?.equity).toBe('49998.9');
  });
});

describe('performance_metrics', () => {
  it('has four windows for every curve date, computed from the curve as DESIGN.md defines them', async () => {
    const [count] = await db.sql`
      select count(*)::int as n, count(distinct (account_id, as_of_date))::int as dates from warehouse.performance_metrics`;
    expect(count).toEqual({ n: 40, dates: 10 });
    const [m] = await db.sql`
      select days, window_start::text, sharpe, sortino, calmar, annual_return, max_drawdown, profit_factor, recovery_factor,
             win_rate, expectancy, longest_losing_streak, var_95, var_99
      from warehouse.performance_metrics where account_id = 1 and window_name = 'all' and as_of_date = '2026-03-09'`;
    // Returns of the six rows, and the formulas written out independently of src/analytics.
    const e1 = 100000 - 2.2;
    const e2 = e1 + 72.8;
    const r = [-2.2 / 100000, 72.8 / e1, 0, -1.1 / e2, 0, 0];
    const mean = r.reduce((a, b) => a + b, 0) / r.length;
    const std = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (r.length - 1));
    const downside = Math.sqrt(r.reduce((a, b) => a + Math.min(b, 0) ** 2, 0) / r.length);
    const growth = r.reduce((a, b) => a * (1 + b), 1);
    const annual = growth ** (252 / r.length) - 1;
    const maxDrawdown = -2.2 / 100000; // day one, below the opening equity (the peak includes it); deeper than 03-05's −1.1 / e2
    const sorted = [...r].sort((a, b) => a - b);
    const percentile = (p: number) => {
      const pos = (sorted.length - 1) * p;
      const lo = Math.floor(pos);
      return (sorted[lo] as number) + ((sorted[lo + 1] as number) - (sorted[lo] as number)) * (pos - lo);
    };
    expect(m?.days).toBe(6);
    expect(m?.window_start).toBe('2026-03-02');
    expect(m?.sharpe).toBeCloseTo((mean / std) * Math.sqrt(252), 9);
    expect(m?.sortino).toBeCloseTo((mean * 252) / (downside * Math.sqrt(252)), 9);
    expect(m?.annual_return).toBeCloseTo(annual, 9);
    expect(m?.max_drawdown).toBeCloseTo(maxDrawdown, 12);
    expect(m?.calmar).toBeCloseTo(annual / Math.abs(maxDrawdown), 6);
    expect(m?.profit_factor).toBe(16); // 80 / 5
    expect(m?.recovery_factor).toBeCloseTo((-2.2 + 72.8 - 1.1) / 2.2, 9); // largest cash drawdown: 2.2 on day one
    expect(m?.win_rate).toBe(0.5);
    expect(m?.expectancy).toBe(37.5); // (80 − 5 + 0) / 2
    expect(m?.longest_losing_streak).toBe(1);
    expect(m?.var_95).toBeCloseTo(percentile(0.05), 12);
    expect(m?.var_99).toBeCloseTo(percentile(0.01), 12);
  });

  it('gives NULL, never NaN or Infinity, where a metric is undefined (one day, no losses, no variance)', async () => {
    const [first] = await db.sql`
      select sharpe, sortino, profit_factor, win_rate, expectancy, max_drawdown, days
      from warehouse.performance_metrics where account_id = 2 and window_name = '30d' and as_of_date = '2026-03-04'`;
    expect(first).toEqual({ sharpe: null, sortino: null, profit_factor: null, win_rate: null, expectancy: null, max_drawdown: expect.any(Number), days: 1 });
    const [bad] = await db.sql`
      select count(*)::int as n from warehouse.performance_metrics
      where 'NaN'::float8 in (sharpe, sortino, calmar, annual_return, max_drawdown, profit_factor, recovery_factor, win_rate, expectancy, var_95, var_99)
         or abs(coalesce(sharpe, 0)) = 'Infinity' or abs(coalesce(sortino, 0)) = 'Infinity' or abs(coalesce(calmar, 0)) = 'Infinity'`;
    expect(bad?.n).toBe(0);
  });

  it('gives per-strategy trade statistics over the same windows', async () => {
    const rows = await db.sql`
      select strategy_name, total_trades, winning_trades, losing_trades, win_rate::float8, profit_factor::float8, expectancy::float8,
             avg_win::float8, avg_loss::float8
      from warehouse.strategy_performance_windows
      where account_id = 1 and window_name = '90d' and as_of_date = '2026-03-09' order by strategy_name`;
    expect(rows).toEqual([
      { strategy_name: 'mean-reversion', total_trades: 1, winning_trades: 1, losing_trades: 0, win_rate: 1, profit_factor: null, expectancy: 80, avg_win: 80, avg_loss: null },
      { strategy_name: 'momentum', total_trades: 3, winning_trades: 0, losing_trades: 1, win_rate: 0, profit_factor: 0, expectancy: -5, avg_win: null, avg_loss: -5 },
      { strategy_name: 'unassigned', total_trades: 1, winning_trades: 0, losing_trades: 0, win_rate: null, profit_factor: null, expectancy: null, avg_win: null, avg_loss: null },
    ]);
  });
});

describe('fact_positions_daily', () => {
  it('holds end-of-day FIFO quantity and average cost, marked at the 1d close where a bar exists', async () => {
    const rows = await db.sql`
      select account_id::int, instrument_id::int, trade_date::text, quantity::float8, side, cost_basis::float8, avg_entry_price::float8,
             close_price::float8, market_value::float8, unrealized_pnl::float8
      from warehouse.fact_positions_daily order by account_id, trade_date`;
    const aapl = { account_id: 1, instrument_id: 1, side: 'LONG', close_price: null, market_value: null, unrealized_pnl: null };
    const xom = { account_id: 2, instrument_id: 2, quantity: 10, side: 'LONG', cost_basis: 500, avg_entry_price: 50 };
    expect(rows).toEqual([
      // 100 @ 10 + 50 @ 12 → 150, cost 1,600, average 10.666…; after 130 sold FIFO, 20 @ 12 left; flat on 03-05.
      { ...aapl, trade_date: '2026-03-02', quantity: 150, cost_basis: 1600, avg_entry_price: expect.closeTo(1600 / 150, 12) },
      { ...aapl, trade_date: '2026-03-03', quantity: 20, cost_basis: 240, avg_entry_price: 12 },
      { ...aapl, trade_date: '2026-03-04', quantity: 20, cost_basis: 240, avg_entry_price: 12 },
      // No bar: NULL market fields, not zero. The 03-05 bar closes at 55.
      { ...xom, trade_date: '2026-03-04', close_price: null, market_value: null, unrealized_pnl: null },
      { ...xom, trade_date: '2026-03-05', close_price: 55, market_value: 550, unrealized_pnl: 50 },
      { ...xom, trade_date: '2026-03-06', close_price: null, market_value: null, unrealized_pnl: null },
      { ...xom, trade_date: '2026-03-09', close_price: null, market_value: null, unrealized_pnl: null },
    ]);
  });
});

describe('agg_performance_monthly and the materialized views', () => {
  it('sums the month per strategy with best and worst day', async () => {
    const rows = await db.sql`
      select account_id::int, s.strategy_name, trading_days, total_trades, net_pnl::float8, best_day_pnl::float8, worst_day_pnl::float8,
             max_drawdown::float8
      from warehouse.agg_performance_monthly m join warehouse.dim_strategy s using (strategy_key)
      where month_key = 202603 order by account_id, s.strategy_name`;
    expect(rows).toEqual([
      { account_id: 1, strategy_name: 'mean-reversion', trading_days: 1, total_trades: 1, net_pnl: 78.9, best_day_pnl: 78.9, worst_day_pnl: 78.9, max_drawdown: 0 },
      // −2.2 then −6.1: cumulative −8.3 below its starting 0.
      { account_id: 1, strategy_name: 'momentum', trading_days: 2, total_trades: 3, net_pnl: -8.3, best_day_pnl: -2.2, worst_day_pnl: -6.1, max_drawdown: -8.3 },
      { account_id: 1, strategy_name: 'unassigned', trading_days: 1, total_trades: 1, net_pnl: -1.1, best_day_pnl: -1.1, worst_day_pnl: -1.1, max_drawdown: -1.1 },
      { account_id: 2, strategy_name: 'momentum', trading_days: 1, total_trades: 1, net_pnl: -1.1, best_day_pnl: -1.1, worst_day_pnl: -1.1, max_drawdown: -1.1 },
    ]);
  });

  it('refreshes the seed views over the days up to the as-of date', async () => {
    const strategies = await db.sql`select strategy_name, pnl_rank, total_pnl::float8, total_trades from warehouse.mv_top_performing_strategies order by pnl_rank`;
    expect(strategies).toEqual([
      { strategy_name: 'mean-reversion', pnl_rank: 1, total_pnl: 78.9, total_trades: 1 },
      { strategy_name: 'unassigned', pnl_rank: 2, total_pnl: -1.1, total_trades: 1 },
      { strategy_name: 'momentum', pnl_rank: 3, total_pnl: -9.4, total_trades: 4 },
    ]);
    // The seed's own columns. Sharpe over the 20 sessions 02-09..03-09 of daily net PnL, 0 where none.
    const sharpe = (pnl: Record<string, number>) => {
      const days = [...Object.values(pnl), ...Array(20 - Object.keys(pnl).length).fill(0)] as number[];
      const mean = days.reduce((a, b) => a + b) / days.length;
      const sd = Math.sqrt(days.reduce((a, b) => a + (b - mean) ** 2, 0) / (days.length - 1));
      return (mean / sd) * Math.sqrt(252);
    };
    const seedColumns = await db.sql`
      select strategy_name, avg_win_rate::float8, avg_sharpe_ratio, avg_profit_factor::float8, last_updated::text
      from warehouse.mv_top_performing_strategies order by pnl_rank`;
    expect(seedColumns).toEqual([
      { strategy_name: 'mean-reversion', avg_win_rate: 1, avg_sharpe_ratio: expect.closeTo(sharpe({ '03-03': 78.9 }), 9), avg_profit_factor: null, last_updated: '2026-03-03' },
      { strategy_name: 'unassigned', avg_win_rate: null, avg_sharpe_ratio: expect.closeTo(sharpe({ '03-05': -1.1 }), 9), avg_profit_factor: null, last_updated: '2026-03-05' },
      // Win rate and profit factor averaged over the days that have one (03-03: 0 of 1, and 0 / 5).
      { strategy_name: 'momentum', avg_win_rate: 0, avg_sharpe_ratio: expect.closeTo(sharpe({ '03-02': -2.2, '03-03': -6.1, '03-04': -1.1 }), 9), avg_profit_factor: 0, last_updated: '2026-03-04' },
    ]);
    const [aapl] = await db.sql`
      select trading_days, trade_count::int, total_volume::float8, min_price::float8, max_price::float8, avg_price::float8, price_volatility::float8
      from warehouse.mv_instrument_statistics where symbol = 'AAPL'`;
    const prices = [10, 12, 11, 11.5, 12];
    const mean = prices.reduce((a, b) => a + b) / prices.length;
    const sd = Math.sqrt(prices.reduce((a, b) => a + (b - mean) ** 2, 0) / (prices.length - 1));
    expect(aapl).toEqual({ trading_days: 3, trade_count: 5, total_volume: 300, min_price: 10, max_price: 12, avg_price: mean, price_volatility: expect.closeTo(sd, 12) });
  });
});

describe('incremental rebuilds', () => {
  let other: TestDatabase;
  afterEach(async () => {
    await other?.drop();
  });

  /** A database of its own with the fixture loaded and fully rebuilt through Monday 03-09. */
  async function builtFixture(): Promise<TestDatabase> {
    const built = await createTestDatabase();
    await seedFixture(built.sql);
    await load(built.sql);
    await rebuild(built.sql, { kind: 'full' }, '2026-03-09');
    return built;
  }

  it('rebuilding the partitions a late fill touched equals a full rebuild', async () => {
    other = await builtFixture();
    // A late fill on Tuesday restates Tuesday's and Thursday's PnL (FIFO) for account 1.
    await insertExecutions(other.sql, [
      { execution_id: 7, executed_at: at('2026-03-03', '14:45:00'), ingested_at: '2026-03-10T12:00:00Z', side: 'BUY', quantity: '30', price: '9' },
    ]);
    await load(other.sql);
    const requests = await other.sql`select trade_date::text from ops.rollup_requests order by 1`;
    expect(requests.map((r) => r.trade_date)).toEqual(['2026-03-03', '2026-03-05']);
    const incremental = await rebuild(other.sql, { kind: 'pending' });
    expect(incremental).toMatchObject({ partitions: 2, from: '2026-03-03', to: '2026-03-05', asOf: '2026-03-09', accounts: 1 });
    const afterIncremental = await snapshotRollups(other.sql);
    await rebuild(other.sql, { kind: 'full' });
    expect(await snapshotRollups(other.sql)).toEqual(afterIncremental);
    expect(await other.sql`select * from ops.rollup_requests`).toHaveLength(0);
  });

  it("rebuilding one account's partition keeps the other accounts' fills in that day's instrument rows", async () => {
    other = await createTestDatabase();
    await seedFixture(other.sql);
    await insertExecutions(other.sql, [
      { execution_id: 8, order_id: 500, account_id: 2, instrument_id: 2, executed_at: at('2026-03-05', '17:00:00'), side: 'SELL', quantity: '5', price: '55' },
    ]);
    await load(other.sql);
    await rebuild(other.sql, { kind: 'full' }, '2026-03-09');
    // A late XOM fill of account 1 on Thursday: only (03-05, account 1) is requested.
    await insertExecutions(other.sql, [
      { execution_id: 9, order_id: 600, instrument_id: 2, executed_at: at('2026-03-05', '18:00:00'), ingested_at: '2026-03-10T12:00:00Z', side: 'BUY', quantity: '3', price: '54' },
    ]);
    await load(other.sql);
    const incremental = await rebuild(other.sql, { kind: 'pending' });
    expect(incremental).toMatchObject({ partitions: 1, from: '2026-03-05', to: '2026-03-05', accounts: 1 });
    const [xom] = await other.sql`
      select i.trade_count from warehouse.fact_instrument_daily i join warehouse.dim_instrument d using (instrument_key)
      where d.symbol = 'XOM' and i.trade_date = '2026-03-05'`;
    expect(xom).toEqual({ trade_count: 2 });
    const afterIncremental = await snapshotRollups(other.sql);
    await rebuild(other.sql, { kind: 'full' });
    expect(await snapshotRollups(other.sql)).toEqual(afterIncremental);
  });

  it('rebuilds exactly the (date, account) partitions it is given, not every pair of their dates and accounts', async () => {
    other = await createTestDatabase();
    await seedFixture(other.sql);
    // Account 2 also trades on Tuesday, so both accounts have daily rows on 03-03 and 03-04.
    await insertExecutions(other.sql, [
      { execution_id: 10, order_id: 700, account_id: 2, instrument_id: 2, executed_at: at('2026-03-03'), side: 'BUY', quantity: '1', price: '50' },
      { execution_id: 11, order_id: 701, executed_at: at('2026-03-04'), side: 'BUY', quantity: '1', price: '10' },
    ]);
    await load(other.sql);
    await rebuild(other.sql, { kind: 'full' }, '2026-03-09');
    // Marks on four partitions; only (03-03, 1) and (03-04, 2) are requested.
    await other.sql`update warehouse.fact_performance_daily set total_trades = total_trades + 1000 where trade_date in ('2026-03-03', '2026-03-04')`;
    await other.sql`delete from ops.rollup_requests`;
    await other.sql`
      insert into ops.rollup_requests (trade_date, account_id, requested_at, requested_by)
      values ('2026-03-03', 1, now(), 'test'), ('2026-03-04', 2, now(), 'test')`;
    const run = await rebuild(other.sql, { kind: 'pending' });
    expect(run).toMatchObject({ partitions: 2, from: '2026-03-03', to: '2026-03-04' });
    const marked = await other.sql`
      select trade_date::text, account_id::int, bool_or(total_trades >= 1000) as marked
      from warehouse.fact_performance_daily where trade_date in ('2026-03-03', '2026-03-04')
      group by 1, 2 order by 1, 2`;
    expect(marked).toEqual([
      { trade_date: '2026-03-03', account_id: 1, marked: false },
      { trade_date: '2026-03-03', account_id: 2, marked: true },
      { trade_date: '2026-03-04', account_id: 1, marked: true },
      { trade_date: '2026-03-04', account_id: 2, marked: false },
    ]);
  });

  it('restates a range of 20 trading days or more (staged, as a full rebuild) exactly as a full rebuild does, and no day outside it', async () => {
    other = await createTestDatabase();
    await seedReference(other.sql);
    // Account 1 trades AAPL and account 2 XOM on 25 trading days: a buy, then a sell at a price that moves.
    const days = tradingDaysBetween('2026-04-01', '2026-05-06');
    expect(days.length).toBeGreaterThanOrEqual(25);
    await insertExecutions(other.sql, days.flatMap((day, i) => [
      { execution_id: 1000 + 4 * i, executed_at: at(day, '14:00:00'), side: 'BUY', quantity: '10', price: String(10 + (i % 5)) },
      { execution_id: 1001 + 4 * i, executed_at: at(day, '18:00:00'), side: 'SELL', quantity: '10', price: String(11 + (i % 3)) },
      { execution_id: 1002 + 4 * i, order_id: 300, account_id: 2, instrument_id: 2, executed_at: at(day, '15:00:00'), side: 'BUY', quantity: '5', price: String(50 + (i % 7)) },
      { execution_id: 1003 + 4 * i, order_id: 300, account_id: 2, instrument_id: 2, executed_at: at(day, '19:00:00'), side: 'SELL', quantity: '5', price: String(49 + (i % 4)) },
    ]));
    await load(other.sql);
    await rebuild(other.sql, { kind: 'full' });
    const clean = await snapshotRollups(other.sql);
    const range: RollupScope = { kind: 'range', from: days[1]!, to: days.at(-1)! };
    const run = await rebuild(other.sql, range);
    expect(run).toMatchObject({ partitions: 2 * (days.length - 1), from: days[1], to: days.at(-1) });
    expect(await snapshotRollups(other.sql)).toEqual(clean);
    // Every daily row marked: the range's are restated, the first day's (outside it) keep the mark.
    await other.sql`update warehouse.fact_performance_daily set total_trades = total_trades + 1000`;
    await rebuild(other.sql, range);
    const marked = await other.sql<{ trade_date: string }[]>`
      select distinct trade_date::text from warehouse.fact_performance_daily where total_trades >= 1000`;
    expect(marked).toEqual([{ trade_date: days[0] }]);
  });

  it('gives the same rollups on a database whose default DateStyle is not ISO', async () => {
    other = await createTestDatabase();
    await other.sql.unsafe(`alter database "${other.name}" set datestyle = 'SQL, DMY'`);
    // Connections opened after the change would print dates as 02/03/2026 unless bullpen asks for ISO.
    const dmy = createDb(other.url, { max: 2 });
    try {
      await seedFixture(dmy);
      await load(dmy);
      await rebuild(dmy, { kind: 'full' }, '2026-03-09');
      expect(await snapshotRollups(dmy)).toEqual(await snapshotRollups(db.sql));
    } finally {
      await dmy.end();
    }
  });

  it("rebuilds an account's whole curve from its first fill when no row before the range is kept", async () => {
    other = await builtFixture();
    const clean = await snapshotRollups(other.sql);
    // Account 1's curve lost (as if cleared by hand); a range after its first fill rebuilds it whole.
    await other.sql`delete from warehouse.equity_curve where account_id = 1`;
    await other.sql`delete from warehouse.performance_metrics where account_id = 1`;
    const run = await rebuild(other.sql, { kind: 'range', from: '2026-03-05', to: '2026-03-05' });
    expect(run).toMatchObject({ partitions: 1, accounts: 1 });
    const [curve] = await other.sql`select min(date)::text as first, count(*)::int as n from warehouse.equity_curve where account_id = 1`;
    expect(curve).toEqual({ first: '2026-03-02', n: 6 });
    expect(await snapshotRollups(other.sql)).toEqual(clean);
  });

  it('marks earlier positions at a 1d close that arrived after their date was rolled up, as a full rebuild would', async () => {
    other = await builtFixture();
    // Friday's XOM bar is stored after Friday was rolled up (enrichment-daily runs on the next day).
    await other.sql`insert into market.bars values ('XOM', '1d', '2026-03-06 00:00:00-05', 55, 57, 54, 56, 1000000, 'test')`;
    // A later one-day incremental run (a fill on Tuesday 03-10) rebuilds positions only from 03-10 on.
    await insertExecutions(other.sql, [{ execution_id: 12, executed_at: at('2026-03-10'), side: 'BUY', quantity: '5', price: '12' }]);
    await load(other.sql);
    const run = await rebuild(other.sql, { kind: 'pending' });
    expect(run).toMatchObject({ partitions: 1, from: '2026-03-10', to: '2026-03-10' });
    const marked = async (date: string) => (await other.sql`
      select close_price::float8, market_value::float8, unrealized_pnl::float8 from warehouse.fact_positions_daily
      where account_id = 2 and trade_date = ${date}`)[0];
    expect(await marked('2026-03-06')).toEqual({ close_price: 56, market_value: 560, unrealized_pnl: 60 });
    // A run with nothing to rebuild marks too: Monday's bar arrives on Tuesday night.
    await other.sql`insert into market.bars values ('XOM', '1d', '2026-03-09 00:00:00-04', 56, 58, 55, 57, 1000000, 'test')`;
    expect(await rebuild(other.sql, { kind: 'pending' })).toMatchObject({ partitions: 0, accounts: 0 });
    expect(await marked('2026-03-09')).toEqual({ close_price: 57, market_value: 570, unrealized_pnl: 70 });
    const afterIncremental = await snapshotRollups(other.sql);
    await rebuild(other.sql, { kind: 'full' });
    expect(await snapshotRollups(other.sql)).toEqual(afterIncremental);
  });

  it("restates an account's curve and metrics under its new version when it changes with no fills after the change", async () => {
    other = await builtFixture();
    // Renamed on Friday 03-06; account 1's last fill was on Thursday, so no fact moves.
    await other.sql`update oltp.accounts set account_name = 'Alpha Prime', updated_at = '2026-03-06T17:00:00Z' where account_id = 1`;
    const summary = await load(other.sql);
    expect(summary.dimensions.find((d) => d.dimension === 'warehouse.dim_account')).toMatchObject({ changed: 1, repointed: 0 });
    await rebuild(other.sql, { kind: 'pending' });
    const keys = await other.sql`
      select e.date::text, d.account_name from warehouse.equity_curve e join warehouse.dim_account d using (account_key)
      where e.account_id = 1 and e.date >= '2026-03-05' order by e.date`;
    expect(keys).toEqual([
      { date: '2026-03-05', account_name: 'Alpha' },
      { date: '2026-03-06', account_name: 'Alpha Prime' },
      { date: '2026-03-09', account_name: 'Alpha Prime' },
    ]);
    const afterIncremental = await snapshotRollups(other.sql);
    await rebuild(other.sql, { kind: 'full' });
    expect(await snapshotRollups(other.sql)).toEqual(afterIncremental);
  });

  it('a run with nothing to rebuild still refreshes the views (they show the current dimension versions)', async () => {
    other = await builtFixture();
    await other.sql`update warehouse.dim_strategy set strategy_name = 'mean-reversion-v2' where strategy_name = 'mean-reversion' and is_current`;
    const idle = await rebuild(other.sql, { kind: 'pending' });
    expect(idle).toMatchObject({ partitions: 0, accounts: 0, asOf: '2026-03-09', rowsWritten: 0 });
    const names = await other.sql`select strategy_name from warehouse.mv_top_performing_strategies order by pnl_rank`;
    expect(names.map((r) => r.strategy_name)).toEqual(['mean-reversion-v2', 'unassigned', 'momentum']);
  });

  it('the first run on a loaded warehouse builds everything, whatever range it was asked for', async () => {
    other = await createTestDatabase();
    await seedFixture(other.sql);
    await load(other.sql);
    const first = await rebuild(other.sql, { kind: 'range', from: '2026-03-05', to: '2026-03-05' }, '2026-03-09');
    expect(first).toMatchObject({ scope: 'range', promotedToFull: true, asOf: '2026-03-09' });
    const [curve] = await other.sql`select min(date)::text as first, count(*)::int as n from warehouse.equity_curve where account_id = 1`;
    expect(curve).toEqual({ first: '2026-03-02', n: 6 });
    expect(await other.sql`select * from ops.rollup_requests`).toHaveLength(0);
  });

  it('overlapping rebuilds started at once leave the result of one clean rebuild', async () => {
    other = await builtFixture();
    const clean = await snapshotRollups(other.sql);
    await Promise.all([
      rebuild(other.sql, { kind: 'range', from: '2026-03-02', to: '2026-03-05' }),
      rebuild(other.sql, { kind: 'full' }),
      rebuild(other.sql, { kind: 'range', from: '2026-03-04', to: '2026-03-09' }),
      rebuild(other.sql, { kind: 'pending' }),
    ]);
    expect(await snapshotRollups(other.sql)).toEqual(clean);
  });
});

describe('the build-rollups job', () => {
  let runtime: TestRuntime | undefined;
  let events: QueueEvents | undefined;
  afterEach(async () => {
    await events?.close();
    events = undefined;
    await runtime?.close();
    runtime = undefined;
  });

  it('gathers ten quick trade-etl runs into at most two rebuilds, and counts the rows it wrote', async () => {
    runtime = await createTestRuntime('rollups-job', [tradeEtl, buildRollups], { ROLLUP_DEBOUNCE_MS: '1500' });
    const { db: rdb, queues } = runtime;
    await seedReference(rdb.sql);
    events = new QueueEvents('etl', { connection: runtime.redis.duplicate(), prefix: runtime.prefix });
    await events.waitUntilReady();
    const [etlWorker, rollupWorker] = startWorkers(runtime.workerRuntime, { connection: runtime.redis, queues: ['etl', 'rollups'] });
    try {
      for (let i = 0; i < 10; i++) {
        await insertExecutions(rdb.sql, [{ execution_id: 100 + i, executed_at: at('2026-03-02', `15:0${i}:00`), price: String(10 + i) }]);
        const run = await enqueueRun(queues, tradeEtl, {}, { now: new Date(Date.parse('2026-11-20T15:00:00Z') + i * 300_000) });
        await run.job.waitUntilFinished(events);
      }
      const rollups = queues.get('rollups');
      await waitFor(async () => {
        const counts = await rollups!.getJobCounts('waiting', 'active', 'delayed');
        const [pending] = await rdb.sql`select count(*)::int as n from ops.rollup_requests`;
        return (counts.waiting ?? 0) + (counts.active ?? 0) + (counts.delayed ?? 0) === 0 && pending?.n === 0;
      }, 20_000);
      const [runs] = await rdb.sql`select coalesce(sum(run_count), 0)::int as n from ops.job_runs where job = 'build-rollups' and status = 'succeeded'`;
      expect(runs?.n).toBeGreaterThanOrEqual(1);
      expect(runs?.n).toBeLessThanOrEqual(2);
      const [daily] = await rdb.sql`select total_trades from warehouse.fact_performance_daily`;
      expect(daily?.total_trades).toBe(10);
      const counter = await runtime.metrics.registry.getSingleMetricAsString('analytics_rollups_built_total');
      expect(Number(counter.match(/analytics_rollups_built_total (\d+)/)?.[1])).toBeGreaterThan(0);
    } finally {
      await etlWorker?.close();
      await rollupWorker?.close();
    }
  });

  it('fails a range whose from is after its to at once, without retries', async () => {
    runtime = await createTestRuntime('rollups-bad', [buildRollups]);
    events = new QueueEvents('rollups', { connection: runtime.redis.duplicate(), prefix: runtime.prefix });
    await events.waitUntilReady();
    runtime.startWorkers();
    const run = await enqueueRun(runtime.queues, buildRollups, { from: '2026-03-09', to: '2026-03-02' });
    await expect(run.job.waitUntilFinished(events)).rejects.toThrow('from (2026-03-09) is after to (2026-03-02)');
    const [row] = await runtime.db.sql`select status, attempts from ops.job_runs where job = 'build-rollups'`;
    expect(row).toEqual({ status: 'failed', attempts: 1 });
  });
});
