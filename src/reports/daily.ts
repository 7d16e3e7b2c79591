/**
 * Builds the nightly report of a date from the warehouse: every figure is read from the table
 * that holds it (fact_performance_daily, equity_curve, performance_metrics, fact_positions_daily,
 * fact_performance_buckets, fact_trades, market.rs_scores, ops), so the report and the rollups
 * never disagree. Firm-wide figures are sums over accounts; the firm's 30-day Sharpe and Sortino
 * come from the same metric functions the rollups use (src/analytics/metrics.ts) over the summed
 * curve, since performance_metrics holds accounts only.
 */
import { windowMetrics, type CurveRow } from '../analytics/metrics.ts';
import type { Sql } from '../db.ts';
import { loadEnrichmentStatusCounts } from '../queue-metrics.ts';
import type { AccountSection, DailyReport, Freshness, HourBucket, Mover, Position, ReportSection } from './types.ts';

/** Best and worst instruments and strategies listed. */
const MOVERS = 3;
/** Curve rows the report carries for its chart. */
const CURVE_ROWS = 250;
const DAILY_PNL_ROWS = 30;
const SHARPE_WINDOW = 30;
/** Failed jobs the freshness section lists (all of them are counted). */
const FAILED_JOBS_LISTED = 50;

/**
 * An instrument's label: its symbol, else `#<instrument_id>`. The source judges nothing but
 * primary keys, so a symbol can be NULL, and such an instrument must still get its rows.
 */
const symbolOf = (db: Sql) => db`coalesce(i.symbol, '#' || i.instrument_id::text)`;

interface CurveDbRow {
  account_id: string;
  date: string;
  equity: string;
  peak_equity: string;
  drawdown: string;
  drawdown_pct: number;
  net_pnl: string;
  realized_pnl: string;
  daily_return: number | null;
  winning_trades: number;
  losing_trades: number;
  gross_profit: string;
  gross_loss: string;
}

interface DayTotals {
  account_id: string;
  trades: number;
  winners: number;
  losers: number;
  realized_pnl: string;
  commissions: string;
  fees: string;
  net_pnl: string;
}

const ZERO_TOTALS = { trades: 0, winners: 0, losers: 0, realized_pnl: '0', commissions: '0', fees: '0', net_pnl: '0' };

function winRate(winners: number, losers: number): number | null {
  return winners + losers === 0 ? null : winners / (winners + losers);
}

function moversOf(rows: readonly { account_id: string | null; name: string; trades: number; net_pnl: string }[], accountId: string | null): { best: Mover[]; worst: Mover[] } {
  const mine = rows.filter((r) => r.account_id === accountId).map((r) => ({ name: r.name, trades: r.trades, net_pnl: r.net_pnl }));
  const byPnl = [...mine].sort((a, b) => Number(b.net_pnl) - Number(a.net_pnl) || a.name.localeCompare(b.name));
  return {
    best: byPnl.filter((m) => Number(m.net_pnl) > 0).slice(0, MOVERS),
    worst: byPnl.filter((m) => Number(m.net_pnl) < 0).reverse().slice(0, MOVERS),
  };
}

/**
 * Rollup rebuilds the trade ETL has asked for (ops.rollup_requests) on `date` or before, which
 * build-rollups has not made yet: until it has, the rollup tables miss fills already loaded,
 * and an earlier date's request changes the curve up to `date` too. One primary-key range read.
 */
export async function loadPendingRollups(db: Sql, date: string): Promise<{ requests: number; first: string | null }> {
  const [row] = await db<{ requests: number; first: string | null }[]>`
    select count(*)::int as requests, min(trade_date)::text as first from ops.rollup_requests where trade_date <= ${date}::date`;
  return row ?? { requests: 0, first: null };
}

