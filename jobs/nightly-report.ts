/**
 * nightly-report: the per-account and firm-wide report of a date, as REPORTS_DIR/daily_YYYYMMDD.json
 * (the trading-loop seed's file) and a self-contained daily_YYYYMMDD.html with its charts, recorded
 * in ops.reports and served under /reports/. Reads the warehouse only; files are replaced
 * atomically, so a rerun is harmless. Nights missed while nothing ran are caught up on start,
 * oldest first.
 *
 * Partition: the report date, given, or named by the tick: the latest New York calendar date
 * whose regular NYSE close (16:00 New York) is at or before the tick. The default 23:50 UTC tick
 * (18:50 EST, 19:50 EDT) names the date just ending, which is also its UTC date, as it always has;
 * an override after midnight UTC (SCHEDULE_NIGHTLY_REPORT='30 1 * * *', 20:30 or 21:30 New York)
 * names that same New York date, not the UTC day just begun, and one in the New York morning
 * names the day before. Calendar dates, weekends and holidays included, as trading dates are
 * (DESIGN.md: a Sunday with fills is one; a day without is a "no trading" report), so each tick
 * of a daily schedule names a date of its own.
 *
 * Rollups first: while rebuilds the trade ETL asked for on the date or before are still to be
 * made (build-rollups waits out ROLLUP_DEBOUNCE_MS first), the run goes back on its queue and
 * looks again, rather than store a report that misses fills already loaded (a "no trading" day
 * with zero trades, for good). Still pending after ROLLUPS_WAIT_MS, it fails retryably. A date
 * build-rollups restates after its report is stored is reported again (jobs/build-rollups.ts), as
 * is one whose positions it marks at a 1d bar that came late, and the stored reports after either;
 * those remakes wait on the queue behind the tick's own run.
 */
import { DateTime } from 'luxon';
import { tickDate } from '../src/cron.ts';
import { BadInputError } from '../src/errors.ts';
import { basePayload, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';
import { buildDailyReport, loadPendingRollups } from '../src/reports/daily.ts';
import { renderDailyReportHtml } from '../src/reports/html.ts';
import { storeDailyReport } from '../src/reports/store.ts';

const payload = basePayload.extend({ date: payloadDate.optional() });

/**
 * Where a tick's report date is read: New York whatever EXCHANGE_TZ is (partition() sees the
 * payload only, not the config), as build-rollups' nightly tick names its date.
 */
const CLOSE_TZ = 'America/New_York';
/**
 * NYSE's regular close, every day: the 13:00 early close is not used, since a schedule ticking
 * between 13:00 and 16:00 would then name the early-close day twice and skip the day before it.
 * After-hours fills of a date reported after its close reach it when build-rollups restates it.
 */
const CLOSE_HOUR = 16;

/** The latest New York date whose close is at or before `tick`. */
function reportDateOf(tick: string): string {
  const local = DateTime.fromISO(tick, { setZone: true }).setZone(CLOSE_TZ);
  return tickDate(tick, CLOSE_TZ, local.hour >= CLOSE_HOUR ? 0 : -1);
}

/** How often a run waiting for its date's rollups looks again. */
const ROLLUPS_POLL_MS = 3_000;
/**
 * How long a run waits for them (from the start of its attempt): well past the ETL's debounce
 * and a rebuild, so still pending then, build-rollups is not running and the run says so.
 */
const ROLLUPS_WAIT_MS = 10 * 60_000;

export const nightlyReport = defineJob({
  name: 'nightly-report',
  queue: 'reports',
  description: 'Per-account and firm-wide daily report (JSON + HTML), stored and served under /reports/',
  payload,
  schedule: {
    cron: '50 23 * * *',
    tz: 'UTC',
    calendar: 'all',
    // Reports of different dates are independent (a file and an ops.reports row each), and a
    // date's runs are kept apart by its partition's claim: a tick must not be dropped, nor wait,
    // because a remake of an earlier date (build-rollups, a backfill) is running.
    overlap: 'allow',
    // The trading-loop seed's window: the day's report exists by 00:30 UTC the next day. An
    // override ticking after it names a date already past its deadline, which is then not checked
    // (the scheduler warns); one ticking several times a date is judged by its ticks before it.
    deadline: { by: '00:30', tz: 'UTC', dayOffset: 1 },
  },
  partition: (p) => p.date ?? reportDateOf(scheduledInstant(p)),
  catchup: { mode: 'all', windowHours: 7 * 24, max: 7 },
  process: async (ctx) => {
    // A report date is a UTC date; one still to come has nothing to report, and its stored "no
    // trading" report would stand for the real one's partition.
    const today = new Date().toISOString().slice(0, 10);
    if (ctx.partition > today) throw new BadInputError(`bad payload for nightly-report: date ${ctx.partition} is after today (${today} UTC); a future date has nothing to report`);
    const pending = await loadPendingRollups(ctx.db, ctx.partition);
    if (pending.requests > 0) {
      // ops.job_runs.started_at is when this attempt began, kept while it waits on its queue between looks.
      const [run] = await ctx.db<{ waited_ms: number }[]>`
        select (extract(epoch from now() - started_at) * 1000)::float8 as waited_ms from ops.job_runs
        where job = 'nightly-report' and partition = ${ctx.partition}`;
      const waited = run?.waited_ms ?? 0;
      if (waited < ROLLUPS_WAIT_MS) {
        ctx.logger.info({ pending: pending.requests, from: pending.first }, `rollups pending for ${ctx.partition}: waiting for build-rollups`);
        return ctx.requeue(ROLLUPS_POLL_MS);
      }
      const what = `${pending.requests} rollup rebuild${pending.requests === 1 ? '' : 's'} requested from ${pending.first} on`;
      throw new Error(`rollups pending for ${ctx.partition}: ${what} not made after ${Math.round(waited / 60_000)} min; is build-rollups running?`);
    }
    const report = await buildDailyReport(ctx.db, { date: ctx.partition, now: new Date() });
    const stored = await storeDailyReport(ctx.db, ctx.config.reportsDir, report, renderDailyReportHtml(report));
    return {
      date: report.report_date,
      hasTrading: report.has_trading,
      accounts: report.accounts.length,
      trades: report.firm.trades,
      netPnl: report.firm.net_pnl,
      json: stored.jsonPath,
      html: stored.htmlPath,
    };
  },
});
