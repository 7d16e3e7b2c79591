/**
 * Enrichment backfills end to end: a request fans out as a flow, series run in chunk steps on
 * real BullMQ and PostgreSQL, and what lands in market.bars / market.features equals the
 * source and the features of the whole series; the ledger keeps a second request from fetching.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { computeFeatures, createFeatureState } from '../../src/analytics/features.ts';
import { dayNumberOf } from '../../src/analytics/timeframes.ts';
import { createBackfill, createFlowEnqueuer, describeBackfill, planBackfill, type BackfillPlan, type BackfillReport } from '../../src/enrichment/backfills.ts';
import { generateSyntheticBars } from '../../src/enrichment/providers/synthetic.ts';
import { enqueueRun } from '../../src/enqueue.ts';
import { enrichmentBackfill } from '../../jobs/enrichment-backfill.ts';
import { enrichmentDaily } from '../../jobs/enrichment-daily.ts';
import { replaceFeatures } from '../../src/queries/enrichment.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { waitFor } from '../helpers/processes.ts';
import { createTestRuntime, type TestRuntime } from '../helpers/runtime.ts';

let runtime: TestRuntime | undefined;

afterEach(async () => {
  await runtime?.close();
  runtime = undefined;
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

interface StoredBar {
  ts: Date;
  open: number;
  high: number;
  low: number;
  close: number;
  volume: number;
}

describe('enrichment backfills', () => {
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
    let summary: Record<string, unknown> | undefined;
    await waitFor(async () => {
      const [row] = await sql<{ status: string; summary: Record<string, unknown> }[]>`select status, summary from ops.job_runs where job = 'enrichment-daily' and partition = ${run.partition}`;
      summary = row?.status === 'succeeded' ? row.summary : undefined;
      return summary !== undefined;
    }, 30_000);
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
});