/** Reads everything and assembles the report of `date` (a calendar date: the trading date reported). */
export async function buildDailyReport(db: Sql, options: { date: string; now: Date }): Promise<DailyReport> {
  const { date } = options;
  // Accounts with a curve by the report date, each under its current (else latest) name: one
  // index probe per account, not a pass over every account's whole history.
  const accounts = await db<{ account_id: string; account_number: string | null; account_name: string | null }[]>`
    select a.account_id::text, a.account_number, a.account_name
    from (
      select distinct on (account_id) account_id, account_number, account_name from warehouse.dim_account
      order by account_id, is_current desc, effective_from desc
    ) a
    where exists (select 1 from warehouse.equity_curve c where c.account_id = a.account_id and c.date <= ${date}::date)
    order by a.account_id`;

  const totals = await db<DayTotals[]>`
    select account_id::text, sum(total_trades)::int as trades, sum(winning_trades)::int as winners, sum(losing_trades)::int as losers,
           sum(realized_pnl)::text as realized_pnl, sum(commissions)::text as commissions, sum(fees)::text as fees, sum(net_pnl)::text as net_pnl
    from warehouse.fact_performance_daily where trade_date = ${date}::date group by account_id`;

  // The last rows the report shows of each curve, not its whole history.
  const curveRows = await db<CurveDbRow[]>`
    select c.account_id::text, c.date::text, c.equity::text, c.peak_equity::text, c.drawdown::text, c.drawdown_pct, c.net_pnl::text,
           c.realized_pnl::text, c.daily_return, c.winning_trades, c.losing_trades, c.gross_profit::text, c.gross_loss::text
    from unnest(${accounts.map((a) => a.account_id)}::bigint[]) as a(account_id)
    cross join lateral (
      select * from warehouse.equity_curve e where e.account_id = a.account_id and e.date <= ${date}::date
      order by e.date desc limit ${Math.max(CURVE_ROWS, DAILY_PNL_ROWS)}
    ) c
    order by c.account_id, c.date`;
  const curves = new Map<string, CurveDbRow[]>();
  for (const row of curveRows) {
    const rows = curves.get(row.account_id);
    if (rows) rows.push(row);
    else curves.set(row.account_id, [row]);
  }

  // Metrics of the latest curve date on or before the report date ('30d' and the whole curve): one
  // backward probe of the primary key per account and window. DISTINCT ON over the table read and
  // sorted every account's metrics up to the date (1.5 s for 20 accounts over ten years, against
  // 5 ms), and a year of remakes pays it for each report.
  const metrics = await db<{ account_id: string; window_name: string; sharpe: number | null; sortino: number | null; max_drawdown: number | null }[]>`
    select a.account_id::text, w.window_name, m.sharpe, m.sortino, m.max_drawdown
    from unnest(${accounts.map((a) => a.account_id)}::bigint[]) as a(account_id)
    cross join unnest(array['30d', 'all']) as w(window_name)
    cross join lateral (
      select p.sharpe, p.sortino, p.max_drawdown from warehouse.performance_metrics p
      where p.account_id = a.account_id and p.window_name = w.window_name and p.as_of_date <= ${date}::date
      order by p.as_of_date desc limit 1
    ) m`;

  const strategies = await db<{ account_id: string; name: string; trades: number; net_pnl: string }[]>`
    select p.account_id::text,
           -- Unnamed strategies by their id: only the unassigned member (key 0) is 'unassigned'.
           case when p.strategy_key = 0 then 'unassigned' else coalesce(s.strategy_name, '#' || s.strategy_id::text) end as name,
           sum(p.total_trades)::int as trades, sum(p.net_pnl)::text as net_pnl
    from warehouse.fact_performance_daily p join warehouse.dim_strategy s on s.strategy_key = p.strategy_key
    where p.trade_date = ${date}::date group by p.account_id, name`;

  const instruments = await db<{ account_id: string; name: string; trades: number; net_pnl: string }[]>`
    select a.account_id::text, ${symbolOf(db)} as name, count(*)::int as trades,
           sum(coalesce(t.realized_pnl, 0) - t.commission - t.fees)::text as net_pnl
    from warehouse.fact_trades t
    join warehouse.dim_account a on a.account_key = t.account_key
    join warehouse.dim_instrument i on i.instrument_key = t.instrument_key
    where t.trade_date = ${date}::date group by a.account_id, ${symbolOf(db)}`;

  const hours = await db<{ account_id: string; hour: number; trades: number; net_pnl: string }[]>`
    select account_id::text, hour_of_day::int as hour, sum(total_trades)::int as trades, sum(net_pnl)::text as net_pnl
    from warehouse.fact_performance_buckets where trade_date = ${date}::date group by account_id, hour_of_day order by hour_of_day`;

  // Open positions at the end of each account's latest curve date on or before the report date.
  // That date, not the latest date with positions: fact_positions_daily holds only non-zero
  // quantities, so an account that went flat has no rows on its later dates, and its last open
  // lots must not show on every later report.
  const positionDates = lastCurveDates(accounts.map((a) => a.account_id), curves);
  const positions = await db<{ account_id: string; symbol: string; quantity: string; avg_price: string | null; close: string | null; market_value: string | null; unrealized_pnl: string | null }[]>`
    select p.account_id::text, ${symbolOf(db)} as symbol, p.quantity::text, trim_scale(p.avg_entry_price)::text as avg_price, p.close_price::text as close,
           p.market_value::text, p.unrealized_pnl::text
    from ${positionsAt(db, positionDates)}
    order by symbol`;

  const sections: AccountSection[] = accounts.map((account) => {
    const id = account.account_id;
    const curve = curves.get(id) ?? [];
    const day = totals.find((t) => t.account_id === id) ?? { account_id: id, ...ZERO_TOTALS };
    const m30 = metrics.find((m) => m.account_id === id && m.window_name === '30d');
    const mAll = metrics.find((m) => m.account_id === id && m.window_name === 'all');
    const last = curve[curve.length - 1];
    const strategyMovers = moversOf(strategies, id);
    const instrumentMovers = moversOf(instruments, id);
    return {
      account_id: Number(id),
      account_number: account.account_number ?? id,
      account_name: account.account_name ?? account.account_number ?? id,
      ...sectionTotals(day),
      sharpe_30d: m30?.sharpe ?? null,
      sortino_30d: m30?.sortino ?? null,
      max_drawdown: mAll?.max_drawdown ?? null,
      current_drawdown: last?.drawdown ?? null,
      current_drawdown_pct: last?.drawdown_pct ?? null,
      equity: last?.equity ?? null,
      best_instruments: instrumentMovers.best,
      worst_instruments: instrumentMovers.worst,
      best_strategies: strategyMovers.best,
      worst_strategies: strategyMovers.worst,
      pnl_by_hour: hours.filter((h) => h.account_id === id).map(({ hour, trades, net_pnl }) => ({ hour, trades, net_pnl })),
      positions: positions.filter((p) => p.account_id === id).map(({ account_id: _, ...p }) => p),
      equity_curve: curve.slice(-CURVE_ROWS).map((c) => ({ date: c.date, equity: c.equity, net_pnl: c.net_pnl, drawdown_pct: c.drawdown_pct })),
      daily_pnl: curve.slice(-DAILY_PNL_ROWS).map((c) => ({ date: c.date, net_pnl: c.net_pnl })),
    };
  });

  const firm = await firmSection(db, date, positionDates, strategies, instruments);
  // From the facts, not the rollups: a date whose fills are loaded is never called untraded.
  const [traded] = await db<{ any: boolean }[]>`select exists (select 1 from warehouse.fact_trades where trade_date = ${date}::date) as any`;
  const freshness = await loadFreshness(db, options.now);
  const rs = await db<{ as_of_date: string; symbol: string; sector_name: string; rs_rating: number | null; rs_score: number | null }[]>`
    select as_of_date::text, symbol, sector_name, rs_rating, rs_score from market.rs_scores
    where is_sector_leader and as_of_date = (select max(as_of_date) from market.rs_scores where as_of_date <= ${date}::date)
    order by rs_rating desc nulls last, rs_score desc, symbol`;

  return {
    kind: 'daily',
    report_date: date,
    generated_at: options.now.toISOString(),
    has_trading: traded?.any ?? false,
    firm,
    accounts: sections,
    rs_leaders: { as_of_date: rs[0]?.as_of_date ?? null, leaders: rs.map(({ as_of_date: _, ...l }) => l) },
    freshness,
  };
}

