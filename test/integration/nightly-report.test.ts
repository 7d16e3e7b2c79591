/**
 * nightly-report: the JSON of a fixture day checked against the warehouse tables it reads; an
 * account that did not trade; a date with no data at all; an instrument without a symbol;
 * accounts long and short the same symbol; freshness as derived now and every failed job
 * counted; files replaced atomically and recorded; three missed nights caught up once each,
 * oldest first; a tick after midnight UTC reports the New York day that ended; a date's report
 * waits for its pending rollups, and is made again when build-rollups restates its date or an
 * earlier one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { buildRollups } from '../../jobs/build-rollups.ts';
import { nightlyReport } from '../../jobs/nightly-report.ts';
import { tradeEtl } from '../../jobs/trade-etl.ts';
import { listTicks } from '../../src/cron.ts';
import type { Sql } from '../../src/db.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { loadEnrichmentStatus } from '../../src/enrichment/reports.ts';
import { createLogger } from '../../src/logger.ts';
import { addDecimals, buildDailyReport } from '../../src/reports/daily.ts';
import { renderDailyReportHtml } from '../../src/reports/html.ts';
import { outdatedReportsFrom } from '../../src/reports/remakes.ts';
import { loadReportDatesFrom } from '../../src/reports/store.ts';
import type { DailyReport } from '../../src/reports/types.ts';
import { rebuildRollups } from '../../src/rollups.ts';
import { catchUp, resolveSchedules, type Schedule } from '../../src/scheduler.ts';
import { loadTrades } from '../../src/trade-loader.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { insertExecutions, seedReference } from '../helpers/oltp.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

const TZ = 'America/New_York';
const at = (date: string, time = '15:00:00') => `${date}T${time}Z`;
const NOW = new Date('2026-03-10T12:00:00Z');

async function seedWarehouse(sql: Sql): Promise<void> {
  await seedReference(sql);
  await insertExecutions(sql, [
    { execution_id: 1, executed_at: at('2026-03-02'), side: 'BUY', quantity: '100', price: '10' },
    { execution_id: 2, executed_at: at('2026-03-02', '16:00:00'), side: 'BUY', quantity: '50', price: '12' },
    { execution_id: 3, order_id: 200, executed_at: at('2026-03-03'), side: 'SELL', quantity: '120', price: '11', commission: '1.5', fees: '0.25' },
    { execution_id: 4, executed_at: at('2026-03-03', '16:00:00'), side: 'SELL', quantity: '10', price: '11.5' },
    { execution_id: 5, order_id: 300, account_id: 2, instrument_id: 2, executed_at: at('2026-03-02'), side: 'BUY', quantity: '10', price: '50' },
  ]);
  await sql`insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source) values
    ('XOM', '1d', '2026-03-03 00:00:00-05', 54, 56, 53, 55, 1000000, 'test')`;
  await loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'test' });
  await rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-05' });
}

/**
 * The nights up to March 1st ran (rows in ops.job_runs); catch-up at noon UTC on Thursday the 5th
 * must enqueue the three after, which run on `rt`'s workers. Answers their partitions once all succeeded.
 */
async function catchUpMarchNights(rt: TestRuntime, schedules: Schedule[]): Promise<string[]> {
  await rt.db.sql`
    insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, started_at, finished_at, worker)
    select 'nightly-report', d::date::text, 'reports', 'earlier-' || d::date, 'succeeded', 1, 1, now(), now(), 'test'
    from generate_series('2026-02-20'::date, '2026-03-01'::date, interval '1 day') d`;
  const logger = createLogger({ level: 'silent', pretty: false });
  const enqueued = await catchUp({ db: rt.db.sql, queues: rt.queues, logger, metrics: rt.metrics }, schedules, new Date('2026-03-05T12:00:00Z'));
  const partitions = enqueued.map((e) => e.partition);
  expect(partitions).toEqual(['2026-03-02', '2026-03-03', '2026-03-04']);
  await waitFor(
    async () => {
      const [row] = await rt.db.sql<{ n: number }[]>`select count(*)::int as n from ops.job_runs where job = 'nightly-report' and status = 'succeeded' and partition = any(${partitions})`;
      return row?.n === partitions.length;
    },
    30_000,
    () => 'the three reports',
  );
  return partitions;
}

