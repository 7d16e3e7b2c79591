/**
 * Builds the rollups from warehouse.fact_trades (the build-rollups job; DESIGN.md
 * "Definitions"). One transaction under one advisory lock, so runs never interleave and
 * readers see the old rows until the new ones commit; the materialized views are refreshed
 * CONCURRENTLY inside it, so they commit with the tables they summarise.
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
  analyzeRebuilt,
  clearAccountRows,
  clearDailyRows,
  insertMetrics,
  dropAllRequests,
  insertEquityCurve,
  insertAllDaily,
  insertMonthly,
  insertWorkDaily,
  insertPositions,
  loadCurves,
  markPositions,
  MARK_POSITIONS_DAYS,
  loadRollupState,
  lockRollups,
  planAccounts,
  refreshMaterializedViews,
  takePendingRequests,
  type AccountPlan,
  type CurveRowRecord,
  type MetricRecord,
  type DailyWork,
  type MarkScope,
  type MarkedPositions,
  type WorkSet,
} from './queries/rollups.ts';
import { METRIC_WINDOWS, metricsSeries, type CurveRow, type WindowMetrics } from './analytics/metrics.ts';
import { dayNumberOfIsoDate, isoDateOfDayNumber } from './analytics/timeframes.ts';

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
  /** The first run on a warehouse with facts but no rollups rebuilds everything, whatever its scope. */
  promotedToFull: boolean;
  /** (date, account) partitions rebuilt at daily grain (a full rebuild: every one there is). */
  partitions: number;
  from: string | null;
  to: string | null;
  /**
   * The first date of the positions this run marked at a 1d close that arrived after their date
   * was rolled up (rows.positionsMarked), or null. Their stored reports showed them unmarked.
   */
  markedFrom: string | null;
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
    /** Earlier positions marked at a 1d close that arrived after their date was rolled up. */
    positionsMarked: number;
    monthly: number;
  };
  /** Σ rows, what analytics_rollups_built_total counts. */
  rowsWritten: number;
  phaseMs: Record<string, number>;
}