/** Each account's last curve date on or before the report date (the curves hold rows up to it only). */
function lastCurveDates(accountIds: readonly string[], curves: ReadonlyMap<string, readonly CurveDbRow[]>): { accounts: string[]; dates: string[] } {
  const accounts: string[] = [];
  const dates: string[] = [];
  for (const id of accountIds) {
    const last = curves.get(id)?.at(-1);
    if (last === undefined) continue;
    accounts.push(id);
    dates.push(last.date);
  }
  return { accounts, dates };
}

/** `from` clause: positions of each account on its given date (one primary-key probe each), as p, with its instrument as i. */
const positionsAt = (db: Sql, at: { accounts: string[]; dates: string[] }) => db`
  unnest(${at.accounts}::bigint[], ${at.dates}::text[]::date[]) as a(account_id, date)
  join warehouse.fact_positions_daily p on p.account_id = a.account_id and p.trade_date = a.date
  join warehouse.dim_instrument i on i.instrument_key = p.instrument_key`;

function sectionTotals(day: Omit<DayTotals, 'account_id'>): Pick<ReportSection, 'trades' | 'winners' | 'losers' | 'win_rate' | 'realized_pnl' | 'commissions' | 'fees' | 'net_pnl'> {
  return {
    trades: day.trades,
    winners: day.winners,
    losers: day.losers,
    win_rate: winRate(day.winners, day.losers),
    realized_pnl: day.realized_pnl,
    commissions: day.commissions,
    fees: day.fees,
    net_pnl: day.net_pnl,
  };
}

