/**
 * Enrichment backfills end to end: a request fans out as a flow, series run in chunk steps on
 * real BullMQ and PostgreSQL, and what lands in market.bars / market.features equals the
 * source and the features of the whole series; the ledger keeps a second request from fetching.
 */
import fs from 'node:fs';
import { DateTime } from 'luxon';
import { afterEach, describe, expect, it } from 'vitest';
import { computeFeatures, createFeatureState } from '../../src/analytics/features.ts';
import type { Bar } from '../../src/analytics/bars.ts';
import { addCalendarDays, barOpen, dayNumberOf, dayNumberOfIsoDate, sessionMinutes, utcMsOfLocal, type Timeframe } from '../../src/analytics/timeframes.ts';
import { createBackfill, createFlowEnqueuer, describeBackfill, finishBackfill, planBackfill, type BackfillPlan, type BackfillReport } from '../../src/enrichment/backfills.ts';
import { createPolygonProvider } from '../../src/enrichment/providers/polygon.ts';
import { generateSyntheticBars } from '../../src/enrichment/providers/synthetic.ts';
import type { FetchRequest, MarketDataProvider } from '../../src/enrichment/providers/types.ts';
import { loadEnrichmentStatus } from '../../src/enrichment/reports.ts';
import { runSeriesStep } from '../../src/enrichment/series-step.ts';
import type { Sql } from '../../src/db.ts';
import { createLogger } from '../../src/logger.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { enrichmentDaily } from '../../jobs/enrichment-daily.ts';
import { nightlyReport } from '../../jobs/nightly-report.ts';
import type { DailyReport } from '../../src/reports/types.ts';
import { pauseProvider, replaceFeatures, takeProviderRequest } from '../../src/queries/enrichment.ts';
import { createDb } from '../../src/db.ts';
import { rebuildRollups } from '../../src/rollups.ts';
import { loadTrades } from '../../src/trade-loader.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts';
import { startFakePolygon, type FakePolygon } from '../helpers/fake-polygon.ts';
import { insertExecutions, seedReference } from '../helpers/oltp.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let runtime: TestRuntime | undefined;
let testDb: TestDatabase | undefined;
let fake: FakePolygon | undefined;

afterEach(async () => {
  await runtime?.close();
  runtime = undefined;
  await testDb?.drop();
  testDb = undefined;
  await fake?.close();
  fake = undefined;
});

const NOW = Date.parse('2026-11-20T15:00:00Z');

function plan(input: Record<string, unknown>): BackfillPlan {
  return planBackfill(input, { defaultSource: 'synthetic', maxBars: 50_000_000, now: NOW });
}

async function runBackfill(rt: TestRuntime, input: Record<string, unknown>): Promise<BackfillReport> {
  const enqueue = createFlowEnqueuer(rt.workerRuntime.flows, enrichmentBackfill, rt.workerRuntime.jobOptions);
  const created = await createBackfill({ db: rt.db.sql, enqueue }, plan(input));
  let report: BackfillReport | undefined;
  await waitFor(
    async () => {
      report = await describeBackfill(rt.db.sql, created.backfillId);
      return ['completed', 'failed', 'cancelled'].includes(String(report?.status));
    },
    60_000,
    () => `backfill to finish: ${JSON.stringify(report)}`,
  );
  return report as BackfillReport;
}

/** A stock's session close on the day of `ts` (UTC ms); null without a session. */
function sessionCloseOf(ts: number): number | null {
  const day = dayNumberOf(ts, 'nyse');
  const session = sessionMinutes(day, 'nyse');
  return session ? utcMsOfLocal(day * 86_400_000 + session.close * 60_000, 'nyse') : null;
}