describe('the report of a date', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedWarehouse(db.sql);
  });
  afterAll(async () => {
    await db.drop();
  });

  it('reads every figure from the warehouse, for the firm and each account, traded that day or not', async () => {
    const sql = db.sql;
    const report = await buildDailyReport(sql, { date: '2026-03-03', now: NOW });
    expect(report).toMatchObject({ kind: 'daily', report_date: '2026-03-03', has_trading: true });
    const [day] = await sql<{ trades: number; winners: number; losers: number; realized: string; commissions: string; fees: string; net: string }[]>`
      select sum(total_trades)::int as trades, sum(winning_trades)::int as winners, sum(losing_trades)::int as losers, sum(realized_pnl)::text as realized,
             sum(commissions)::text as commissions, sum(fees)::text as fees, sum(net_pnl)::text as net
      from warehouse.fact_performance_daily where trade_date = '2026-03-03'`;
    expect(report.firm).toMatchObject({
      trades: day?.trades,
      winners: day?.winners,
      losers: day?.losers,
      realized_pnl: day?.realized,
      commissions: day?.commissions,
      fees: day?.fees,
      net_pnl: day?.net,
    });
    // FIFO by hand: sell 120 @ 11 against 100 @ 10 and 20 @ 12 → +100 − 20 = 80; sell 10 @ 11.5 against 12 → −5.
    expect(Number(report.firm.realized_pnl)).toBe(75);
    expect(Number(report.firm.net_pnl)).toBeCloseTo(75 - Number(report.firm.commissions) - Number(report.firm.fees), 9);
    expect(report.firm.win_rate).toBe(0.5);

    const alpha = report.accounts.find((a) => a.account_number === 'ACC-001') as DailyReport['accounts'][number];
    const beta = report.accounts.find((a) => a.account_number === 'ACC-002') as DailyReport['accounts'][number];
    expect(report.accounts).toHaveLength(2);
    const [curve] = await sql<{ equity: string; drawdown: string; drawdown_pct: number }[]>`
      select equity::text, drawdown::text, drawdown_pct from warehouse.equity_curve where account_id = 1 and date = '2026-03-03'`;
    expect(alpha).toMatchObject({ equity: curve?.equity, current_drawdown: curve?.drawdown, current_drawdown_pct: curve?.drawdown_pct, trades: 2 });
    const [metrics] = await sql<{ sharpe: number | null; sortino: number | null }[]>`
      select sharpe, sortino from warehouse.performance_metrics where account_id = 1 and as_of_date = '2026-03-03' and window_name = '30d'`;
    expect(alpha.sharpe_30d).toBe(metrics?.sharpe ?? null);
    expect(alpha.sortino_30d).toBe(metrics?.sortino ?? null);
    expect(alpha.best_instruments).toEqual([{ name: 'AAPL', trades: 2, net_pnl: alpha.net_pnl }]);
    expect(alpha.worst_instruments).toEqual([]);
    expect(alpha.pnl_by_hour.map((h) => h.hour)).toEqual([10, 11]);
    expect(alpha.equity_curve.map((c) => c.date)).toEqual(['2026-03-02', '2026-03-03']);
    expect(alpha.daily_pnl.at(-1)).toEqual({ date: '2026-03-03', net_pnl: alpha.net_pnl });
    expect(alpha.positions).toEqual([{ symbol: 'AAPL', quantity: '20', avg_price: '12', close: null, market_value: null, unrealized_pnl: null }]);

    // Beta bought XOM on the 2nd and did nothing on the 3rd: zeros that day, its position marked at the 1d close.
    expect(beta).toMatchObject({ trades: 0, winners: 0, losers: 0, win_rate: null, net_pnl: '0', realized_pnl: '0' });
    expect(beta.positions).toEqual([{ symbol: 'XOM', quantity: '10', avg_price: '50', close: '55', market_value: '550', unrealized_pnl: '50' }]);
    expect(report.firm.positions.map((p) => p.symbol)).toEqual(['AAPL', 'XOM']);
    expect(report.firm.equity).toBe(addDecimals([alpha.equity as string, beta.equity as string]));
  });

  it('shows the last 250 days of a long curve and the last 30 days of PnL, ending at the report date', async () => {
    const long = await createTestDatabase();
    try {
      await seedWarehouse(long.sql);
      // Carried forward to mid-2027: some 310 trading days per account.
      await rebuildRollups({ db: long.sql, tz: TZ, startingCapital: 100000, scope: { kind: 'pending' }, asOf: '2027-06-01' });
      const report = await buildDailyReport(long.sql, { date: '2027-05-28', now: NOW });
      const [last] = await long.sql<{ date: string; equity: string }[]>`
        select date::text, equity::text from warehouse.equity_curve where account_id = 1 and date <= '2027-05-28' order by date desc limit 1`;
      const alpha = report.accounts.find((a) => a.account_number === 'ACC-001') as DailyReport['accounts'][number];
      expect(report.accounts).toHaveLength(2);
      expect(alpha.equity_curve).toHaveLength(250);
      expect(alpha.equity_curve.at(-1)?.date).toBe(last?.date);
      expect(alpha.daily_pnl).toHaveLength(30);
      expect(alpha.daily_pnl.at(-1)?.date).toBe(last?.date);
      expect(alpha.equity).toBe(last?.equity);
    } finally {
      await long.drop();
    }
  });

  it('a date without any data is a clear "no trading" report, not a crash', async () => {
    const empty = await buildDailyReport(db.sql, { date: '2026-02-14', now: NOW });
    expect(empty).toMatchObject({ has_trading: false, accounts: [], firm: { trades: 0, net_pnl: '0', equity: null, win_rate: null, sharpe_30d: null } });
    const weekend = await buildDailyReport(db.sql, { date: '2026-03-07', now: NOW });
    expect(weekend.has_trading).toBe(false);
    expect(weekend.accounts).toHaveLength(2);
    expect(weekend.firm.equity).not.toBeNull();
  });
});