/** Firm-wide: sums in SQL (exact), the summed curve's drawdown and 30-day ratios by the rollups' own functions. */
async function firmSection(
  db: Sql,
  date: string,
  positionDates: { accounts: string[]; dates: string[] },
  strategies: readonly { account_id: string; name: string; trades: number; net_pnl: string }[],
  instruments: readonly { account_id: string; name: string; trades: number; net_pnl: string }[],
): Promise<ReportSection> {
  const [day] = await db<Omit<DayTotals, 'account_id'>[]>`
    select coalesce(sum(total_trades), 0)::int as trades, coalesce(sum(winning_trades), 0)::int as winners, coalesce(sum(losing_trades), 0)::int as losers,
           coalesce(sum(realized_pnl), 0)::text as realized_pnl, coalesce(sum(commissions), 0)::text as commissions,
           coalesce(sum(fees), 0)::text as fees, coalesce(sum(net_pnl), 0)::text as net_pnl
    from warehouse.fact_performance_daily where trade_date = ${date}::date`;
  // The firm's curve: on every date any account has a row, the sum over the accounts that have
  // started of each one's latest equity (carried over dates it has no row, such as a Sunday with
  // another account's fills), and the day's net PnL. An account's capital (its equity before its
  // first row) joins the firm on that first date, as a deposit: the peak is the running peak of
  // equity less the capital added so far, plus that capital. So an account that starts later is
  // no drawdown before it exists, its capital no gain when it joins, and an account's loss
  // before another joins stays a drawdown. With every account starting together this is the
  // running peak of equity, never below the capital.
  const firmCurve = await db<{ date: string; equity: string; net_pnl: string; peak: string; drawdown: string; drawdown_pct: number | null }[]>`
    with curve as (
      select account_id, date, equity, net_pnl from warehouse.equity_curve where date <= ${date}::date
    ), firsts as (
      select account_id, min(date) as first_date from curve group by account_id
    ), grid as (
      -- Each started account on each firm date; run counts its rows so far, which groups a row
      -- with the dates carried after it.
      select d.date, f.account_id, c.equity, coalesce(c.net_pnl, 0) as net_pnl,
             case when d.date = f.first_date then c.equity - c.net_pnl else 0 end as new_capital,
             count(c.date) over (partition by f.account_id order by d.date) as run
      from (select distinct date from curve) d
      join firsts f on f.first_date <= d.date
      left join curve c on c.account_id = f.account_id and c.date = d.date
    ), days as (
      select date, equity, net_pnl, sum(new_capital) over (order by date) as capital
      from (
        select date, sum(carried) as equity, sum(net_pnl) as net_pnl, sum(new_capital) as new_capital
        from (select g.*, first_value(g.equity) over (partition by g.account_id, g.run order by g.date) as carried from grid g) g
        group by date
      ) d
    ), peaks as (
      select d.*, d.capital + greatest(0, max(d.equity - d.capital) over (order by d.date)) as peak from days d
    )
    select date::text, equity::text, net_pnl::text, peak::text, (equity - peak)::text as drawdown,
           case when peak > 0 then ((equity - peak) / peak)::float8 end as drawdown_pct
    from peaks order by date`;
  // A firm day's return is its net PnL over its opening equity (the previous day's sum plus the
  // capital of accounts starting that day), as an account's daily_return is.
  const rows: CurveRow[] = firmCurve.map((c) => {
    const equity = Number(c.equity);
    const net = Number(c.net_pnl);
    const base = equity - net;
    return { netPnl: net, equity, dailyReturn: base > 0 ? net / base : 0, realizedPnl: 0, winningTrades: 0, losingTrades: 0, grossProfit: 0, grossLoss: 0 };
  });
  const window = rows.slice(-SHARPE_WINDOW);
  // A window opens at its first day's opening equity, which holds the capital of accounts starting that day.
  const openingOf = (row: CurveRow | undefined) => (row ? row.equity - row.netPnl : 0);
  const opening = openingOf(window[0]);
  const m30 = window.length > 0 && opening > 0 ? windowMetrics(window, opening) : null;
  const all = rows.length > 0 && openingOf(rows[0]) > 0 ? windowMetrics(rows, openingOf(rows[0])) : null;
  const last = firmCurve[firmCurve.length - 1];
  const strategyTotals = sumMovers(strategies);
  const instrumentTotals = sumMovers(instruments);
  const firmHours = await db<HourBucket[]>`
    select hour_of_day::int as hour, sum(total_trades)::int as trades, sum(net_pnl)::text as net_pnl
    from warehouse.fact_performance_buckets where trade_date = ${date}::date group by hour_of_day order by hour_of_day`;
  // Every symbol some account holds, flat firm-wide or not: accounts long and short the same
  // symbol net to 0 shares but not to 0 unrealized PnL (each account's rows are non-zero).
  const firmPositions = await db<Position[]>`
    select ${symbolOf(db)} as symbol, sum(p.quantity)::text as quantity, null::text as avg_price, max(p.close_price)::text as close,
           case when bool_and(p.market_value is not null) then sum(p.market_value)::text end as market_value,
           case when bool_and(p.unrealized_pnl is not null) then sum(p.unrealized_pnl)::text end as unrealized_pnl
    from ${positionsAt(db, positionDates)}
    group by ${symbolOf(db)} order by symbol`;
  return {
    ...sectionTotals(day ?? ZERO_TOTALS),
    sharpe_30d: m30?.sharpe ?? null,
    sortino_30d: m30?.sortino ?? null,
    max_drawdown: all?.maxDrawdown ?? null,
    current_drawdown: last?.drawdown ?? null,
    current_drawdown_pct: last?.drawdown_pct ?? null,
    equity: last?.equity ?? null,
    best_instruments: instrumentTotals.best,
    worst_instruments: instrumentTotals.worst,
    best_strategies: strategyTotals.best,
    worst_strategies: strategyTotals.worst,
    pnl_by_hour: firmHours,
    positions: firmPositions,
    equity_curve: firmCurve.slice(-CURVE_ROWS).map((c) => ({ date: c.date, equity: c.equity, net_pnl: c.net_pnl, drawdown_pct: c.drawdown_pct })),
    daily_pnl: firmCurve.slice(-DAILY_PNL_ROWS).map((c) => ({ date: c.date, net_pnl: c.net_pnl })),
  };
}

