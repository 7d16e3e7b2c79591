/**
 * What `bullpen demo` prints: what it seeded, what the pipeline did, and where to look next
 * (Bull Board, and SQL to paste into psql). Text only; `loadWarehouseTotals` is the one read.
 */
import path from 'node:path';
import type { Config } from '../config.ts';
import type { Sql } from '../db.ts';
import { BOARD_PATH, formatHost } from '../http/app.ts';
import { redactUrl } from '../logger.ts';
import type { DemoHistoryDescription } from './synthetic.ts';

/** Rows the warehouse holds after the demo's ETL run, whatever earlier runs loaded. */
export interface WarehouseTotals {
  trades: number;
  openRejects: number;
  positions: number;
}

export async function loadWarehouseTotals(db: Sql): Promise<WarehouseTotals> {
  const [row] = await db<WarehouseTotals[]>`
    select (select count(*)::int from warehouse.fact_trades) as trades,
           (select count(*)::int from ops.etl_rejects where resolved_at is null) as "openRejects",
           (select count(*)::int from warehouse.fifo_positions where quantity <> 0) as positions`;
  return row ?? { trades: 0, openRejects: 0, positions: 0 };
}

/** The lines printed after seeding. */
export function renderSeeded(seeded: DemoHistoryDescription, days: number): string {
  return [
    `seeded ${days} trading days of demo history into oltp (${seeded.firstTradingDate} to ${seeded.lastTradingDate}):`,
    `  ${seeded.accounts} accounts, ${seeded.instruments} instruments, ${seeded.strategies} strategies, ${seeded.orders} orders, ${seeded.executions} executions`,
    `  planted: ${seeded.badRows} bad rows (the ETL must reject them), ${seeded.lateFills} late fills (ingested 1–3 days after execution), ` +
      `${seeded.unassignedFills} fills whose order or strategy is unknown (they load under strategy 'unassigned')`,
  ].join('\n');
}

function numberIn(summary: Record<string, unknown>, key: string): number | undefined {
  const value = summary[key];
  return typeof value === 'number' ? value : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** trade-etl's summary in a few lines: loaded, rejected and why. Anything unexpected is shown as JSON. */
export function renderEtlSummary(summary: unknown): string {
  if (!isRecord(summary) || numberIn(summary, 'loaded') === undefined) return `trade-etl succeeded: ${JSON.stringify(summary)}`;
  const n = (key: string) => numberIn(summary, key) ?? 0;
  const lines = [
    `trade-etl succeeded: extracted ${n('extracted')}, loaded ${n('loaded')} (new ${n('new')}, amended ${n('amended')}, unchanged ${n('unchanged')}), ` +
      `rejected ${n('rejected')}${n('restated_fills') > 0 ? `, restated ${n('restated_fills')} later fills after late or amended ones` : ''}`,
  ];
  const reasons = isRecord(summary.rejects_by_reason) ? Object.entries(summary.rejects_by_reason) : [];
  reasons.sort(([a, x], [b, y]) => Number(y) - Number(x) || a.localeCompare(b));
  for (const [reason, count] of reasons) lines.push(`  rejected ${String(count)} × ${reason}`);
  if (n('loaded') === 0 && n('rejected') === 0) lines.push('  (nothing new since the last load: the watermark had already passed every row)');
  return lines.join('\n');
}

/** build-rollups' summary: what it rebuilt and the rows it wrote, saying plainly when nothing was stale. */
export function renderRollupsSummary(summary: unknown): string {
  if (isRecord(summary) && typeof summary.skipped === 'string') return `build-rollups did not run (skipped: ${summary.skipped}): ${JSON.stringify(summary)}`;
  if (!isRecord(summary) || numberIn(summary, 'partitions') === undefined || !isRecord(summary.rows)) return `build-rollups succeeded: ${JSON.stringify(summary)}`;
  const n = (key: string) => numberIn(summary, key) ?? 0;
  if (n('partitions') === 0 && n('accounts') === 0) return 'build-rollups succeeded: nothing was stale, every rollup was already up to date';
  const rows = Object.entries(summary.rows).map(([table, count]) => `${table} ${String(count)}`).join(', ');
  const range = summary.from !== null && summary.to !== null ? ` from ${String(summary.from)} to ${String(summary.to)}` : '';
  return [
    `build-rollups succeeded: rebuilt ${n('partitions')} (date, account) partitions${range}; ` +
      `${n('accounts')} accounts' equity curves and metrics through ${String(summary.as_of)}`,
    `  rows written: ${rows}`,
  ].join('\n');
}

/** A postgres URL without its password, for psql with PGPASSWORD. */
function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.password = '';
    return parsed.toString();
  } catch {
    return redactUrl(url);
  }
}

