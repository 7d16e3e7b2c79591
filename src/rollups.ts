/**
 * Builds the rollups from warehouse.fact_trades (the build-rollups job; DESIGN.md
 * "Definitions"). One transaction under one advisory lock, so runs never interleave and
 * readers see the old rows until the new ones commit; the materialized views are refreshed
 * CONCURRENTLY after it.
 *
 *   scope 'pending'  the (date, account) partitions the trade ETL requested (ops.rollup_requests)
 *   scope 'range'    every (date, account) with facts or rollup rows in from..to
 *   scope 'full'     everything
 *
 * Daily-grain tables are rebuilt for the partitions; the equity curve, metrics, positions
 * and months of each account from its earliest partition date on (they carry forward), and
 * every curve is extended to the as-of date: the latest of the dates rebuilt, the previous
 * as-of date and `asOf` (the nightly run passes today).
 */
import type { Sql } from './db.ts';
import type { Logger } from './logger.ts';
import { ensureDimDates } from './queries/dimensions.ts';
import {
  addRangeWork,
  clearAccountRows,
  clearDailyRows,
  copyMetrics,
  createWorkTables,
  dropAllRequests,
  insertEquityCurve,
  insertInstrumentDaily,
  insertMonthly,
  insertPerformanceBuckets,
  insertPerformanceDaily,
  insertPositions,
  loadAccountPlans,
  loadCurve,
  loadWorkBounds,
  lockRollups,
  planAccounts,
  refreshMaterializedViews,
  takePendingRequests,
  type CurveRowRecord,
} from './queries/rollups.ts';
import { METRIC_WINDOWS, metricsSeries, type CurveRow, type WindowMetrics } from './analytics/metrics.ts';

export type RollupScope = { kind: 'pending' } | { kind: 'range'; from: string; to: string } | { kind: 'full' };

export interface BuildRollupsOptions {
  db: Sql;
  /** EXCHANGE_TZ: trading dates and the end of a day are read there. */
  tz: string;
  /** STARTING_CAPITAL for accounts without a row in warehouse.account_capital. */
  startingCapital: number;
  scope: RollupScope;
  /** Extend every curve at least to this date (ISO); the nightly run passes today. */
  asOf?: string;
  logger?: Logger;
}

export interface RollupSummary {
  scope: RollupScope['kind'];
  /** (date, account) partitions rebuilt at daily grain (a full rebuild: every one there is). */
  partitions: number;
  from: string | null;
  to: string | null;
  asOf: string | null;
  /** Accounts whose curve, metrics, positions and months were rebuilt from some date on. */
  accounts: number;
  rows: {
    performanceDaily: number;
    buckets: number;
    instrumentDaily: number;
    equityCurve: number;
    metrics: number;
    positions: number;
    monthly: number;
  };
  /** Σ rows, what analytics_rollups_built_total counts. */
  rowsWritten: number;
  phaseMs: Record<string, number>;
}

