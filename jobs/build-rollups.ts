/**
 * build-rollups: daily and monthly performance, the equity curve and drawdown, performance
 * metrics, daily positions, time buckets and the materialized views (src/rollups.ts does the
 * work). Reads warehouse.fact_trades, market.bars (1d closes) and ops.rollup_requests; writes
 * the rollup tables in one transaction, then refreshes the views concurrently.
 *
 * What a run rebuilds, by payload:
 *   {"pending": true}           the (date, account) partitions the trade ETL requested
 *   {"date": "2026-11-20"}      that trading date, every account; the curve reaches it
 *   {"from": …, "to": …}        every date in the range (either end may be left out)
 *   {"full": true}              everything
 *   nothing (the nightly tick)  the tick's date in New York (its partition), so every curve reaches it
 * Every run also marks earlier positions whose 1d bar has arrived since (their close was NULL).
 * Partition: that scope (a restatement's with when it was asked for). A rebuild replaces rows, so a rerun is harmless.
 * Once committed, every stored nightly report from the first restated date on gets a forced
 * nightly-report run, so late fills reach its report and the later ones whose equity, drawdown
 * and ratios they changed; so does every one from the first date whose positions the run marked
 * at a late bar (their close, market value and unrealized PnL). These remakes go on the reports
 * queue behind the scheduled tick's run, however many there are.
 */
import { z } from 'zod';
import { tickDate, tickPartition } from '../src/cron.ts';
import { BadInputError } from '../src/errors.ts';
import { basePayload, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';
import { askForReportRemakes, outdatedReportsFrom } from '../src/reports/remakes.ts';
import { rebuildRollups, type RollupScope } from '../src/rollups.ts';

const payload = basePayload.extend({
  date: payloadDate.optional(),
  from: payloadDate.optional(),
  to: payloadDate.optional(),
  full: z.boolean().optional(),
  /** Rebuild the (date, account) partitions listed in ops.rollup_requests (what trade-etl enqueues). */
  pending: z.boolean().optional(),
  /** The run that asked for a pending rebuild, e.g. `trade-etl@2026-11-21T062500Z`; names the partition. */
  trigger: z.string().min(1).max(200).optional(),
});

/**
 * The schedule's zone, which also names a nightly tick's date: that date is the partition and
 * what the run rebuilds, whatever EXCHANGE_TZ is (with EXCHANGE_TZ=Europe/London, the 23:30 New
 * York tick is 04:30 of the next London day; the day to restate is the one that just ended).
 */
const SCHEDULE_TZ = 'America/New_York';

/** The earliest date a range without `from` starts at: before any trade a desk could hold. */
const BEGINNING = '1900-01-01';

export const buildRollups = defineJob({
  name: 'build-rollups',
  queue: 'rollups',
  description: 'Daily/monthly performance, equity curve, drawdown, metrics, positions, time buckets, materialized views',
  payload,
  schedule: { cron: '30 23 * * *', tz: SCHEDULE_TZ, calendar: 'all', overlap: 'skip' },
  // A restatement (everything, a range) is asked for when something changed that the runs before
  // it did not see (a starting capital, a fix): each request runs, named by when it was made (one
  // asked for twice within a second is one run). A date is its nightly tick's partition.
  partition: (p) => {
    if (p.full) return `full@${tickPartition(scheduledInstant(p))}`;
    if (p.pending) return `pending@${p.trigger ?? scheduledInstant(p)}`;
    if (p.from || p.to) return `${p.from ?? 'start'}..${p.to ?? 'end'}@${tickPartition(scheduledInstant(p))}`;
    return p.date ?? tickDate(scheduledInstant(p), SCHEDULE_TZ);
  },
  catchup: { mode: 'latest', windowHours: 48 },
  process: async (ctx) => {
    const p = ctx.payload;
    const today = tickDate(scheduledInstant(p), ctx.config.exchangeTz);
    let scope: RollupScope;
    let asOf: string | undefined;
    if (p.full) {
      scope = { kind: 'full' };
    } else if (p.pending) {
      scope = { kind: 'pending' };
    } else if (p.from || p.to) {
      const from = p.from ?? BEGINNING;
      const to = p.to ?? today;
      if (from > to) throw new BadInputError(`bad payload for build-rollups: from (${from}) is after to (${to})`);
      scope = { kind: 'range', from, to };
    } else {
      // The partition: the date given, or the nightly tick's date in SCHEDULE_TZ.
      const date = ctx.partition;
      // Its as-of would stretch dim_date over every year up to it (9999-12-31: millions of rows,
      // minutes). Today by the clock: scheduledFor is the payload's, and may be given.
      const clockToday = tickDate(new Date().toISOString(), ctx.config.exchangeTz);
      if (date > clockToday) throw new BadInputError(`bad payload for build-rollups: date ${date} is after today (${clockToday}); a future date has nothing to roll up`);
      scope = { kind: 'range', from: date, to: date };
      asOf = date;
    }
    const summary = await rebuildRollups({
      db: ctx.db,
      tz: ctx.config.exchangeTz,
      startingCapital: ctx.config.startingCapital,
      scope,
      ...(asOf !== undefined ? { asOf } : {}),
      logger: ctx.logger,
    });
    ctx.metrics.rollupsBuilt.inc(summary.rowsWritten);
    const outdatedFrom = outdatedReportsFrom(summary);
    const reports = outdatedFrom === null ? [] : await askForReportRemakes(ctx.db, ctx.enqueue, outdatedFrom);
    if (reports.length > 0) {
      ctx.logger.info({ reports: reports.length, from: reports[0], to: reports.at(-1), restatedFrom: summary.from, markedFrom: summary.markedFrom }, 'stored reports from the first restated or newly marked date on asked for again');
    }
    return {
      scope: summary.scope,
      partitions: summary.partitions,
      from: summary.from,
      to: summary.to,
      marked_from: summary.markedFrom,
      as_of: summary.asOf,
      accounts: summary.accounts,
      rows: {
        performance_daily: summary.rows.performanceDaily,
        buckets: summary.rows.buckets,
        instrument_daily: summary.rows.instrumentDaily,
        equity_curve: summary.rows.equityCurve,
        performance_metrics: summary.rows.metrics,
        positions: summary.rows.positions,
        positions_marked: summary.rows.positionsMarked,
        monthly: summary.rows.monthly,
      },
      rows_written: summary.rowsWritten,
      reports_requested: reports.length,
      phase_ms: summary.phaseMs,
    };
  },
});
