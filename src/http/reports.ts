/**
 * The nightly reports under /reports/ (issue 7; DESIGN.md "HTTP": the same credentials as the
 * status page). The index is built from ops.reports; the files come from REPORTS_DIR, and only
 * names matching `daily_YYYYMMDD.(html|json)` are served, so no path can leave that directory.
 *
 *   GET /reports/                     index page, newest first
 *   GET /reports/daily_YYYYMMDD.html  the report page (self-contained)
 *   GET /reports/daily_YYYYMMDD.json  the report data
 */
import path from 'node:path';
import express from 'express';
import type { Config } from '../config.ts';
import type { Sql } from '../db.ts';
import { renderReportIndexHtml, type ReportIndexEntry } from '../reports/html.ts';
import { wrapAsync } from './error-handler.ts';

/** The only file names served: nothing else of REPORTS_DIR (temp files, dotfiles) is reachable. */
export const REPORT_FILE_PATTERN = /^daily_\d{8}\.(html|json)$/;

/** The HTML fetches nothing and runs nothing; the header backs up the page's own meta tag. */
const REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:";

export interface ReportsRouterDeps {
  config: Pick<Config, 'reportsDir'>;
  db: Sql;
}

interface ReportRow {
  report_date: string;
  json_path: string;
  html_path: string | null;
  summary: unknown;
  generated_at: Date;
}

/** The summary the job stores, when it has the expected shape; anything else shows as unknown. */
function toSummary(raw: unknown): ReportIndexEntry['summary'] {
  if (!raw || typeof raw !== 'object' || typeof (raw as { has_trading?: unknown }).has_trading !== 'boolean') return null;
  const { has_trading, net_pnl, trades } = raw as { has_trading: boolean; net_pnl?: unknown; trades?: unknown };
  return {
    has_trading,
    ...(typeof net_pnl === 'string' ? { net_pnl } : {}),
    ...(typeof trades === 'number' ? { trades } : {}),
  };
}

/** Every daily report recorded in ops.reports, newest first, with its files as basenames. */
export async function loadReportIndex(db: Sql): Promise<ReportIndexEntry[]> {
  const rows = await db<ReportRow[]>`
    select report_date::text, json_path, html_path, summary, generated_at
    from ops.reports
    where kind = 'daily'
    order by report_date desc`;
  return rows.map((r) => ({
    report_date: r.report_date,
    json_file: path.basename(r.json_path),
    html_file: r.html_path === null ? null : path.basename(r.html_path),
    generated_at: r.generated_at.toISOString(),
    summary: toSummary(r.summary),
  }));
}

/** The /reports routes, relative to their mount path. Authentication is the caller's. */
export function createReportsRouter(deps: ReportsRouterDeps): express.Router {
  // Resolved once: REPORTS_DIR is relative to the working directory the process started in.
  const root = path.resolve(deps.config.reportsDir);
  const router = express.Router();

  router.get(
    '/',
    wrapAsync(async (req, res) => {
      // The index links files relatively, which only resolves under /reports/ with the slash. The
      // target is this router's own path (never the request line's, which may name another host).
      const [pathname, query] = req.originalUrl.split('?', 2) as [string, string | undefined];
      if (!pathname.endsWith('/')) {
        res.redirect(301, `${req.baseUrl}/${query === undefined ? '' : `?${query}`}`);
        return;
      }
      res
        .set({ 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': REPORT_CSP })
        .type('html')
        .send(renderReportIndexHtml(await loadReportIndex(deps.db)));
    }),
  );

  router.get('/:file', (req, res, next) => {
    const file = req.params.file;
    if (!REPORT_FILE_PATTERN.test(file)) {
      next();
      return;
    }
    // Reports are replaced in place when a date is regenerated: always revalidate.
    res.set({ 'Cache-Control': 'no-cache', 'X-Content-Type-Options': 'nosniff', 'Content-Security-Policy': REPORT_CSP });
    res.sendFile(file, { root, dotfiles: 'deny' }, (error?: Error & { status?: number; statusCode?: number }) => {
      if (!error) return;
      if (res.headersSent) {
        next(error);
        return;
      }
      // A file listed in ops.reports but missing (or not yet written) is a plain 404.
      if ((error.status ?? error.statusCode) === 404) {
        res.removeHeader('Content-Security-Policy');
        next();
        return;
      }
      next(error);
    });
  });

  return router;
}