describe('accounts that go flat or start later', () => {
  // Account 1 (capital 100,000) buys AAPL on Monday 03-02 and sells it all on Tuesday 03-03
  // (+100); account 2 (capital 50,000) starts on Wednesday 03-04; account 1 buys again on
  // Sunday 03-08, a date only its curve holds. Every fill pays 1.1.
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await seedReference(db.sql);
    await insertExecutions(db.sql, [
      { execution_id: 1, executed_at: at('2026-03-02'), side: 'BUY', quantity: '100', price: '10' },
      { execution_id: 2, executed_at: at('2026-03-03'), side: 'SELL', quantity: '100', price: '11' },
      { execution_id: 3, order_id: 300, account_id: 2, instrument_id: 2, executed_at: at('2026-03-04'), side: 'BUY', quantity: '10', price: '50' },
      { execution_id: 4, executed_at: at('2026-03-08'), side: 'BUY', quantity: '1', price: '10' },
    ]);
    await db.sql`insert into warehouse.account_capital (account_id, starting_capital) values (2, 50000)`;
    await loadTrades({ db: db.sql, sourceDb: db.sql, tz: TZ, runPartition: 'test' });
    await rebuildRollups({ db: db.sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-09' });
  });
  afterAll(async () => {
    await db.drop();
  });

  it('shows no positions for an account that went flat, on the reports after it did', async () => {
    const report = await buildDailyReport(db.sql, { date: '2026-03-05', now: NOW });
    const alpha = report.accounts.find((a) => a.account_number === 'ACC-001') as DailyReport['accounts'][number];
    const beta = report.accounts.find((a) => a.account_number === 'ACC-002') as DailyReport['accounts'][number];
    expect(alpha.positions).toEqual([]);
    expect(beta.positions.map((p) => [p.symbol, p.quantity])).toEqual([['XOM', '10']]);
    expect(report.firm.positions.map((p) => [p.symbol, p.quantity])).toEqual([['XOM', '10']]);
    // While it held them, they show.
    const monday = await buildDailyReport(db.sql, { date: '2026-03-02', now: NOW });
    expect(monday.accounts.find((a) => a.account_number === 'ACC-001')?.positions.map((p) => [p.symbol, p.quantity])).toEqual([['AAPL', '100']]);
  });

  it('counts an account that starts later neither as a firm drawdown before it starts nor as missing on dates only another account has', async () => {
    // Before account 2 exists the firm is account 1: at its peak on 03-03.
    const tuesday = await buildDailyReport(db.sql, { date: '2026-03-03', now: NOW });
    const alphaTuesday = tuesday.accounts.find((a) => a.account_number === 'ACC-001') as DailyReport['accounts'][number];
    expect(tuesday.accounts).toHaveLength(1);
    expect(tuesday.firm).toMatchObject({ equity: alphaTuesday.equity, current_drawdown_pct: 0 });
    expect(Number(tuesday.firm.current_drawdown)).toBe(0);

    // Sunday 03-08: account 2 has no row, its Friday equity carries over.
    const sunday = await buildDailyReport(db.sql, { date: '2026-03-08', now: NOW });
    const alpha = sunday.accounts.find((a) => a.account_number === 'ACC-001') as DailyReport['accounts'][number];
    const beta = sunday.accounts.find((a) => a.account_number === 'ACC-002') as DailyReport['accounts'][number];
    expect(alpha.equity_curve.at(-1)?.date).toBe('2026-03-08');
    expect(beta.equity_curve.at(-1)?.date).toBe('2026-03-06');
    expect(sunday.firm.equity).toBe(addDecimals([alpha.equity as string, beta.equity as string]));
    expect(Number(sunday.firm.equity)).toBeCloseTo(150095.6, 9);
    // The firm's curve: account 2 joins with its capital on 03-04 (a deposit, not a gain or a drawdown).
    expect(sunday.firm.equity_curve.map((c) => [c.date, Number(c.equity), Number(c.net_pnl)])).toEqual([
      ['2026-03-02', 99998.9, -1.1],
      ['2026-03-03', 100097.8, 98.9],
      ['2026-03-04', 150096.7, -1.1],
      ['2026-03-05', 150096.7, 0],
      ['2026-03-06', 150096.7, 0],
      ['2026-03-08', 150095.6, -1.1],
    ]);
    // Each account is 1.1 below its own peak; the firm's peak carries the capital account 2 brought.
    expect(Number(sunday.firm.current_drawdown)).toBeCloseTo(-2.2, 9);
    // Returns over each day's opening equity (capital joining that day included), as the rollups define them.
    const r = sunday.firm.equity_curve.map((c) => Number(c.net_pnl) / (Number(c.equity) - Number(c.net_pnl)));
    const mean = r.reduce((a, b) => a + b, 0) / r.length;
    const std = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (r.length - 1));
    expect(sunday.firm.sharpe_30d).toBeCloseTo((mean / std) * Math.sqrt(252), 9);
  });
});