/** A stock's 1w bars (on their Mondays from..to) made of the 1d bars of sessions closed by `now`, as a live source builds them. */
function weeksAsOf(symbol: string, from: string, to: string, now: number): Bar[] {
  const days = generateSyntheticBars({ symbol, assetClass: 'stock', timeframe: '1d', from, to: addCalendarDays(to, 6) }).filter((b) => (sessionCloseOf(b.ts) ?? Infinity) <= now);
  const weeks = new Map<number, Bar>();
  for (const d of days) {
    const monday = barOpen(d.ts, '1w', 'nyse');
    const day = dayNumberOf(monday, 'nyse');
    if (day < dayNumberOfIsoDate(from) || day > dayNumberOfIsoDate(to)) continue;
    const week = weeks.get(monday);
    if (!week) weeks.set(monday, { ...d, ts: monday });
    else Object.assign(week, { high: Math.max(week.high, d.high), low: Math.min(week.low, d.low), close: d.close, volume: week.volume + d.volume });
  }
  return [...weeks.values()];
}

/** A live source: it has only what has happened by `clock.now` (1m bars that have ended; 1w bars of the sessions closed so far). */
function createClockedSource(clock: { now: number }): MarketDataProvider {
  return {
    name: 'synthetic',
    async fetchBars(r: FetchRequest) {
      const bars =
        r.timeframe === '1w'
          ? weeksAsOf(r.symbol, r.from, r.to, clock.now)
          : generateSyntheticBars({ symbol: r.symbol, assetClass: r.assetClass, timeframe: r.timeframe, from: r.from, to: r.to }).filter((b) => b.ts + 60_000 <= clock.now);
      if (r.timeframe !== '1w' && r.timeframe !== '1m') throw new Error('the clocked source serves 1m and 1w');
      return { bars, requests: 1, responseTimeMs: 1, quotaRemaining: null };
    },
  };
}

/** Plans a request as of `clock.now` and runs its one series step by step in this process, the source (by default a live one) as of that instant. */
async function runClocked(db: TestDatabase, clock: { now: number }, input: Record<string, unknown>, source = createClockedSource(clock)): Promise<BackfillReport> {
  const created = await createBackfill(
    { db: db.sql, enqueue: async () => ({ jobId: 'not-queued' }) },
    planBackfill(input, { defaultSource: 'synthetic', maxBars: 50_000_000, now: clock.now }),
  );
  const [symbol, timeframe] = [String(input.symbols), String(input.timeframes) as Timeframe];
  const deps = { db: db.sql, provider: () => source, logger: createLogger({ level: 'silent', pretty: false }), retries: 0, retryBaseMs: 1, exchangeTz: 'America/New_York', now: () => clock.now };
  for (let step = 0; step < 100; step++) {
    const outcome = await runSeriesStep(deps, { backfillId: created.backfillId, symbol, timeframe });
    if (outcome.kind === 'done') {
      await finishBackfill(db.sql, created.backfillId);
      return (await describeBackfill(db.sql, created.backfillId)) as BackfillReport;
    }
    expect(outcome.kind).toBe('more');
  }
  throw new Error('the series did not end in 100 steps');
}

async function ledgerCoveredTo(sql: TestDatabase['sql'], timeframe: string, chunkStart: string): Promise<string | null | undefined> {
  const [row] = await sql<{ covered_to: string | null }[]>`
    select covered_to::text from enrichment.chunks where symbol = 'AAPL' and timeframe = ${timeframe} and chunk_start = ${chunkStart}`;
  return row?.covered_to;
}

/** The summary of the enrichment-daily run of `partition`, once it has succeeded. */
async function dailySummary(sql: Sql, partition: string): Promise<Record<string, unknown>> {
  let summary: Record<string, unknown> | undefined;
  await waitFor(async () => {
    const [row] = await sql<{ status: string; summary: Record<string, unknown> }[]>`select status, summary from ops.job_runs where job = 'enrichment-daily' and partition = ${partition}`;
    summary = row?.status === 'succeeded' ? row.summary : undefined;
    return summary !== undefined;
  }, 30_000);
  return summary!;
}

