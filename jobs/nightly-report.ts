/**
 * nightly-report: the per-account and firm-wide report of a date, as REPORTS_DIR/daily_YYYYMMDD.json
 * (the trading-loop seed's file) and a self-contained daily_YYYYMMDD.html with its charts, recorded
 * in ops.reports and served under /reports/. Partition: the report date (the UTC date of the
 * 23:50 UTC tick). Reads the warehouse only; files are replaced atomically, so a rerun is harmless.
 * Nights missed while nothing ran are caught up on start, oldest first.
 */
import { tickDate } from '../src/cron.ts';
import { BadInputError } from '../src/errors.ts';
import { basePayload, defineJob, payloadDate, scheduledInstant } from '../src/job-definition.ts';
import { buildDailyReport } from '../src/reports/daily.ts';
import { renderDailyReportHtml } from '../src/reports/html.ts';
import { storeDailyReport } from '../src/reports/store.ts';

const payload = basePayload.extend({ date: payloadDate.optional() });

export const nightlyReport = defineJob({
  name: 'nightly-report',
  queue: 'reports',
  description: 'Per-account and firm-wide daily report (JSON + HTML), stored and served under /reports/',
  payload,
  schedule: {
    cron: '50 23 * * *',
    tz: 'UTC',
    calendar: 'all',
    overlap: 'skip',
    // The trading-loop seed's window: the day's report exists by 00:30 UTC the next day.
    deadline: { by: '00:30', tz: 'UTC', dayOffset: 1 },
  },
  partition: (p) => p.date ?? tickDate(scheduledInstant(p), 'UTC'),
  catchup: { mode: 'all', windowHours: 7 * 24, max: 7 },
  process: async (ctx) => {
    // A report date is a UTC date; one still to come has nothing to report, and its stored "no
    // trading" report would stand for the real one's partition.
    const today = new Date().toISOString().slice(0, 10);
    if (ctx.partition > today) throw new BadInputError(`bad payload for nightly-report: date ${ctx.partition} is after today (${today} UTC); a future date has nothing to report`);
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