export async function rebuildRollups(options: BuildRollupsOptions): Promise<RollupSummary> {
  const { db, tz, scope } = options;
  let full = scope.kind === 'full';
  const phaseMs: Record<string, number> = {};
  // Milliseconds to one decimal.
  const msSince = (start: bigint) => Math.round(Number(process.hrtime.bigint() - start) / 1e5) / 10;
  const timed = async <T>(phase: string, fn: () => Promise<T>): Promise<T> => {
    const start = process.hrtime.bigint();
    try {
      return await fn();
    } finally {
      phaseMs[phase] = (phaseMs[phase] ?? 0) + msSince(start);
    }
  };
  const rows = { performanceDaily: 0, buckets: 0, instrumentDaily: 0, equityCurve: 0, metrics: 0, positions: 0, positionsMarked: 0, monthly: 0 };
  const summary: RollupSummary = { scope: scope.kind, promotedToFull: false, partitions: 0, from: null, to: null, markedFrom: null, asOf: null, accounts: 0, rows, rowsWritten: 0, phaseMs };
  const markRecent = async (tx: Parameters<typeof markPositions>[0], asOf: string): Promise<void> => {
    const marked = await timed('mark_positions', () => markPositions(tx, tz, recentDays(asOf)));
    rows.positionsMarked = marked.rows;
    summary.markedFrom = marked.from;
  };

  const started = process.hrtime.bigint();
  let bodyEnded = started;
  await db.begin(async (tx) => {
    const state = await timed('begin', async () => {
      await lockRollups(tx);
      return loadRollupState(tx, full);
    });
    if (!full && state.neverRolledUp) {
      full = true;
      summary.promotedToFull = true;
    }
    // null for a full rebuild, which has no work set: it covers everything.
    const workSet = await timed('work', async (): Promise<WorkSet | null> => {
      if (full) {
        await dropAllRequests(tx);
        return null;
      }
      return scope.kind === 'range' ? addRangeWork(tx, scope.from, scope.to) : takePendingRequests(tx);
    });
    // The work set comes ordered by date.
    const from = workSet?.dates[0] ?? null;
    const to = workSet?.dates.at(-1) ?? null;
    summary.partitions = workSet?.dates.length ?? 0;
    summary.from = from;
    summary.to = to;
    const asOf = latestDate([state.curveEnd, to, full ? state.factsEnd : null, options.asOf ?? null]);
    summary.asOf = asOf;
    if (asOf === null) return; // no facts and no curve: nothing to build
    // A curve ending at the as-of date was built over its dim_date row (the curve joins it).
    if (asOf !== state.curveEnd) await timed('dim_dates', () => ensureDimDates(tx, asOf, asOf));

    const daily: DailyWork | null = workSet === null ? { full: true } : from !== null && to !== null ? { full: false, work: workSet, from, to, wholeDays: scope.kind === 'range' } : null;
    if (daily !== null) {
      await timed('clear', () => clearDailyRows(tx, daily));
      Object.assign(rows, await timed('daily', () => (daily.full ? insertAllDaily(tx) : insertWorkDaily(tx, daily))));
      if (full) await timed('analyze', () => analyzeRebuilt(tx, {
          'warehouse.fact_performance_daily': ['trade_date', 'date_key', 'account_id', 'account_key', 'strategy_key'],
          'warehouse.fact_instrument_daily': ['trade_date', 'instrument_key'],
        }));
    }
    const work = await timed('plan', () => planAccounts(tx, workSet, asOf, options.startingCapital));
    summary.accounts = work.rows.length;
    if (summary.accounts === 0) {
      // Nothing to rebuild, but the views label rows with the current dimension versions, and
      // bars that arrived since the last run mark earlier positions.
      await markRecent(tx, asOf);
      await timed('materialized_views', () => refreshMaterializedViews(tx));
      return;
    }
    await timed('clear', () => clearAccountRows(tx, work));
    rows.equityCurve = await timed('equity_curve', () => insertEquityCurve(tx, work, asOf, tz));
    if (full) await timed('analyze', () => analyzeRebuilt(tx, { 'warehouse.equity_curve': ['account_id', 'date'] }));
    const plans = work.plans;
    const chunks: AccountPlan[][] = [];
    for (let i = 0; i < plans.length; i += CURVES_PER_READ) chunks.push(plans.slice(i, i + CURVES_PER_READ));
    // The first curves are asked for before positions, months and the views, which then run in
    // PostgreSQL while the metrics are computed here: statements issued together queue on the
    // transaction's connection (postgres.js pipelines them), and none of the four reads what
    // another writes. Their phase times overlap.
    const firstCurves = chunks.length > 0 ? loadCurves(tx, chunks[0]!.map((p) => p.account_id)) : null;
    const [metrics, positions, monthly] = await Promise.all([
      timed('metrics', async () => {
        // One statement per batch of accounts, not per account: each costs a round trip.
        let written = 0;
        for (const [i, chunk] of chunks.entries()) {
          const curves = await (i === 0 && firstCurves ? firstCurves : loadCurves(tx, chunk.map((p) => p.account_id)));
          const pending: MetricRecord[] = [];
          for (const plan of chunk) {
            pending.push(...metricRows(curves.get(plan.account_id)?.() ?? [], plan.capital, plan.start_date));
            // A turn of the event loop per account: replies to the statements queued behind the
            // curves are answered at once, so PostgreSQL is not left waiting while this computes.
            await new Promise((resolve) => setImmediate(resolve));
          }
          await insertMetrics(tx, pending);
          written += pending.length;
        }
        return written;
      }),
      timed('positions', async () => {
        const inserted = await insertPositions(tx, full, work, tz);
        // After the insert, which marks its own rows: this reaches the dates before it, whose bar
        // came after they were rolled up. A full rebuild has just marked every row it could.
        if (!full) await markRecent(tx, asOf);
        return inserted;
      }),
      timed('monthly', () => insertMonthly(tx, work)),
      timed('materialized_views', () => refreshMaterializedViews(tx)),
    ]);
    rows.metrics = metrics;
    rows.positions = positions;
    rows.monthly = monthly;
    bodyEnded = process.hrtime.bigint();
  });
  if (bodyEnded > started) phaseMs.commit = msSince(bodyEnded);
  summary.rowsWritten = Object.values(rows).reduce((a, b) => a + b, 0);
  options.logger?.debug({ phaseMs }, 'rollup phases');
  return summary;
}