export const DEMO_QUERIES: ReadonlyArray<{ title: string; sql: string }> = [
  {
    title: 'realized PnL by account and trading date',
    sql: [
      'select a.account_number, a.account_name, t.trade_date, count(*) as fills, sum(t.realized_pnl) as realized_pnl',
      'from warehouse.fact_trades t',
      'join warehouse.dim_account a on a.account_id = t.account_id and a.is_current',
      'group by 1, 2, 3 order by t.trade_date desc, realized_pnl desc limit 20;',
    ].join('\n'),
  },
  {
    title: 'rows the ETL quarantined and has not seen fixed',
    sql: [
      'select reason, count(*) as rows, min(source_key) as example_execution_id',
      'from ops.etl_rejects where resolved_at is null',
      'group by reason order by rows desc;',
    ].join('\n'),
  },
  {
    title: 'open positions (FIFO), largest first',
    sql: [
      'select a.account_number, i.symbol, p.quantity, p.last_executed_at',
      'from warehouse.fifo_positions p',
      'join warehouse.dim_account a on a.account_id = p.account_id and a.is_current',
      'join warehouse.dim_instrument i on i.instrument_id = p.instrument_id and i.is_current',
      'where p.quantity <> 0 order by abs(p.quantity) desc limit 20;',
    ].join('\n'),
  },
  {
    title: 'equity, drawdown and the 90-day metrics per account on the latest date',
    sql: [
      'select e.account_id, e.date, e.equity, e.drawdown_pct, m.sharpe, m.sortino, m.max_drawdown, m.win_rate, m.var_95',
      'from warehouse.equity_curve e',
      "join warehouse.performance_metrics m on m.account_id = e.account_id and m.as_of_date = e.date and m.window_name = '90d'",
      'where e.date = (select max(date) from warehouse.equity_curve) order by e.equity desc;',
    ].join('\n'),
  },
  {
    title: 'what ran, most recent first',
    sql: 'select job, partition, status, attempts, duration_ms, finished_at, summary from ops.job_runs order by updated_at desc limit 10;',
  },
];

/** One line for the nightly report the demo generates, and where it is. */
export function renderReportSummary(summary: unknown): string {
  const s = summary as { date: string; trades: number; netPnl: string; accounts: number; html: string; json: string };
  return [
    `nightly-report succeeded: ${s.date}, ${s.accounts} accounts, ${s.trades} trades, firm net PnL ${s.netPnl}`,
    `  ${s.html}`,
    `  ${s.json}`,
  ].join('\n');
}

/** The "what to look at" block. */
export function renderNextSteps(input: {
  config: Pick<Config, 'databaseUrl' | 'host' | 'port' | 'boardUser' | 'home'>;
  /** The URL the services connected to (the embedded one when DATABASE_URL is unset). */
  databaseUrl: string;
  totals: WarehouseTotals;
}): string {
  const { config, databaseUrl, totals } = input;
  const embedded = config.databaseUrl === undefined;
  const board = `http://${formatHost(config.host)}:${config.port}${BOARD_PATH}`;
  const credentials = config.boardUser
    ? `user "${config.boardUser}", the password in BOARD_PASSWORD`
    : 'user "admin"; the password is generated at each start and logged once (the "boardPassword" field of the line "BOARD_USER/BOARD_PASSWORD not set: …")';
  const lines = [
    'What to look at',
    `  warehouse now: ${totals.trades} trades in warehouse.fact_trades, ${totals.openRejects} open rejects in ops.etl_rejects, ${totals.positions} open positions in warehouse.fifo_positions`,
    '',
    `  1. npm start${embedded ? '     (workers, schedules, web app; while it runs the embedded PostgreSQL stays up)' : '     (workers, schedules, web app)'}`,
    `  2. Bull Board: ${board}`,
    `     ${credentials}`,
    `     the status page, ${`http://${formatHost(config.host)}:${config.port}/`}, and the reports, ${`http://${formatHost(config.host)}:${config.port}/reports/`}, take the same login`,
  ];
  if (embedded) {
    const passwordFile = path.join(config.home, 'pg.password');
    lines.push(
      `  3. psql, on the embedded database (DATABASE_URL is unset; bullpen used ${redactUrl(databaseUrl)}, password in ${passwordFile}):`,
      `     PGPASSWORD="$(cat ${passwordFile})" psql '${withoutPassword(databaseUrl)}'`,
    );
  } else {
    lines.push(`  3. psql, on DATABASE_URL (${redactUrl(databaseUrl)}):`, '     psql "$DATABASE_URL"');
  }
  lines.push('     and try:');
  for (const query of DEMO_QUERIES) {
    lines.push('', `     -- ${query.title}`, ...query.sql.split('\n').map((line) => `     ${line}`));
  }
  return lines.join('\n');
}