export async function rebuildRollups(options: BuildRollupsOptions): Promise<RollupSummary> {
  const { db, tz, scope } = options;
  const full = scope.kind === 'full';
  const phaseMs: Record<string, number> = {};
  const timed = async <T>(phase: string, fn: () => Promise<T>): Promise<T> => {
    const start = process.hrtime.bigint();
    try {
      return await fn();
    } finally {
      phaseMs[phase] = (phaseMs[phase] ?? 0) + Math.round(Number(process.hrtime.bigint() - start) / 1e5) / 10;
    }
  };
  const rows = { performanceDaily: 0, buckets: 0, instrumentDaily: 0, equityCurve: 0, metrics: 0, positions: 0, monthly: 0 };
  const summary: RollupSummary = { scope: scope.kind, partitions: 0, from: null, to: null, asOf: null, accounts: 0, rows, rowsWritten: 0, phaseMs };

  await db.begin(async (tx) => {
    await timed('lock', () => lockRollups(tx));
    await createWorkTables(tx);
    await timed('work', async () => {
      if (scope.kind === 'pending') await takePendingRequests(tx);
      else if (scope.kind === 'range') await addRangeWork(tx, scope.from, scope.to);
      else await dropAllRequests(tx);
    });
    const bounds = await loadWorkBounds(tx, full);
    summary.partitions = bounds.partitions;
    summary.from = bounds.from;
    summary.to = bounds.to;
    const asOf = latestDate([bounds.curveEnd, bounds.to, bounds.factsEnd, options.asOf ?? null]);
    summary.asOf = asOf;
    if (asOf === null) return; // no facts and no curve: nothing to build
    await ensureDimDates(tx, asOf, asOf);

    if (full || bounds.partitions > 0) {
      await clearDailyRows(tx, full);
      rows.performanceDaily = await timed('performance_daily', () => insertPerformanceDaily(tx, full));
      rows.buckets = await timed('buckets', () => insertPerformanceBuckets(tx, full));
      rows.instrumentDaily = await timed('instrument_daily', () => insertInstrumentDaily(tx, full));
    }
    summary.accounts = await timed('plan', () => planAccounts(tx, full, asOf, options.startingCapital));
    if (summary.accounts === 0) return;
    await timed('clear', () => clearAccountRows(tx));
    rows.equityCurve = await timed('equity_curve', () => insertEquityCurve(tx, asOf, tz));
    rows.metrics = await timed('metrics', async () => {
      // One COPY per few MB, not per account: each COPY costs a round trip and a flush.
      let written = 0;
      let pending = '';
      for (const plan of await loadAccountPlans(tx)) {
        const curve = await loadCurve(tx, plan.account_id);
        const { text, count } = metricRowsText(curve, plan.capital, plan.from_date);
        pending += text;
        written += count;
        if (pending.length > 4_000_000) {
          await copyMetrics(tx, pending);
          pending = '';
        }
      }
      await copyMetrics(tx, pending);
      return written;
    });
    rows.positions = await timed('positions', () => insertPositions(tx, full, tz));
    rows.monthly = await timed('monthly', () => insertMonthly(tx));
  });
  if (summary.asOf !== null) await timed('materialized_views', () => refreshMaterializedViews(db));
  summary.rowsWritten = Object.values(rows).reduce((a, b) => a + b, 0);
  options.logger?.debug({ phaseMs }, 'rollup phases');
  return summary;
}

/** The latest of some ISO dates (they compare as strings), or null when there is none. */
export function latestDate(dates: ReadonlyArray<string | null>): string | null {
  let latest: string | null = null;
  for (const date of dates) if (date !== null && (latest === null || date > latest)) latest = date;
  return latest;
}

/**
 * performance_metrics rows (COPY text) for every curve date from `fromDate` on. Returns stop
 * at a row whose previous equity was not positive (daily_return NULL: a wiped-out account);
 * from there on the rows carry the window's length and NULL metrics.
 */
export function metricRowsText(curve: readonly CurveRowRecord[], capital: number, fromDate: string): { text: string; count: number } {
  let fromIndex = curve.findIndex((row) => row.date >= fromDate);
  if (fromIndex === -1) return { text: '', count: 0 };
  let usable = curve.findIndex((row) => row.daily_return === null);
  if (usable === -1) usable = curve.length;
  const rows: CurveRow[] = curve.slice(0, usable).map((r) => ({
    netPnl: r.net_pnl,
    equity: r.equity,
    dailyReturn: r.daily_return as number,
    realizedPnl: r.realized_pnl,
    winningTrades: r.winning_trades,
    losingTrades: r.losing_trades,
    grossProfit: r.gross_profit,
    grossLoss: r.gross_loss,
  }));
  let text = '';
  let count = 0;
  const line = (index: number, window: string, days: number, m: WindowMetrics | null): void => {
    const row = curve[index] as CurveRowRecord;
    const start = curve[index - days + 1] as CurveRowRecord;
    const values = m === null
      ? [null, null, null, null, null, null, null, null, null, 0, null, null]
      : [m.sharpe, m.sortino, m.calmar, m.annualReturn, m.maxDrawdown, m.profitFactor, m.recoveryFactor, m.winRate, m.expectancy, m.longestLosingStreak, m.var95, m.var99];
    text += `${row.account_id}\t${window}\t${row.date}\t${row.account_key}\t${start.date}\t${days}\t${values.map((v) => (v === null ? '\\N' : String(v))).join('\t')}\n`;
    count++;
  };
  if (fromIndex < usable) {
    for (const { index, window, metrics } of metricsSeries(rows, capital, fromIndex)) line(index, window, metrics.days, metrics);
    fromIndex = usable;
  }
  for (let index = fromIndex; index < curve.length; index++) {
    for (const window of METRIC_WINDOWS) line(index, window.name, Math.min(window.rows, index + 1), null);
  }
  return { text, count };
}