/** The positions every run marks: those of its last MARK_POSITIONS_DAYS days. */
const recentDays = (asOf: string): MarkScope => ({ from: isoDateOfDayNumber(dayNumberOfIsoDate(asOf) - (MARK_POSITIONS_DAYS - 1)) });

/** How long markPositionsOf waits for a rebuild in progress. */
const MARK_LOCK_TIMEOUT = '60s';

/**
 * Marks the unmarked positions of one symbol over some dates at the 1d bars a backfill has just
 * stored there (enrichment-backfill, after each 1d chunk): bars fetched more than a few days
 * late are past what rebuilds mark. Answers how many it marked and the first of their dates, from
 * which the stored reports are out of date. Under the rollups lock, so that it never interleaves with a
 * rebuild rewriting those rows (which could leave them unmarked, or deadlock); it waits
 * MARK_LOCK_TIMEOUT at most, then fails with PostgreSQL's lock_not_available (55P03).
 */
export async function markPositionsOf(db: Sql, tz: string, scope: Required<MarkScope>): Promise<MarkedPositions> {
  return db.begin(async (tx) => {
    await tx`select set_config('lock_timeout', ${MARK_LOCK_TIMEOUT}, true)`;
    await lockRollups(tx);
    return markPositions(tx, tz, scope);
  });
}

/** Accounts whose curves one query reads: bounds memory (a 10-year curve is ~2,500 rows) and round trips. */
const CURVES_PER_READ = 100;

/** The latest of some ISO dates (they compare as strings), or null when there is none. */
export function latestDate(dates: ReadonlyArray<string | null>): string | null {
  let latest: string | null = null;
  for (const date of dates) if (date !== null && (latest === null || date > latest)) latest = date;
  return latest;
}

/**
 * performance_metrics rows for every curve date from `fromDate` on. Returns stop at a row
 * whose previous equity was not positive (daily_return NULL: a wiped-out account); from
 * there on the rows carry the window's length and NULL metrics.
 */
export function metricRows(curve: readonly CurveRowRecord[], capital: number, fromDate: string): MetricRecord[] {
  let fromIndex = curve.findIndex((row) => row.date >= fromDate);
  if (fromIndex === -1) return [];
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
  const out: MetricRecord[] = [];
  const add = (index: number, window: string, days: number, m: WindowMetrics | null): void => {
    const row = curve[index] as CurveRowRecord;
    out.push({
      account_id: row.account_id,
      window_name: window,
      as_of_date: row.date,
      account_key: row.account_key,
      window_start: (curve[index - days + 1] as CurveRowRecord).date,
      days,
      sharpe: m?.sharpe ?? null,
      sortino: m?.sortino ?? null,
      calmar: m?.calmar ?? null,
      annual_return: m?.annualReturn ?? null,
      max_drawdown: m?.maxDrawdown ?? null,
      profit_factor: m?.profitFactor ?? null,
      recovery_factor: m?.recoveryFactor ?? null,
      win_rate: m?.winRate ?? null,
      expectancy: m?.expectancy ?? null,
      longest_losing_streak: m?.longestLosingStreak ?? 0,
      var_95: m?.var95 ?? null,
      var_99: m?.var99 ?? null,
    });
  };
  if (fromIndex < usable) {
    for (const { index, window, metrics } of metricsSeries(rows, capital, fromIndex)) add(index, window, metrics.days, metrics);
    fromIndex = usable;
  }
  for (let index = fromIndex; index < curve.length; index++) {
    for (const window of METRIC_WINDOWS) add(index, window.name, Math.min(window.rows, index + 1), null);
  }
  return out;
}
