/**
 * Where reports live: REPORTS_DIR/daily_YYYYMMDD.json and .html, each written to a temporary
 * file in the same directory and renamed over the old one (readers see the old file or the new,
 * never half of one), then recorded in ops.reports.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Sql } from '../db.ts';
import type { RollupSummary } from '../rollups.ts';
import type { DailyReport } from './types.ts';

export function reportFileBase(date: string): string {
  return `daily_${date.replaceAll('-', '')}`;
}

async function writeAtomically(file: string, content: string): Promise<void> {
  const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.${Date.now()}.tmp`);
  try {
    await fs.writeFile(temporary, content, { encoding: 'utf8', mode: 0o644 });
    await fs.rename(temporary, file);
  } catch (error) {
    await fs.rm(temporary, { force: true });
    throw error;
  }
}

export interface StoredReport {
  jsonPath: string;
  htmlPath: string;
}

export async function storeDailyReport(db: Sql, reportsDir: string, report: DailyReport, html: string): Promise<StoredReport> {
  const dir = path.resolve(reportsDir);
  await fs.mkdir(dir, { recursive: true });
  const base = reportFileBase(report.report_date);
  const jsonPath = path.join(dir, `${base}.json`);
  const htmlPath = path.join(dir, `${base}.html`);
  await writeAtomically(jsonPath, `${JSON.stringify(report, null, 2)}\n`);
  await writeAtomically(htmlPath, html);
  const summary = { has_trading: report.has_trading, trades: report.firm.trades, net_pnl: report.firm.net_pnl, accounts: report.accounts.length };
  await db`
    insert into ops.reports (report_date, kind, json_path, html_path, summary, generated_at)
    values (${report.report_date}, 'daily', ${jsonPath}, ${htmlPath}, ${db.json(summary)}, ${report.generated_at})
    on conflict (report_date, kind) do update set json_path = excluded.json_path, html_path = excluded.html_path,
      summary = excluded.summary, generated_at = excluded.generated_at`;
  return { jsonPath, htmlPath };
}

/**
 * Dates whose stored daily report a rollup rebuild has made out of date: every date with a report
 * from the first date it restated on (a full rebuild: every one). Not only the dates it restated:
 * the curve, metrics and positions are cumulative, so a restated Monday changes the equity,
 * drawdown and ratios of every report after it, and the firm's figures sum the accounts. A date
 * without a report yet gets one from its own tick. One range read of ops.reports' primary key.
 *
 * Also from the first date whose positions the rebuild marked at a late 1d close (`markedFrom`):
 * its report showed them without a close, market value or unrealized PnL, and so did the reports
 * of the days after it that show that date's positions (a weekend's or a holiday's). Every report
 * from it on, as for a restatement: a rebuild marks its last MARK_POSITIONS_DAYS days only, so
 * that is a few reports, once per late bar (a marked row is never marked again).
 */
export async function loadRestatedReportDates(db: Sql, summary: Pick<RollupSummary, 'scope' | 'promotedToFull' | 'from' | 'markedFrom'>): Promise<string[]> {
  const full = summary.scope === 'full' || summary.promotedToFull;
  const first = earlierOf(summary.from, summary.markedFrom);
  if (!full && first === null) return [];
  const rows = await db<{ report_date: string }[]>`
    select report_date::text from ops.reports
    where kind = 'daily' ${full ? db`` : db`and report_date >= ${first}::date`}
    order by report_date`;
  return rows.map((r) => r.report_date);
}

/** The earlier of two ISO dates, either of which may be missing. */
function earlierOf(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  if (b === null) return a;
  return a < b ? a : b;
}