interface StoredBar {
  ts: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

describe('enrichment backfills', () => {
  it("a provider's request budget grants at most its max in any window, among takers on other connections, and says how long to wait", async () => {
    testDb = await createTestDatabase();
    // Another worker process's pool.
    const other = createDb(testDb.url, { max: 4 });
    try {
      const budget = { max: 3, durationMs: 60_000 };
      const pools = [testDb.sql, other];
      const answers = await Promise.all(Array.from({ length: 8 }, (_, i) => takeProviderRequest(pools[i % 2]!, 'polygon', budget, `series-${i}`)));
      expect(answers.filter((wait) => wait === 0)).toHaveLength(3);
      // The first three refused wait for the three grants to leave the window; the next two, a window more.
      const refused = answers.filter((w) => w > 0).sort((x, y) => x - y);
      for (const wait of refused.slice(0, 3)) {
        expect(wait).toBeGreaterThan(50_000);
        expect(wait).toBeLessThanOrEqual(60_000);
      }
      for (const wait of refused.slice(3)) expect(wait).toBeGreaterThan(110_000);
      // Each provider has a budget of its own.
      expect(await takeProviderRequest(other, 'csv', budget, 'series-0')).toBe(0);
      // A sliding window: once the oldest grant has left it, one more is granted, not three.
      await testDb.sql`
        update enrichment.provider_budget set grants = array[now() - interval '61 seconds', now() - interval '30 seconds', now() - interval '10 seconds'], places = '{}'
        where provider = 'polygon'`;
      expect(await takeProviderRequest(testDb.sql, 'polygon', budget, 'next-0')).toBe(0);
      const wait = await takeProviderRequest(other, 'polygon', budget, 'next-1');
      expect(wait).toBeGreaterThan(25_000);
      expect(wait).toBeLessThanOrEqual(30_000);
      // The two in the window, the one just granted, and the place given.
      expect(await testDb.sql`select cardinality(grants)::int as n from enrichment.provider_budget where provider = 'polygon'`).toEqual([{ n: 4 }]);
    } finally {
      await other.end();
    }
  });

  it('takers refused by a spent budget each get a place of their own, so a request that frees goes to one of them, not to all', async () => {
    testDb = await createTestDatabase();
    const other = createDb(testDb.url, { max: 4 });
    try {
      const budget = { max: 2, durationMs: 60_000 };
      const pools = [testDb.sql, other];
      expect(await takeProviderRequest(testDb.sql, 'polygon', budget, 'a')).toBe(0);
      expect(await takeProviderRequest(other, 'polygon', budget, 'b')).toBe(0);
      const holders = ['c', 'd', 'e', 'f', 'g', 'h'];
      const waits = await Promise.all(holders.map((holder, i) => takeProviderRequest(pools[i % 2]!, 'polygon', budget, holder)));
      // Two places a window, one window after another (the asks are a few ms apart).
      const sorted = [...waits].sort((x, y) => x - y);
      expect(sorted[0]).toBeGreaterThan(55_000);
      for (let i = 0; i + budget.max < sorted.length; i++) expect(sorted[i + budget.max]! - sorted[i]!).toBeGreaterThan(59_000);
      // Asking again before its place comes keeps it, and counts nothing more.
      const last = holders[waits.indexOf(sorted[sorted.length - 1]!)]!;
      const again = await takeProviderRequest(other, 'polygon', budget, last);
      expect(again).toBeLessThanOrEqual(sorted[sorted.length - 1]!);
      expect(again).toBeGreaterThan(sorted[sorted.length - 1]! - 5_000);
      expect(await testDb.sql`select cardinality(grants)::int as n from enrichment.provider_budget where provider = 'polygon'`).toEqual([{ n: 8 }]);
    } finally {
      await other.end();
    }
  });

  it("a provider's pause after a 429 holds its own takers, with a budget or without, and no other provider's", async () => {
    testDb = await createTestDatabase();
    const sql = testDb.sql;
    await pauseProvider(sql, 'polygon', 5_000);
    const unbudgeted = await takeProviderRequest(sql, 'polygon', null, 'a');
    expect(unbudgeted).toBeGreaterThan(4_000);
    expect(unbudgeted).toBeLessThanOrEqual(5_000);
    // With room in its budget, a taker's place is the pause's end.
    const placed = await takeProviderRequest(sql, 'polygon', { max: 5, durationMs: 60_000 }, 'b');
    expect(placed).toBeGreaterThan(4_000);
    expect(placed).toBeLessThanOrEqual(5_001);
    expect(await takeProviderRequest(sql, 'csv', null, 'a')).toBe(0);
    expect(await takeProviderRequest(sql, 'synthetic', { max: 5, durationMs: 60_000 }, 'a')).toBe(0);
    // A shorter Retry-After later does not end the pause early.
    await pauseProvider(sql, 'polygon', 1_000);
    expect(await takeProviderRequest(sql, 'polygon', null, 'c')).toBeGreaterThan(3_000);
  });

  it('stores the source bars and whole-series features, chunk by chunk, and a second request fetches nothing', async () => {
    runtime = await createTestRuntime('enrich', [enrichmentBackfill]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const report = await runBackfill(runtime, { symbols: 'AAPL,MSFT', timeframes: ['1d', '1h'], from: '2023-11-15', to: '2024-02-10' });
    expect(report).toMatchObject({ status: 'completed', chunks_failed: 0, bars_rejected: 0 });
    // 1d and 1h: yearly chunks, so 2023 and 2024 per series.
    expect(report.chunks_total).toBe(8);

    for (const symbol of ['AAPL', 'MSFT']) {
      for (const timeframe of ['1d', '1h'] as const) {
        // Whole chunks are fetched: from the grid cell's first day, through the request's last.
        const expected = generateSyntheticBars({ symbol, assetClass: 'stock', timeframe, from: '2023-01-01', to: '2024-02-10' });
        const stored = await sql<StoredBar[]>`
          select ts, open, high, low, close, volume from market.bars where symbol = ${symbol} and timeframe = ${timeframe} order by ts`;
        expect(stored.map((b) => ({ ts: b.ts.getTime(), open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume }))).toEqual(expected);
        const whole = computeFeatures(expected, expected.map((b) => dayNumberOf(b.ts, 'nyse')), timeframe, createFeatureState()).rows;
        const features = await sql<{ ts: Date; ema_50: number | null; rsi_14: number | null; atr_14: number | null; volatility_20: number | null }[]>`
          select ts, ema_50, rsi_14, atr_14, volatility_20 from market.features where symbol = ${symbol} and timeframe = ${timeframe} order by ts`;
        expect(features.map((f) => [f.ts.getTime(), f.ema_50, f.rsi_14, f.atr_14, f.volatility_20])).toEqual(
          whole.map((f) => [f.ts, f.ema_50, f.rsi_14, f.atr_14, f.volatility_20]),
        );
      }
    }
    const [quality] = await sql<{ n: number; low: number }[]>`
      select count(*)::int as n, min(avg_quality_score)::float8 as low from enrichment.data_quality_metrics where symbol = 'AAPL' and timeframe = '1h'`;
    expect(quality?.n).toBeGreaterThan(250);
    const fetches = await sql`select count(*)::int as n from enrichment.fetch_log`;

    const again = await runBackfill(runtime, { symbols: 'AAPL,MSFT', timeframes: ['1d', '1h'], from: '2023-11-15', to: '2024-02-10' });
    expect(again).toMatchObject({ status: 'completed', chunks_skipped: 8, bars_written: 0 });
    expect(await sql`select count(*)::int as n from enrichment.fetch_log`).toEqual(fetches);
  });

  it('marks the positions its 1d bars price, however long after their dates they arrive, and has the reports showing them made again', async () => {
    runtime = await createTestRuntime('enrich-marks', [enrichmentBackfill, nightlyReport]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    const tz = runtime.workerRuntime.config.exchangeTz;
    // Account 2 buys 10 XOM on 2026-03-04 and holds; the rollups are built before any bar exists.
    await seedReference(sql);
    await insertExecutions(sql, [{ execution_id: 1, order_id: 300, account_id: 2, instrument_id: 2, executed_at: '2026-03-04T15:00:00Z', side: 'BUY', quantity: '10', price: '50' }]);
    await loadTrades({ db: sql, sourceDb: sql, tz, runPartition: 'test' });
    await rebuildRollups({ db: sql, tz, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-20' });
    const positions = () => sql<{ trade_date: string; close_price: number | null; market_value: number | null; unrealized_pnl: number | null }[]>`
      select trade_date::text, close_price::float8, market_value::float8, unrealized_pnl::float8 from warehouse.fact_positions_daily
      where account_id = 2 order by trade_date`;
    expect((await positions()).map((p) => p.close_price)).toEqual(Array(13).fill(null));
    // The nightly reports of the day before the buy and of the day after it, made then: the second shows XOM without a close.
    for (const date of ['2026-03-03', '2026-03-05']) await enqueueRun(runtime.queues, nightlyReport, { date }, { scheduledFor: new Date(`${date}T23:50:00Z`) });
    const reports = async () => new Map((await sql<{ report_date: string; json_path: string; generated_at: Date }[]>`select report_date::text, json_path, generated_at from ops.reports`).map((r) => [r.report_date, r]));
    await waitFor(async () => (await reports()).size === 2, 20_000, () => 'the reports of 03-03 and 03-05');
    const before = await reports();
    const xomClose = (date: string) => {
      const report = JSON.parse(fs.readFileSync(before.get(date)!.json_path, 'utf8')) as DailyReport;
      const close = report.accounts.find((a) => a.account_id === 2)?.positions.find((p) => p.symbol === 'XOM')?.close;
      return close === null || close === undefined ? null : Number(close);
    };
    expect(xomClose('2026-03-05')).toBeNull();

    // Months later (NOW is in November), a backfill brings XOM's daily bars for March.
    expect(await runBackfill(runtime, { symbols: 'XOM', timeframes: '1d', from: '2026-03-01', to: '2026-03-31' })).toMatchObject({ status: 'completed' });
    const closes = new Map(
      generateSyntheticBars({ symbol: 'XOM', assetClass: 'stock', timeframe: '1d', from: '2026-03-01', to: '2026-03-31' }).map((b) => [
        DateTime.fromMillis(b.ts, { zone: tz }).toISODate(),
        b.close,
      ]),
    );
    const marked = await positions();
    expect(marked).toHaveLength(13);
    for (const p of marked) {
      const close = closes.get(p.trade_date)!;
      // Exact in PostgreSQL's numeric; rounded here past the doubles' noise.
      expect(p).toEqual({ trade_date: p.trade_date, close_price: close, market_value: Number((10 * close).toFixed(6)), unrealized_pnl: Number((10 * close - 500).toFixed(6)) });
    }
    // The report of 03-05 is made again from the first marked date (03-04) on, and shows the close; 03-03's stands.
    await waitFor(async () => (await reports()).get('2026-03-05')!.generated_at > before.get('2026-03-05')!.generated_at, 20_000, () => 'the report of 03-05 to be made again');
    expect(xomClose('2026-03-05')).toBe(closes.get('2026-03-05'));
    expect((await reports()).get('2026-03-03')!.generated_at).toEqual(before.get('2026-03-03')!.generated_at);
    // As a full rebuild marks them.
    await rebuildRollups({ db: sql, tz, startingCapital: 100000, scope: { kind: 'full' }, asOf: '2026-03-20' });
    expect(await positions()).toEqual(marked);
  });

  it('a range filled before an earlier one gets the features it would have had: those after the earlier range are recomputed', async () => {
    runtime = await createTestRuntime('enrich-order', [enrichmentBackfill]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    // 2024 first, with nothing stored before it; then 2022–2023.
    expect(await runBackfill(runtime, { symbols: 'AAPL', timeframes: '1d', from: '2024-01-01', to: '2024-12-31' })).toMatchObject({ status: 'completed' });
    expect(await runBackfill(runtime, { symbols: 'AAPL', timeframes: '1d', from: '2022-01-01', to: '2023-12-31' })).toMatchObject({ status: 'completed', error: null });
    const bars = generateSyntheticBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1d', from: '2022-01-01', to: '2024-12-31' });
    const whole = computeFeatures(bars, bars.map((b) => dayNumberOf(b.ts, 'nyse')), '1d', createFeatureState()).rows;
    const features = await sql<{ ts: Date; sma_50: number | null; ema_50: number | null; rsi_14: number | null; atr_14: number | null; market_structure: string | null }[]>`
      select ts, sma_50, ema_50, rsi_14, atr_14, market_structure from market.features where symbol = 'AAPL' and timeframe = '1d' order by ts`;
    expect(features.map((f) => [f.ts.getTime(), f.sma_50, f.ema_50, f.rsi_14, f.atr_14, f.market_structure])).toEqual(
      whole.map((f) => [f.ts, f.sma_50, f.ema_50, f.rsi_14, f.atr_14, f.market_structure]),
    );
  });

  it('recomputed features are made from bars read under the series write lock: a concurrent chunk write cannot slip in between', async () => {
    const db = await createTestDatabase();
    const holder = await db.sql.reserve();
    try {
      // Another backfill of the series in the middle of writing a chunk.
      await holder`begin`;
      await holder`select pg_advisory_xact_lock(hashtext('enrichment:AAPL:1d'))`;
      let readAt: number | null = null;
      const replacing = replaceFeatures(db.sql, 'AAPL', '1d', async () => {
        readAt = Date.now();
        return [];
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(readAt).toBeNull();
      const released = Date.now();
      await holder`commit`;
      expect(await replacing).toBe(0);
      expect(readAt).toBeGreaterThanOrEqual(released);
    } finally {
      holder.release();
      await db.drop();
    }
  });

  it('enrichment-daily brings every tracked symbol from its newest bar to yesterday as one backfill', async () => {
    runtime = await createTestRuntime('enrich-daily', [enrichmentBackfill, enrichmentDaily]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    // A universe of three instead of the seeded one.
    await sql`delete from market.sector_mapping`;
    await sql`insert into market.sector_mapping (symbol, sector_name, sector_etf, asset_class) values
      ('AAPL', 'Information Technology', 'XLK', 'stock'), ('XLK', 'Information Technology', null, 'etf'), ('BTCUSD', 'Crypto', null, 'crypto')`;
    // AAPL is enriched through 2026-11-13 already; the daily run must only add what follows.
    const first = await runBackfill(runtime, { symbols: 'AAPL', timeframes: '1d', from: '2026-10-01', to: '2026-11-13' });
    expect(first.status).toBe('completed');

    const run = await enqueueRun(runtime.queues, enrichmentDaily, { date: '2026-11-19' });
    const summary = await dailySummary(sql, run.partition);
    expect(summary).toMatchObject({ symbols: 3, to: '2026-11-19' });
    let report: BackfillReport | undefined;
    await waitFor(async () => {
      report = await describeBackfill(sql, String(summary?.backfillId));
      return report?.status === 'completed';
    }, 60_000, () => JSON.stringify(report));
    expect(report).toMatchObject({ requested_by: 'enrichment-daily', timeframes: ['1d'], to: '2026-11-19' });

    const last = await sql<{ symbol: string; last: string; n: number }[]>`
      select symbol, to_char(max(ts) at time zone 'UTC', 'YYYY-MM-DD HH24:MI') as last, count(*)::int as n from market.bars where timeframe = '1d' group by symbol order by symbol`;
    expect(last.map((r) => r.symbol)).toEqual(['AAPL', 'BTCUSD', 'XLK']);
    // Stocks end on the Wednesday's session; the coin trades every day.
    expect(last.find((r) => r.symbol === 'AAPL')?.last).toBe('2026-11-19 05:00');
    expect(last.find((r) => r.symbol === 'BTCUSD')?.last).toBe('2026-11-19 00:00');
    const aapl = generateSyntheticBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1d', from: '2026-01-01', to: '2026-11-19' });
    expect(last.find((r) => r.symbol === 'AAPL')?.n).toBe(aapl.length);
  });

  it('enrichment-daily fetches again the chunk of a last bar that was fetched before its session closed', async () => {
    runtime = await createTestRuntime('enrich-daily-partial', [enrichmentBackfill, enrichmentDaily]);
    runtime.startWorkers();
    const sql = runtime.db.sql;
    await sql`delete from market.sector_mapping`;
    await sql`insert into market.sector_mapping (symbol, sector_name, sector_etf, asset_class) values ('AAPL', 'Information Technology', 'XLK', 'stock')`;
    expect((await runBackfill(runtime, { symbols: 'AAPL', timeframes: '1d', from: '2026-10-01', to: '2026-11-19' })).status).toBe('completed');
    // As a request made at noon on the 19th would have left it: a partial last bar, the day not covered.
    const last = new Date('2026-11-19T05:00:00Z');
    await sql`update market.bars set close = close + 1, high = high + 1 where symbol = 'AAPL' and timeframe = '1d' and ts = ${last}`;
    await sql`update enrichment.chunks set covered_to = '2026-11-18' where symbol = 'AAPL' and timeframe = '1d' and chunk_start = '2026-01-01'`;

    const run = await enqueueRun(runtime.queues, enrichmentDaily, { date: '2026-11-19' });
    const summary = await dailySummary(sql, run.partition);
    expect(summary).toMatchObject({ symbols: 1, from: '2026-11-19', to: '2026-11-19' });
    let report: BackfillReport | undefined;
    await waitFor(async () => {
      report = await describeBackfill(sql, String(summary?.backfillId));
      return report?.status === 'completed';
    }, 60_000, () => JSON.stringify(report));
    expect(report).toMatchObject({ chunks_done: 1, chunks_skipped: 0 });
    const [bar] = await sql<{ close: number }[]>`select close from market.bars where symbol = 'AAPL' and timeframe = '1d' and ts = ${last}`;
    expect(bar?.close).toBe(generateSyntheticBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1d', from: '2026-11-19', to: '2026-11-19' })[0]?.close);
  });

  it('a day fetched before its session closed is not covered: a later request fetches its chunk again and gets the whole day', async () => {
    testDb = await createTestDatabase();
    const sql = testDb.sql;
    const minutesOn = async (date: string) => {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from market.bars where symbol = 'AAPL' and timeframe = '1m' and (ts at time zone 'America/New_York')::date = ${date}::date`;
      return row?.n;
    };
    // Noon in New York on Wednesday 31 January, the last day of its monthly chunk; `to` defaults to today.
    const clock = { now: Date.parse('2024-01-31T17:00:00Z') };
    expect(await runClocked(testDb, clock, { symbols: 'AAPL', timeframes: '1m', from: '2024-01-31' })).toMatchObject({ status: 'completed', to: '2024-01-31' });
    expect(await minutesOn('2024-01-31')).toBe(150);
    expect(await ledgerCoveredTo(sql, '1m', '2024-01-01')).toBe('2024-01-30');

    // 01:30 the next night, through the 31st: the chunk is fetched again.
    clock.now = Date.parse('2024-02-01T06:30:00Z');
    expect(await runClocked(testDb, clock, { symbols: 'AAPL', timeframes: '1m', from: '2024-01-31', to: '2024-01-31' })).toMatchObject({ status: 'completed', chunks_skipped: 0 });
    expect(await minutesOn('2024-01-31')).toBe(390);
    expect(await ledgerCoveredTo(sql, '1m', '2024-01-01')).toBe('2024-01-31');

    // A week later: January is complete now and skipped; February is fetched.
    clock.now = Date.parse('2024-02-08T17:00:00Z');
    expect(await runClocked(testDb, clock, { symbols: 'AAPL', timeframes: '1m', from: '2024-01-01', to: '2024-02-07' })).toMatchObject({ status: 'completed', chunks_skipped: 1 });
    const stored = await sql<StoredBar[]>`select ts, open, high, low, close, volume from market.bars where symbol = 'AAPL' and timeframe = '1m' order by ts`;
    expect(stored.map((b) => ({ ts: b.ts.getTime(), open: b.open, high: b.high, low: b.low, close: b.close, volume: b.volume }))).toEqual(
      generateSyntheticBars({ symbol: 'AAPL', assetClass: 'stock', timeframe: '1m', from: '2024-01-01', to: '2024-02-07' }),
    );
  });

  it('a day fetched from 15-minute delayed data (polygon DELAYED) within 15 minutes of its close is neither covered nor fresh', async () => {
    fake = await startFakePolygon({ status: 'DELAYED' });
    testDb = await createTestDatabase();
    const sql = testDb.sql;
    const polygon = createPolygonProvider({ apiKey: fake.apiKey, baseUrl: fake.url });
    const input = { symbols: 'AAPL', timeframes: '1d', from: '2024-06-03', to: '2024-06-14', source: 'polygon' };
    const freshnessOf14June = async () => {
      const [row] = await sql<{ freshness: string }[]>`
        select freshness::text from enrichment.data_quality_metrics where symbol = 'AAPL' and timeframe = '1d' and metric_date = '2024-06-14'`;
      return Number(row?.freshness);
    };
    // Friday 14 June, 16:05 New York: the plan's data runs to about 15:50, before the close.
    const clock = { now: Date.parse('2024-06-14T20:05:00Z') };
    expect(await runClocked(testDb, clock, input, polygon)).toMatchObject({ status: 'completed' });
    expect(await ledgerCoveredTo(sql, '1d', '2024-01-01')).toBe('2024-06-13');
    expect(await freshnessOf14June()).toBe(0.5);

    // 16:20: its data runs past the close now, so the chunk is fetched again and Friday is final.
    clock.now = Date.parse('2024-06-14T20:20:00Z');
    expect(await runClocked(testDb, clock, input, polygon)).toMatchObject({ status: 'completed', chunks_skipped: 0 });
    expect(await ledgerCoveredTo(sql, '1d', '2024-01-01')).toBe('2024-06-14');
    expect(await freshnessOf14June()).toBe(1);
  });

  it("1w: a series brought to today's close is current, not stale: its newest bar holds every session of its week up to the fetch", async () => {
    testDb = await createTestDatabase();
    // Friday 14 June 2024, 17:00 New York. The newest bar opens Monday 10 June; counted from
    // there, the symbol would be 4 sessions behind, "stale".
    const clock = { now: Date.parse('2024-06-14T21:00:00Z') };
    expect(await runClocked(testDb, clock, { symbols: 'AAPL', timeframes: '1w', from: '2019-01-01', to: '2024-06-14' })).toMatchObject({ status: 'completed' });
    const status = await loadEnrichmentStatus(testDb.sql, 'AAPL', { now: clock.now, nextEnrichment: null });
    expect(status.quality_score).toBeGreaterThan(0.9);
    expect(status.status).toBe('healthy');
    // A week on, nothing fetched since: 4 sessions behind (19 June was a holiday), stale.
    expect(await loadEnrichmentStatus(testDb.sql, 'AAPL', { now: Date.parse('2024-06-21T21:00:00Z'), nextEnrichment: null })).toMatchObject({ status: 'stale' });
  });

  it('1w: a week not over when fetched is fetched again, even when its chunk ends before the week does', async () => {
    testDb = await createTestDatabase();
    const sql = testDb.sql;
    const weekOf30Dec = async () => {
      const [row] = await sql<{ close: number; volume: number }[]>`
        select close, volume from market.bars where symbol = 'AAPL' and timeframe = '1w' and ts = ${new Date(barOpen(Date.parse('2024-12-30T17:00:00Z'), '1w', 'nyse'))}`;
      return row;
    };
    // New Year's Day 2025, through Tuesday 31 December: the week of Monday 30 December has had two sessions.
    const clock = { now: Date.parse('2025-01-01T17:00:00Z') };
    expect(await runClocked(testDb, clock, { symbols: 'AAPL', timeframes: '1w', from: '2024-12-01', to: '2024-12-31' })).toMatchObject({ status: 'completed' });
    const partial = weeksAsOf('AAPL', '2024-12-30', '2024-12-30', clock.now)[0];
    expect(await weekOf30Dec()).toEqual({ close: partial?.close, volume: partial?.volume });
    expect(await ledgerCoveredTo(sql, '1w', '2024-01-01')).toBe('2024-12-29');

    // A week later, through Monday 6 January: the 2024 chunk holds that week's Monday, so it is fetched again.
    clock.now = Date.parse('2025-01-08T17:00:00Z');
    expect(await runClocked(testDb, clock, { symbols: 'AAPL', timeframes: '1w', from: '2024-12-01', to: '2025-01-06' })).toMatchObject({ status: 'completed', chunks_skipped: 0 });
    const whole = weeksAsOf('AAPL', '2024-12-30', '2024-12-30', Date.parse('2025-02-01T00:00:00Z'))[0];
    expect(whole?.close).not.toBe(partial?.close);
    expect(await weekOf30Dec()).toEqual({ close: whole?.close, volume: whole?.volume });
    expect(await ledgerCoveredTo(sql, '1w', '2024-01-01')).toBe('2024-12-31');
  });
});