describe('reports of unusual data', () => {
  const databases: TestDatabase[] = [];
  async function database(): Promise<TestDatabase> {
    const created = await createTestDatabase();
    databases.push(created);
    return created;
  }
  afterAll(async () => {
    for (const created of databases.splice(0)) await created.drop();
  });

  it('labels an instrument without a symbol and a strategy without a name by their ids, and renders them', async () => {
    const db = await database();
    await seedReference(db.sql);
    // The source judges nothing but primary keys (DESIGN.md): rows without a symbol or a name
    // are loaded by the ETL like any other, and so are their fills.
    await db.sql`
      insert into oltp.instruments (instrument_id, symbol, exchange, instrument_type, full_name, sector, industry, currency, tick_size, lot_size, is_active, updated_at)
      values (4, null, 'OTC', 'stock', 'No Symbol Corp', null, null, 'USD', 0.01, 1, true, '2020-01-01T00:00:00Z')`;
    await db.sql`
      insert into oltp.strategies (strategy_id, strategy_name, strategy_type, risk_tier, version, is_active, updated_at)
      values (3, null, 'trend', 'low', 1, true, '2020-01-01T00:00:00Z')`;
    await db.sql`
      insert into oltp.orders (order_id, account_id, instrument_id, strategy_id, side, quantity, limit_price, created_at)
      values (500, 1, 4, 3, 'BUY', 1000, null, '2026-01-01T00:00:00Z')`;
    await insertExecutions(db.sql, [
      { execution_id: 1, order_id: 500, account_id: 1, instrument_id: 4, executed_at: at('2026-03-02'), side: 'BUY', quantity: '10', price: '5' },
      // No order: the unassigned strategy, which the unnamed one must not be merged into.
      { execution_id: 2, order_id: null, account_id: 1, instrument_id: 4, executed_at: at('2026-03-02', '16:00:00'), side: 'BUY', quantity: '10', price: '5', commission: '2' },
    ]);
    const loaded = await loadTrades({ db: db.sql, sourceDb: db.sql, tz: TZ, runPartition: 'test' });
    expect(loaded.loaded).toBe(2);
    await rebuildRollups({ db: db.sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-02' });

    const report = await buildDailyReport(db.sql, { date: '2026-03-02', now: NOW });
    const alpha = report.accounts[0]!;
    expect(alpha.positions.map((p) => [p.symbol, p.quantity])).toEqual([['#4', '20']]);
    expect(report.firm.positions.map((p) => [p.symbol, p.quantity])).toEqual([['#4', '20']]);
    expect(alpha.worst_instruments.map((m) => [m.name, m.trades])).toEqual([['#4', 2]]);
    expect(alpha.worst_strategies.map((m) => [m.name, m.trades, m.net_pnl])).toEqual([
      ['unassigned', 1, '-2.1'],
      ['#3', 1, '-1.1'],
    ]);
    // A NULL label made escapeHtml throw, failing the job every night the position stayed open.
    const html = renderDailyReportHtml(report);
    expect(html).toContain('<td>#4</td>');
  });

  it('keeps the unrealized PnL of accounts long and short the same symbol, listed at net quantity 0', async () => {
    const db = await database();
    await seedReference(db.sql);
    // Account 1 buys 10 XOM at 50; account 2 shorts 10 XOM at 60; XOM closes at 55.
    await insertExecutions(db.sql, [
      { execution_id: 1, order_id: null, account_id: 1, instrument_id: 2, executed_at: at('2026-03-02'), side: 'BUY', quantity: '10', price: '50' },
      { execution_id: 2, order_id: 300, account_id: 2, instrument_id: 2, executed_at: at('2026-03-02'), side: 'SELL', quantity: '10', price: '60' },
    ]);
    await db.sql`insert into market.bars (symbol, timeframe, ts, open, high, low, close, volume, source) values
      ('XOM', '1d', '2026-03-02 00:00:00-05', 54, 56, 53, 55, 1000000, 'test')`;
    await loadTrades({ db: db.sql, sourceDb: db.sql, tz: TZ, runPartition: 'test' });
    await rebuildRollups({ db: db.sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-02' });

    const report = await buildDailyReport(db.sql, { date: '2026-03-02', now: NOW });
    // Each account's position is open and marked: +50 each.
    expect(report.accounts.flatMap((a) => a.positions).map((p) => [p.symbol, p.quantity, p.unrealized_pnl])).toEqual([
      ['XOM', '10', '50'],
      ['XOM', '-10', '50'],
    ]);
    expect(report.firm.positions).toEqual([{ symbol: 'XOM', quantity: '0', avg_price: null, close: '55', market_value: '0', unrealized_pnl: '100' }]);
  });
});

describe('data freshness in the report', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
  });
  afterAll(async () => {
    await db.drop();
  });

  it('counts enrichment statuses as derived now, as the status API and the metric do, not as stored at the last enrichment', async () => {
    // AAPL was enriched (healthy at the time) with its last bar on 2026-02-02 and nothing since:
    // on 2026-03-10 it is 25 sessions behind, i.e. stale.
    await db.sql`
      insert into enrichment.status (symbol, asset_class, status, last_enrichment_time, latest_bar_ts, records_available, timeframes_available)
      values ('AAPL', 'stock', 'healthy', '2026-02-02T22:00:00Z', '2026-02-02T05:00:00Z', 100, '{1d}')`;
    await db.sql`
      insert into enrichment.data_quality_metrics (symbol, timeframe, metric_date, total_records, validated_records, validation_rate,
        gaps_detected, anomalies_detected, avg_quality_score, data_completeness, features_rate, freshness)
      values ('AAPL', '1d', '2026-02-02', 1, 1, 100, 0, 0, 0.98, 1, 1, 1)`;
    const api = await loadEnrichmentStatus(db.sql, 'AAPL', { now: NOW.getTime(), nextEnrichment: null });
    expect(api.status).toBe('stale');

    const report = await buildDailyReport(db.sql, { date: '2026-03-09', now: NOW });
    expect(report.freshness.enrichment_status).toEqual({ stale: 1 });
  });

  it('counts every job that failed in the last 24 h, not just the 50 it lists', async () => {
    // A five-hour outage of the trade ETL: 60 ticks, each its own partition, all failed; and
    // one failure older than 24 h, not counted.
    await db.sql`
      insert into ops.job_runs (job, partition, queue, job_id, status, attempts, run_count, started_at, finished_at, worker, error)
      select 'trade-etl', 'tick-' || i, 'etl', 'trade-etl@tick-' || i, 'failed', 3, 1,
             ${NOW}::timestamptz - make_interval(mins => 5 * i), ${NOW}::timestamptz - make_interval(mins => 5 * i), 'test', 'connection refused'
      from generate_series(1, 60) i
      union all
      select 'trade-etl', 'old', 'etl', 'trade-etl@old', 'failed', 3, 1, ${NOW}::timestamptz - interval '25 hours', ${NOW}::timestamptz - interval '25 hours', 'test', 'old'`;
    const report = await buildDailyReport(db.sql, { date: '2026-03-09', now: NOW });
    expect(report.freshness.failed_jobs_24h_count).toBe(60);
    expect(report.freshness.failed_jobs_24h).toHaveLength(50);
    expect(report.freshness.failed_jobs_24h[0]?.partition).toBe('tick-1');
    const header = /<p class="meta">[^]*?<\/p>/.exec(renderDailyReportHtml(report))?.[0] ?? '';
    expect(header).toContain('60 failed jobs in 24 h (50 listed)');
  });
});

describe('the report date a tick names', () => {
  const dateOf = (tick: string) => nightlyReport.partition({ scheduledFor: tick });

  it.each([
    // The default 23:50 UTC is 18:50 EST / 19:50 EDT: the New York day just ended, weekends included.
    ['2026-03-03T23:50:00Z', '2026-03-03', 'default tick, winter'],
    ['2026-07-14T23:50:00Z', '2026-07-14', 'default tick, summer'],
    ['2026-03-07T23:50:00Z', '2026-03-07', 'default tick on a Saturday'],
    ['2026-03-08T23:50:00Z', '2026-03-08', 'default tick on spring-forward Sunday'],
    // SCHEDULE_NIGHTLY_REPORT='30 1 * * *' (UTC): 20:30 EST of the day before.
    ['2026-03-04T01:30:00Z', '2026-03-03', '01:30 UTC'],
    ['2026-03-07T01:30:00Z', '2026-03-06', '01:30 UTC on a Saturday: Friday'],
    ['2026-07-15T01:30:00Z', '2026-07-14', '01:30 UTC in summer'],
    // 06:00 UTC is 01:00 New York: the date in New York has just turned, its session is hours away.
    ['2026-03-09T06:00:00Z', '2026-03-08', '01:00 New York'],
    // Around the 16:00 close: 21:00 UTC is 16:00 EST (closed), 20:30 UTC is 15:30 EST (open), 16:30 EDT (closed).
    ['2026-03-03T21:00:00Z', '2026-03-03', 'the close itself'],
    ['2026-03-03T20:30:00Z', '2026-03-02', '15:30 New York, before the close'],
    ['2026-07-14T20:30:00Z', '2026-07-14', '16:30 New York, after the close'],
  ])('%s names %s (%s)', (tick, date) => {
    expect(dateOf(tick)).toBe(date);
  });

  it('is what the default schedule has always reported: every 23:50 UTC tick of two years names its UTC date', () => {
    const ticks = listTicks('50 23 * * *', 'UTC', new Date('2025-12-31T23:59:00Z'), new Date('2027-12-31T23:59:00Z'));
    expect(ticks).toHaveLength(730);
    const differing = ticks.filter((tick) => dateOf(tick.toISOString()) !== tick.toISOString().slice(0, 10));
    expect(differing).toEqual([]);
  });
});

describe('the nightly-report job', () => {
  let runtime: TestRuntime | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await runtime?.close();
    runtime = undefined;
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('catches up three missed nights once each, oldest first, writing JSON and HTML and recording them', async () => {
    const reports = fs.mkdtempSync(path.join(os.tmpdir(), 'bullpen-reports-'));
    dirs.push(reports);
    runtime = await createTestRuntime('report', [nightlyReport], { REPORTS_DIR: reports });
    await seedWarehouse(runtime.db.sql);
    runtime.startWorkers();
    const logger = createLogger({ level: 'silent', pretty: false });
    const schedules = resolveSchedules([nightlyReport], { scheduleOverrides: {} });
    // The nights up to March 1st ran; nothing ran on the 2nd, 3rd and 4th; "now" is the 5th at noon UTC.
    const partitions = await catchUpMarchNights(runtime, schedules);
    const recorded = await runtime.db.sql<{ report_date: string; json_path: string; html_path: string; summary: { has_trading: boolean } }[]>`
      select report_date::text, json_path, html_path, summary from ops.reports order by report_date`;
    expect(recorded.map((r) => r.report_date)).toEqual(partitions);
    const third = recorded.find((r) => r.report_date === '2026-03-03');
    expect(third?.json_path).toBe(path.join(reports, 'daily_20260303.json'));
    const json = JSON.parse(fs.readFileSync(third!.json_path, 'utf8')) as DailyReport;
    expect(json).toMatchObject({ report_date: '2026-03-03', has_trading: true });
    expect(fs.readFileSync(third!.html_path, 'utf8')).toContain('data-chart="equity"');
    expect(recorded.find((r) => r.report_date === '2026-03-04')?.summary.has_trading).toBe(false);
    // Nothing left over from the atomic writes, and a second catch-up finds nothing missed.
    expect(fs.readdirSync(reports).filter((f) => f.endsWith('.tmp'))).toEqual([]);
    expect(await catchUp({ db: runtime.db.sql, queues: runtime.queues, logger, metrics: runtime.metrics }, schedules, new Date('2026-03-05T12:00:00Z'))).toEqual([]);
  });

  it('with SCHEDULE_NIGHTLY_REPORT after midnight UTC, reports the New York day that ended, not the day just started', async () => {
    runtime = await createTestRuntime('report-late', [nightlyReport], { SCHEDULE_NIGHTLY_REPORT: '30 1 * * *' });
    await seedWarehouse(runtime.db.sql);
    runtime.startWorkers();
    const schedules = resolveSchedules([nightlyReport], runtime.config);
    expect(schedules.map((s) => [s.cron, s.tz])).toEqual([['30 1 * * *', 'UTC']]);
    // "Now" is Thursday 03-05 at noon UTC: the ticks of Tuesday, Wednesday and Thursday at 01:30 UTC
    // came after the New York Monday, Tuesday and Wednesday; Thursday's session has not happened yet.
    await catchUpMarchNights(runtime, schedules);
    const stored = await runtime.db.sql<{ report_date: string; summary: { has_trading: boolean; trades: number } }[]>`
      select report_date::text, summary from ops.reports order by report_date`;
    expect(stored.map((r) => [r.report_date, r.summary.trades])).toEqual([['2026-03-02', 3], ['2026-03-03', 2], ['2026-03-04', 0]]);
  });

  it('waits for the rollups of fills already loaded for its date instead of storing a "no trading" report', async () => {
    // Only the reports queue is worked: the rebuild the ETL asked for has not run yet (it waits
    // out ROLLUP_DEBOUNCE_MS, 30 s by default, on the rollups queue).
    runtime = await createTestRuntime('report-pending', [nightlyReport]);
    const { sql } = runtime.db;
    await seedReference(sql);
    // Monday: bought, loaded and rolled up.
    await insertExecutions(sql, [{ execution_id: 1, executed_at: at('2026-03-02'), side: 'BUY', quantity: '100', price: '10' }]);
    await loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'test' });
    await rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-02' });
    // Tuesday: two fills loaded, their rollups requested and not made yet.
    await insertExecutions(sql, [
      { execution_id: 2, order_id: 200, executed_at: at('2026-03-03'), side: 'SELL', quantity: '60', price: '11' },
      { execution_id: 3, order_id: 200, executed_at: at('2026-03-03', '16:00:00'), side: 'SELL', quantity: '40', price: '12' },
    ]);
    await loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'test-2' });
    const [state] = await sql<{ pending: number; facts: number }[]>`
      select (select count(*)::int from ops.rollup_requests where trade_date = '2026-03-03') as pending,
             (select count(*)::int from warehouse.fact_trades where trade_date = '2026-03-03') as facts`;
    expect(state).toEqual({ pending: 1, facts: 2 });
    // Built in the gap, the date is still a trading day: that comes from the facts.
    expect((await buildDailyReport(sql, { date: '2026-03-03', now: NOW })).has_trading).toBe(true);

    runtime.startWorkers();
    await enqueueRun(runtime.queues, nightlyReport, { date: '2026-03-03' }, { scheduledFor: new Date('2026-03-03T23:50:00Z') });
    const run = async () => (await sql<{ status: string }[]>`select status from ops.job_runs where job = 'nightly-report' and partition = '2026-03-03'`)[0]?.status;
    await waitFor(async () => (await run()) !== undefined, 10_000, () => 'the report to start');
    // Past a look or two it is still waiting, and nothing is stored.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    expect(await run()).toBe('running');
    expect(await sql`select 1 from ops.reports where report_date = '2026-03-03'`).toHaveLength(0);

    // The rollups are made: the report follows with both fills.
    await rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope: { kind: 'pending' } });
    await waitFor(async () => (await run()) === 'succeeded', 15_000, () => 'the report to succeed');
    const [stored] = await sql<{ summary: { has_trading: boolean; trades: number } }[]>`select summary from ops.reports where report_date = '2026-03-03'`;
    expect(stored?.summary).toMatchObject({ has_trading: true, trades: 2 });
  });

  it('is made again when build-rollups restates its date after late fills', async () => {
    runtime = await createTestRuntime('report-restated', [tradeEtl, buildRollups, nightlyReport], { ROLLUP_DEBOUNCE_MS: '0' });
    const { sql } = runtime.db;
    await seedReference(sql);
    await insertExecutions(sql, [
      { execution_id: 1, executed_at: at('2026-03-03', '14:00:00'), side: 'BUY', quantity: '100', price: '10' },
      { execution_id: 2, order_id: 200, executed_at: at('2026-03-03', '15:00:00'), side: 'SELL', quantity: '50', price: '11' },
      { execution_id: 4, executed_at: at('2026-03-02', '15:00:00'), side: 'BUY', quantity: '1', price: '10' },
    ]);
    await loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'test' });
    await rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-04' });
    runtime.startWorkers();

    // The 23:50 UTC reports of Monday and Tuesday.
    for (const date of ['2026-03-02', '2026-03-03']) {
      await enqueueRun(runtime.queues, nightlyReport, { date }, { scheduledFor: new Date(`${date}T23:50:00Z`) });
    }
    await waitFor(async () => {
      const [row] = await sql<{ n: number }[]>`select count(*)::int as n from ops.reports`;
      return row?.n === 2;
    }, 20_000, () => 'both reports');
    const stored = await sql<{ report_date: string; json_path: string; generated_at: Date }[]>`select report_date::text, json_path, generated_at from ops.reports order by report_date`;
    const read = (date: string) => JSON.parse(fs.readFileSync(stored.find((r) => r.report_date === date)!.json_path, 'utf8')) as DailyReport;
    expect(read('2026-03-03').firm.trades).toBe(2);

    // A fill at 19:55 New York time on Tuesday (after-hours, trading date 2026-03-03, after the
    // 23:50 UTC = 18:50 EST tick), loaded by the next ETL run, which has Tuesday's rollups rebuilt.
    await insertExecutions(sql, [
      { execution_id: 3, order_id: 200, executed_at: '2026-03-04T00:55:00Z', ingested_at: '2026-03-04T00:56:00Z', side: 'SELL', quantity: '50', price: '12' },
    ]);
    await enqueueRun(runtime.queues, tradeEtl, {}, { now: new Date('2026-03-04T01:00:00Z') });
    await waitFor(() => read('2026-03-03').firm.trades === 3, 20_000, () => `daily_20260303.json to show 3 trades (it shows ${read('2026-03-03').firm.trades})`);
    const [rollups] = await sql<{ summary: { reports_requested: number } }[]>`select summary from ops.job_runs where job = 'build-rollups' and status = 'succeeded'`;
    expect(rollups?.summary.reports_requested).toBe(1);
    // Monday was not restated: its report stands as it was.
    const [monday] = await sql<{ generated_at: Date }[]>`select generated_at from ops.reports where report_date = '2026-03-02'`;
    expect(monday?.generated_at).toEqual(stored[0]?.generated_at);
    // A full rebuild restates every date: each stored report is made again.
    expect(outdatedReportsFrom({ scope: 'full', promotedToFull: false, from: null, markedFrom: null })).toBe('all');
    expect(await loadReportDatesFrom(sql, 'all')).toEqual(['2026-03-02', '2026-03-03']);
    expect(outdatedReportsFrom({ scope: 'pending', promotedToFull: false, from: null, markedFrom: null })).toBeNull();
    expect(outdatedReportsFrom({ scope: 'pending', promotedToFull: true, from: null, markedFrom: null })).toBe('all');
    // The earlier of the first restated date and the first marked one.
    expect(outdatedReportsFrom({ scope: 'range', promotedToFull: false, from: '2026-03-03', markedFrom: '2026-03-02' })).toBe('2026-03-02');
    expect(outdatedReportsFrom({ scope: 'range', promotedToFull: false, from: '2026-03-03', markedFrom: null })).toBe('2026-03-03');
    expect(await loadReportDatesFrom(sql, '2026-03-03')).toEqual(['2026-03-03']);
  });

  it('is made again, with every later stored report, when an earlier date is restated: their equity and drawdown changed too', async () => {
    runtime = await createTestRuntime('report-restated-later', [tradeEtl, buildRollups, nightlyReport], { ROLLUP_DEBOUNCE_MS: '0' });
    const { sql } = runtime.db;
    await seedReference(sql);
    // Account 1 buys AAPL on Friday and sells it over Monday and Tuesday; buys again on Wednesday.
    await insertExecutions(sql, [
      { execution_id: 1, executed_at: at('2026-02-27'), side: 'BUY', quantity: '100', price: '10' },
      { execution_id: 2, order_id: 200, executed_at: at('2026-03-02'), side: 'SELL', quantity: '50', price: '11' },
      { execution_id: 3, order_id: 200, executed_at: at('2026-03-03'), side: 'SELL', quantity: '50', price: '12' },
      { execution_id: 4, executed_at: at('2026-03-04'), side: 'BUY', quantity: '10', price: '12' },
    ]);
    await loadTrades({ db: sql, sourceDb: sql, tz: TZ, runPartition: 'test' });
    await rebuildRollups({ db: sql, tz: TZ, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-04' });
    runtime.startWorkers();
    const dates = ['2026-02-27', '2026-03-02', '2026-03-03', '2026-03-04'];
    for (const date of dates) await enqueueRun(runtime.queues, nightlyReport, { date }, { scheduledFor: new Date(`${date}T23:50:00Z`) });
    await waitFor(async () => (await sql<{ n: number }[]>`select count(*)::int as n from ops.reports`)[0]?.n === dates.length, 20_000, () => 'the four reports');
    const before = new Map((await sql<{ report_date: string; json_path: string; generated_at: Date }[]>`
      select report_date::text, json_path, generated_at from ops.reports`).map((r) => [r.report_date, r]));
    const read = (date: string) => JSON.parse(fs.readFileSync(before.get(date)!.json_path, 'utf8')) as DailyReport;
    const equityOn = async (date: string) =>
      (await sql<{ equity: string }[]>`select equity::text from warehouse.equity_curve where account_id = 1 and date = ${date}`)[0]?.equity;
    const wednesdayBefore = read('2026-03-04').firm.equity;
    expect(wednesdayBefore).toBe(await equityOn('2026-03-04'));

    // Found on Thursday night: a Monday fill in XOM the source had not sent, commission 5. Its
    // instrument's lots have no later fill, so the ETL asks for Monday alone, yet Monday's loss
    // lowers the equity of every later date.
    await insertExecutions(sql, [
      { execution_id: 5, order_id: null, instrument_id: 2, executed_at: at('2026-03-02', '16:00:00'), ingested_at: '2026-03-06T01:00:00Z', side: 'BUY', quantity: '10', price: '50', commission: '5', fees: '0' },
    ]);
    await enqueueRun(runtime.queues, tradeEtl, {}, { now: new Date('2026-03-06T01:05:00Z') });
    await waitFor(async () => {
      const [run] = await sql<{ summary: { from: string; to: string } | null }[]>`select summary from ops.job_runs where job = 'build-rollups' and status = 'succeeded'`;
      return run?.summary?.from === '2026-03-02';
    }, 20_000, () => 'build-rollups to restate Monday');
    const [rollups] = await sql<{ summary: { from: string; to: string; reports_requested: number } }[]>`select summary from ops.job_runs where job = 'build-rollups'`;
    expect(rollups?.summary).toMatchObject({ from: '2026-03-02', to: '2026-03-02', reports_requested: 3 });

    // Monday, Tuesday and Wednesday are made again from the restated curve; Friday, before it, is not.
    await waitFor(async () => {
      const made = await sql<{ n: number }[]>`select count(*)::int as n from ops.reports where generated_at > ${before.get('2026-03-04')!.generated_at}`;
      return made[0]?.n === 3;
    }, 20_000, () => 'the three reports from Monday on to be made again');
    for (const date of ['2026-03-02', '2026-03-03', '2026-03-04']) {
      const report = read(date);
      expect({ date, equity: report.firm.equity, account: report.accounts[0]?.equity }).toEqual({ date, equity: await equityOn(date), account: await equityOn(date) });
    }
    expect(Number(wednesdayBefore) - Number(read('2026-03-04').firm.equity)).toBeCloseTo(5, 9);
    const [friday] = await sql<{ generated_at: Date }[]>`select generated_at from ops.reports where report_date = '2026-02-27'`;
    expect(friday?.generated_at).toEqual(before.get('2026-02-27')?.generated_at);
  });
});
