/**
 * Where reports live: REPORTS_DIR/daily_YYYYMMDD.json and .html, each written to a temporary
 * file in the same directory and renamed over the old one (readers see the old file or the new,
 * never half of one), then recorded in ops.reports.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Sql } from '../db.ts';
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

/** The dates of the stored daily reports from `first` on, in order; every one for 'all'. One range read of ops.reports' primary key. */
export async function loadReportDatesFrom(db: Sql, first: string | 'all'): Promise<string[]> {
  const rows = await db<{ report_date: string }[]>`
    select report_date::text from ops.reports
    where kind = 'daily' ${first === 'all' ? db`` : db`and report_date >= ${first}::date`}
    order by report_date`;
  return rows.map((r) => r.report_date);
}