/** Firm-wide movers: the accounts' sums per name, added exactly. */
function sumMovers(rows: readonly { account_id: string; name: string; trades: number; net_pnl: string }[]): { best: Mover[]; worst: Mover[] } {
  const byName = new Map<string, { trades: number; parts: string[] }>();
  for (const r of rows) {
    const entry = byName.get(r.name) ?? { trades: 0, parts: [] };
    entry.trades += r.trades;
    entry.parts.push(r.net_pnl);
    byName.set(r.name, entry);
  }
  const combined = [...byName.entries()].map(([name, e]) => ({ account_id: null, name, trades: e.trades, net_pnl: addDecimals(e.parts) }));
  return moversOf(combined, null);
}

/** Adds decimal strings exactly (scaled BigInt). */
export function addDecimals(values: readonly string[]): string {
  const scale = Math.max(0, ...values.map((v) => (v.includes('.') ? v.length - v.indexOf('.') - 1 : 0)));
  let total = 0n;
  for (const v of values) {
    const negative = v.startsWith('-');
    const [whole = '0', fraction = ''] = (negative ? v.slice(1) : v).split('.');
    const units = BigInt(whole + fraction.padEnd(scale, '0'));
    total += negative ? -units : units;
  }
  const negative = total < 0n;
  const digits = (negative ? -total : total).toString().padStart(scale + 1, '0');
  const text = scale === 0 ? digits : `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  return negative ? `-${text}` : text;
}

async function loadFreshness(db: Sql, now: Date): Promise<Freshness> {
  const [etl] = await db<{ last_ingested_at: Date | null; last_success: Date | null }[]>`
    select (select max(last_ingested_at) from ops.etl_watermarks) as last_ingested_at,
           (select max(finished_at) from ops.job_runs where job = 'trade-etl' and status = 'succeeded') as last_success`;
  // Derived now, as the status API and the bullpen_enrichment_symbols metric derive them: the
  // status stored at a symbol's last enrichment does not turn stale while nothing enriches it.
  const statuses = await loadEnrichmentStatusCounts(db, now.getTime());
  // count(*) over () is taken before the limit: every failure is counted, the latest listed.
  const failed = await db<{ job: string; partition: string; error: string | null; at: Date; total: number }[]>`
    select job, partition, error, coalesce(finished_at, updated_at) as at, (count(*) over ())::int as total from ops.job_runs
    where status = 'failed' and coalesce(finished_at, updated_at) > ${now}::timestamptz - interval '24 hours'
    order by at desc limit ${FAILED_JOBS_LISTED}`;
  return {
    etl_lag_seconds: etl?.last_ingested_at ? Math.max(0, Math.round((now.getTime() - etl.last_ingested_at.getTime()) / 1000)) : null,
    etl_last_success: etl?.last_success?.toISOString() ?? null,
    enrichment_status: Object.fromEntries([...statuses].filter(([, n]) => n > 0)),
    failed_jobs_24h_count: failed[0]?.total ?? 0,
    failed_jobs_24h: failed.map((f) => ({ job: f.job, partition: f.partition, error: f.error, at: f.at.toISOString() })),
  };
}
