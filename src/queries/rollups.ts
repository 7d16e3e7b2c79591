/**
 * The statements of one build-rollups run, in the order src/rollups.ts runs them inside one
 * transaction. What a run works on is read once and passed back to each statement as arrays,
 * which the statement names as a CTE (the daily grain filters on them instead: see inWork):
 *
 *   rollup_work      the (trade date, account) partitions to rebuild (not used by a full rebuild)
 *   rollup_accounts  per account, the date from which its curve, metrics, positions and
 *                    months are rebuilt, and the equity and peak it starts from
 *
 * Arrays rather than temp tables: a run creates no catalog rows, and its statements keep their
 * parsed form on the connection from one run to the next. Each is planned with the run's
 * values (plan_cache_mode force_custom_plan): the unnest CTEs' row counts come from their
 * arrays (a lone text[]::date[] array is estimated at 10 elements; those filters also carry
 * constant date bounds).
 *
 * Daily-grain tables are rebuilt for exactly the work partitions (a range: its whole days);
 * everything carried forward day to day (equity, metrics, positions, months) from each
 * account's earliest date on. A full rebuild has no work set and replaces every row.
 *
 * Only the time zone is passed as a parameter into date arithmetic; nothing is spliced.
 */
import type { PendingQuery, Row, TransactionSql } from 'postgres';

type Tx = TransactionSql<Record<string, never>>;

/** One rollup run at a time: they rewrite overlapping rows, and each needs the previous one's curve. */
export async function lockRollups(tx: Tx): Promise<void> {
  // JIT compiles each statement's expressions again every run; these are short, so it only adds.
  // Custom plans: a generic plan would guess the arrays' lengths and the date bounds.
  await tx`
    select pg_advisory_xact_lock(hashtext('bullpen.rollups')), set_config('work_mem', '128MB', true), set_config('jit', 'off', true),
           set_config('plan_cache_mode', 'force_custom_plan', true)`;
}

/** The (trade date, account) partitions a run rebuilds, as parallel arrays: ISO dates, account ids. */
export interface WorkSet {
  dates: string[];
  accounts: string[];
}

/** rollup_work(trade_date, account_id): the work set as a CTE. */
const workCte = (tx: Tx, work: WorkSet) => tx`
  rollup_work as (select * from unnest(${work.dates}::text[]::date[], ${work.accounts}::bigint[]) as w(trade_date, account_id))`;

/** The distinct dates of a work set. */
const workDates = (work: WorkSet) => [...new Set(work.dates)];
/** The distinct accounts of a work set. */
const workAccounts = (work: WorkSet) => [...new Set(work.accounts)];
/** `alias.name`, for the fragments shared by statements that name their table differently. */
const columnOf = (tx: Tx, alias: 'f' | 'b' | 't', name: string) => tx.unsafe(`${alias}.${name}`);

/**
 * Rows of `alias` inside the work set. A set that holds every pair of its dates and accounts
 * (one date, as after an ETL load or the nightly run, always does) is two `= any` conditions:
 * the planner then estimates the day's rows, where a join to the pairs is guessed at a few
 * and its aggregates sort what they could hash. Any other set is a semi-join on the pairs.
 */
const inWork = (tx: Tx, work: WorkSet, alias: 'f' | 'b' | 't') => {
  const dates = workDates(work);
  const accounts = workAccounts(work);
  const column = (name: string) => columnOf(tx, alias, name);
  return dates.length * accounts.length === work.dates.length
    ? tx`${column('trade_date')} = any(${dates}::text[]::date[]) and ${column('account_id')} = any(${accounts}::bigint[])`
    : tx`(${column('trade_date')}, ${column('account_id')}) in (
        select * from unnest(${work.dates}::text[]::date[], ${work.accounts}::bigint[]) as w(trade_date, account_id))`;
};

const toWorkSet = (rows: readonly { trade_date: string; account_id: string }[]): WorkSet => ({
  dates: rows.map((r) => r.trade_date),
  accounts: rows.map((r) => r.account_id),
});

/** Takes every pending request (the ETL's) into the work set; a failed run rolls the delete back. */
export async function takePendingRequests(tx: Tx): Promise<WorkSet> {
  return toWorkSet(await tx<{ trade_date: string; account_id: string }[]>`
    with taken as (delete from ops.rollup_requests returning trade_date, account_id)
    select distinct trade_date::text, account_id::text from taken order by 1, 2`);
}

/**
 * Every (date, account) in from..to that has facts or rollup rows (the latter so removed
 * facts disappear), and the pending requests inside the range, which it takes: one may name a
 * day without either (an account's new version restates its curve from the day before it).
 */
export async function addRangeWork(tx: Tx, from: string, to: string): Promise<WorkSet> {
  return toWorkSet(await tx<{ trade_date: string; account_id: string }[]>`
    with covered as (delete from ops.rollup_requests where trade_date between ${from} and ${to} returning trade_date, account_id)
    select trade_date::text, account_id::text from (
      select trade_date, account_id from warehouse.fact_trades where trade_date between ${from} and ${to}
      union
      select trade_date, account_id from warehouse.fact_performance_daily where trade_date between ${from} and ${to}
      union
      select trade_date, account_id from covered
    ) w order by 1, 2`);
}

export interface RollupState {
  /**
   * Facts exist but no equity curve does: the first run after the rollups were installed on
   * a loaded warehouse, which must build everything whatever it was asked.
   */
  neverRolledUp: boolean;
  /** Last date of any equity curve before this run. */
  curveEnd: string | null;
  /** Last trading date with facts (a full rebuild's as-of date when no curve exists); read only for those. */
  factsEnd: string | null;
}

/**
 * Read after the lock is held, so that a run that committed while this one waited is seen.
 * The facts' last date is read only when it matters (a full rebuild, or no curve yet): it
 * plans a scan of every monthly partition of fact_trades, which an incremental run never needs.
 */
export async function loadRollupState(tx: Tx, full: boolean): Promise<RollupState> {
  const [curve] = await tx<{ curve_end: string | null }[]>`select max(date)::text as curve_end from warehouse.equity_curve`;
  const curveEnd = curve?.curve_end ?? null;
  if (!full && curveEnd !== null) return { neverRolledUp: false, curveEnd, factsEnd: null };
  const [facts] = await tx<{ facts_end: string | null }[]>`select max(trade_date)::text as facts_end from warehouse.fact_trades`;
  const factsEnd = facts?.facts_end ?? null;
  return { neverRolledUp: curveEnd === null && factsEnd !== null, curveEnd, factsEnd };
}

/** A full rebuild covers every request there is. */
export async function dropAllRequests(tx: Tx): Promise<void> {
  await tx`delete from ops.rollup_requests`;
}

// ---------------------------------------------------------------------------------------
// Daily grain: fact_performance_daily, fact_performance_buckets, fact_instrument_daily

/**
 * What a run rebuilds at daily grain: everything, or the work partitions, which lie between two
 * dates. `wholeDays`: they are every partition of those days (a range restatement), so the
 * days' rows are rebuilt without matching partitions, and a long range in parallel.
 */
export type DailyWork = { full: true } | { full: false; work: WorkSet; from: string; to: string; wholeDays: boolean };

/** Days from which a range restatement's daily grain is staged like a full rebuild's (CREATE TABLE AS scans in parallel). */
const STAGED_DAYS = 20;

/**
 * Rows of a daily table (`alias`) that `daily` rebuilds. Whole days are bounded by date and
 * by their accounts, which lead the tables' indexes.
 */
const inDailyWork = (tx: Tx, daily: Extract<DailyWork, { full: false }>, alias: 'f' | 'b') =>
  daily.wholeDays
    ? tx`${columnOf(tx, alias, 'trade_date')} between ${daily.from} and ${daily.to}
         and ${columnOf(tx, alias, 'account_id')} = any(${workAccounts(daily.work)}::bigint[])`
    : inWork(tx, daily.work, alias);

export async function clearDailyRows(tx: Tx, daily: DailyWork): Promise<void> {
  if (daily.full) {
    await tx`delete from warehouse.fact_performance_daily`;
    await tx`delete from warehouse.fact_performance_buckets`;
    await tx`delete from warehouse.fact_instrument_daily`;
    return;
  }
  // One statement: the three deletes touch different tables, and each round trip counts in a one-day run.
  await tx`
    with daily as (
      delete from warehouse.fact_performance_daily f where ${inDailyWork(tx, daily, 'f')}
    ), buckets as (
      delete from warehouse.fact_performance_buckets b where ${inDailyWork(tx, daily, 'b')}
    )
    delete from warehouse.fact_instrument_daily i
    where i.trade_date between ${daily.from} and ${daily.to} and i.trade_date = any(${workDates(daily.work)}::text[]::date[])`;
}

export interface DailyRows {
  performanceDaily: number;
  buckets: number;
  instrumentDaily: number;
}

// The aggregates of the three daily-grain tables over facts `t`, shared by the full rebuild
// (staged, so the scan runs in parallel) and the incremental one (one statement, one scan).

/** DESIGN.md "Winner": winners > 0, losers < 0; opening fills count in total_trades only. */
const dailySums = (tx: Tx) => tx`
  select t.date_key, t.account_key, t.strategy_key, t.trade_date, t.account_id,
    count(*)::int as total_trades,
    count(*) filter (where t.realized_pnl > 0)::int as winning_trades,
    count(*) filter (where t.realized_pnl < 0)::int as losing_trades,
    sum(t.quantity) as total_volume, sum(t.notional_value) as total_notional,
    coalesce(sum(t.realized_pnl) filter (where t.realized_pnl > 0), 0) as gross_profit,
    coalesce(-sum(t.realized_pnl) filter (where t.realized_pnl < 0), 0) as gross_loss,
    sum(t.realized_pnl) as realized_pnl, sum(t.commission) as commissions, sum(t.fees) as fees,
    max(t.realized_pnl) filter (where t.realized_pnl > 0) as largest_win,
    min(t.realized_pnl) filter (where t.realized_pnl < 0) as largest_loss`;
const dailyGroup = (tx: Tx) => tx`group by t.date_key, t.account_key, t.strategy_key, t.trade_date, t.account_id`;

/** fact_performance_daily from `sums` (rows of dailySums). */
const insertDailyFrom = (tx: Tx, sums: PendingQuery<Row[]>) => tx`
  insert into warehouse.fact_performance_daily (date_key, account_key, strategy_key, trade_date, account_id,
    total_trades, winning_trades, losing_trades, total_volume, total_notional, gross_profit, gross_loss, realized_pnl,
    commissions, fees, net_pnl, win_rate, profit_factor, avg_win, avg_loss, largest_win, largest_loss)
  select date_key, account_key, strategy_key, trade_date, account_id,
    total_trades, winning_trades, losing_trades, total_volume, total_notional, gross_profit, gross_loss, realized_pnl,
    commissions, fees, realized_pnl - commissions - fees,
    winning_trades::numeric / nullif(winning_trades + losing_trades, 0),
    gross_profit / nullif(gross_loss, 0),
    gross_profit / nullif(winning_trades, 0), -gross_loss / nullif(losing_trades, 0), largest_win, largest_loss
  from ${sums}
  on conflict (date_key, account_key, strategy_key) do update set
    trade_date = excluded.trade_date, account_id = excluded.account_id, total_trades = excluded.total_trades,
    winning_trades = excluded.winning_trades, losing_trades = excluded.losing_trades, total_volume = excluded.total_volume,
    total_notional = excluded.total_notional, gross_profit = excluded.gross_profit, gross_loss = excluded.gross_loss,
    realized_pnl = excluded.realized_pnl, commissions = excluded.commissions, fees = excluded.fees, net_pnl = excluded.net_pnl,
    win_rate = excluded.win_rate, profit_factor = excluded.profit_factor, avg_win = excluded.avg_win, avg_loss = excluded.avg_loss,
    largest_win = excluded.largest_win, largest_loss = excluded.largest_loss`;

/**
 * Trades and PnL of the facts `t` by date, account, hour and session of the day in EXCHANGE_TZ,
 * from the time_key the ETL resolved: the session of a full session day, from dim_time, which
 * holds the session rule (every session boundary falls on a half hour, so a half hour's first
 * second gives its session, and those 48 sessions are looked up by half-hour index; dim_time
 * has 86,400 rows, and joining each fill to it cost more than the aggregate). bucketRows
 * corrects the days that were not full sessions.
 */
const hourSums = (tx: Tx) => tx`
  select t.trade_date, t.account_id, t.time_key / 10000 as hour_of_day,
    (select array_agg(s.market_session order by s.time_key) from warehouse.dim_time s
     where s.time_key in (select g / 2 * 10000 + g % 2 * 3000 from generate_series(0, 47) g))
      [t.time_key / 10000 * 2 + t.time_key / 100 % 100 / 30 + 1] as market_session,
    count(*)::int as total_trades, count(*) filter (where t.realized_pnl > 0)::int as winning_trades,
    count(*) filter (where t.realized_pnl < 0)::int as losing_trades, sum(t.notional_value) as total_notional,
    coalesce(sum(t.realized_pnl) filter (where t.realized_pnl > 0), 0) as gross_profit,
    coalesce(-sum(t.realized_pnl) filter (where t.realized_pnl < 0), 0) as gross_loss,
    sum(t.realized_pnl) as realized_pnl, sum(t.realized_pnl - t.commission - t.fees) as net_pnl`;
const hourGroup = (tx: Tx) => tx`group by 1, 2, 3, 4`;

/**
 * fact_performance_buckets rows from `hours` (rows of hourSums), with the sessions of days that
 * were not full sessions (dim_date) corrected: on a half day the regular session ends at the
 * early close and after-hours four hours later (NYSE's 13:00 and 17:00; hours are whole there,
 * as NYSE's early closes are); on a day without a session (weekend, holiday, closure) every
 * fill is `overnight`, outside any session. Only those days' rows are regrouped (09:00–09:59 of
 * a holiday was two sessions, now one): labelling every fill by its date cost a full rebuild a
 * fifth more.
 */
const bucketRows = (tx: Tx, hours: PendingQuery<Row[]>) => {
  const notFullSession = tx`(not d.is_trading_day or d.early_close is not null)`;
  return tx`
    select h.trade_date, h.account_id, h.hour_of_day, h.market_session, h.total_trades, h.winning_trades, h.losing_trades,
      h.total_notional, h.gross_profit, h.gross_loss, h.realized_pnl, h.net_pnl
    from ${hours} h
    where not exists (select 1 from warehouse.dim_date d where d.date = h.trade_date and ${notFullSession})
    union all
    select h.trade_date, h.account_id, h.hour_of_day,
      case
        when not d.is_trading_day then 'overnight'
        when h.hour_of_day * 3600 < extract(epoch from d.early_close) then h.market_session
        when h.hour_of_day * 3600 < extract(epoch from d.early_close) + 4 * 3600 then 'after-hours'
        else 'overnight'
      end,
      sum(h.total_trades)::int, sum(h.winning_trades)::int, sum(h.losing_trades)::int, sum(h.total_notional),
      sum(h.gross_profit), sum(h.gross_loss), sum(h.realized_pnl), sum(h.net_pnl)
    from ${hours} h join warehouse.dim_date d on d.date = h.trade_date and ${notFullSession}
    group by 1, 2, 3, 4`;
};
const bucketColumns = (tx: Tx) => tx`trade_date, account_id, hour_of_day, market_session, total_trades, winning_trades,
  losing_trades, total_notional, gross_profit, gross_loss, realized_pnl, net_pnl`;

/** Over every account: an instrument's day is rebuilt whole whenever any account's partition of that day is. */
const instrumentSums = (tx: Tx) => tx`
  select t.trade_date, t.instrument_key, count(*)::int as trade_count, sum(t.quantity) as total_volume,
    sum(t.notional_value) as total_notional, sum(t.price) as sum_price, sum(t.price * t.price) as sum_price_sq,
    min(t.price) as min_price, max(t.price) as max_price`;
const instrumentGroup = (tx: Tx) => tx`group by t.trade_date, t.instrument_key`;

/**
 * A full rebuild's daily grain, or every day from..to (`days`). Each aggregate lands in a temp
 * table first: CREATE TABLE AS may scan the facts with parallel workers, INSERT … SELECT never
 * does, and the scans are most of a full rebuild's cost.
 */
export async function insertAllDaily(tx: Tx, days?: { from: string; to: string }): Promise<DailyRows> {
  const facts = days ? tx`warehouse.fact_trades t where t.trade_date between ${days.from} and ${days.to}` : tx`warehouse.fact_trades t`;
  await tx`create temp table rollup_daily on commit drop as ${dailySums(tx)} from ${facts} ${dailyGroup(tx)}`;
  // In date order: the hash aggregate returns the days interleaved, which left every date's rows
  // on most of the table's pages, and the views and the months read a range of dates.
  const daily = await tx`${insertDailyFrom(tx, tx`(select * from rollup_daily order by trade_date, account_id, strategy_key) d`)}`;
  await tx`create temp table rollup_buckets on commit drop as ${hourSums(tx)} from ${facts} ${hourGroup(tx)}`;
  const buckets = await tx`insert into warehouse.fact_performance_buckets (${bucketColumns(tx)}) ${bucketRows(tx, tx`rollup_buckets`)}`;
  await tx`create temp table rollup_instruments on commit drop as ${instrumentSums(tx)} from ${facts} ${instrumentGroup(tx)}`;
  const instruments = await tx`insert into warehouse.fact_instrument_daily select * from rollup_instruments`;
  return { performanceDaily: daily.count, buckets: buckets.count, instrumentDaily: instruments.count };
}

/**
 * The work partitions' daily grain in one statement, without temp tables: a few thousand
 * facts, where parallel workers and catalog writes would cost more than they save. Each
 * aggregate scans the facts itself (materialising them once for all three costs more than
 * three index scans); the date bounds let the planner skip the other months' partitions. A
 * range restatement of STAGED_DAYS days or more is staged as a full rebuild's is.
 */
export async function insertWorkDaily(tx: Tx, daily: Extract<DailyWork, { full: false }>): Promise<DailyRows> {
  if (daily.wholeDays && workDates(daily.work).length >= STAGED_DAYS) return insertAllDaily(tx, daily);
  const workFacts = tx`
    warehouse.fact_trades t where t.trade_date between ${daily.from} and ${daily.to} ${daily.wholeDays ? tx`` : tx`and ${inWork(tx, daily.work, 't')}`}`;
  const [counts] = await tx<{ daily: number; buckets: number; instruments: number }[]>`
    with daily_sums as (${dailySums(tx)} from ${workFacts} ${dailyGroup(tx)}),
    daily as (${insertDailyFrom(tx, tx`daily_sums`)} returning 1),
    hours as (${hourSums(tx)} from ${workFacts} ${hourGroup(tx)}),
    buckets as (
      insert into warehouse.fact_performance_buckets (${bucketColumns(tx)})
      ${bucketRows(tx, tx`hours`)}
      returning 1
    ),
    instruments as (
      insert into warehouse.fact_instrument_daily
      ${instrumentSums(tx)} from warehouse.fact_trades t
      where t.trade_date between ${daily.from} and ${daily.to} and t.trade_date = any(${workDates(daily.work)}::text[]::date[])
      ${instrumentGroup(tx)}
      returning 1
    )
    select (select count(*) from daily)::int as daily, (select count(*) from buckets)::int as buckets,
           (select count(*) from instruments)::int as instruments`;
  return { performanceDaily: counts?.daily ?? 0, buckets: counts?.buckets ?? 0, instrumentDaily: counts?.instruments ?? 0 };
}

// ---------------------------------------------------------------------------------------
// Per account from a date on: equity_curve, performance_metrics, fact_positions_daily, months

/** One account's plan: from which date its curve changes, and what it starts from. */
interface AccountRow {
  account_id: string;
  from_date: string;
  /** Its first fill's date; null when it has no daily rows (no curve to build). */
  first_date: string | null;
  start_date: string;
  capital: string;
  base_date: string | null;
  base_equity: string;
  base_peak: string;
}

/** What planAccounts planned: the accounts, and the earliest of their from and start dates. */
export interface AccountWork {
  rows: AccountRow[];
  /**
   * Constant lower bounds for the statements over rollup_accounts: with a per-account bound
   * alone the planner guesses a third of each table and scans it. ISO dates; firstFrom may be
   * '-infinity' (a full rebuild), so they are bound as text and cast.
   */
  firstFrom: string;
  firstStart: string;
  /** Accounts whose metrics must be recomputed (they have a curve), by account id. */
  plans: AccountPlan[];
}

export interface AccountPlan {
  account_id: string;
  /** The first curve date rebuilt: the later of the change date and the first fill. */
  start_date: string;
  capital: number;
}

/** rollup_accounts(account_id, from_date, first_date, start_date, capital, base_date, base_equity, base_peak) as a CTE. */
const accountsCte = (tx: Tx, work: AccountWork) => {
  const column = <K extends keyof AccountRow>(key: K) => work.rows.map((r) => r[key]) as never;
  return tx`
    rollup_accounts as (
      select * from unnest(${column('account_id')}::bigint[], ${column('from_date')}::text[]::date[], ${column('first_date')}::text[]::date[],
        ${column('start_date')}::text[]::date[], ${column('capital')}::text[]::numeric[], ${column('base_date')}::text[]::date[],
        ${column('base_equity')}::text[]::numeric[], ${column('base_peak')}::text[]::numeric[])
        as a(account_id, from_date, first_date, start_date, capital, base_date, base_equity, base_peak)
    )`;
};

/**
 * The accounts whose curve changes and the date each changes from: the earliest work date,
 * or the day after its curve ends when the as-of date moved past it (a full rebuild: every
 * account with facts or a curve, from the beginning). With each, its first fill date, its
 * capital, and the equity and peak of the last row kept before its start. An account with no
 * curve row kept before the start although it traded earlier (its curve was never built, or
 * was cleared) is rebuilt from its first fill.
 */
export async function planAccounts(tx: Tx, work: WorkSet | null, asOf: string, defaultCapital: number): Promise<AccountWork> {
  const changed = work === null
    ? tx`
      select account_id, '-infinity'::date as from_date from warehouse.fact_performance_daily
      union
      select account_id, '-infinity'::date from warehouse.equity_curve`
    : tx`
      with ${workCte(tx, work)}
      select account_id, from_date from (
        select account_id, least(w.from_date, c.next_date) as from_date
        from (select account_id, min(trade_date) as from_date from rollup_work group by account_id) w
        full join (select account_id, max(date) + 1 as next_date from warehouse.equity_curve group by account_id) c using (account_id)
      ) a
      where from_date <= ${asOf}::date`;
  // Numbers as text, so that they return unchanged in the statements that use them.
  const rows = await tx<AccountRow[]>`
    select c.account_id::text, r.from_date::text, f.first_date::text, greatest(r.from_date, f.first_date)::text as start_date,
           k.capital::text, b.date::text as base_date, coalesce(b.equity, k.capital)::text as base_equity,
           coalesce(b.peak_equity, k.capital)::text as base_peak
    from (${changed}) c
    cross join lateral (select min(f.trade_date) as first_date from warehouse.fact_performance_daily f where f.account_id = c.account_id) f
    cross join lateral (
      select coalesce((select starting_capital from warehouse.account_capital ac where ac.account_id = c.account_id), ${defaultCapital}::numeric) as capital
    ) k
    left join lateral (
      select e.date, e.equity, e.peak_equity from warehouse.equity_curve e
      where e.account_id = c.account_id and e.date < c.from_date order by e.date desc limit 1
    ) b on true
    cross join lateral (
      select case when b.date is null and f.first_date < c.from_date then f.first_date else c.from_date end as from_date
    ) r
    order by c.account_id`;
  // ISO dates and '-infinity' order as strings ('-' sorts before digits).
  const earliest = (dates: string[]) => dates.reduce((min, d) => (d < min ? d : min), asOf);
  return {
    rows,
    firstFrom: earliest(rows.map((r) => r.from_date)),
    firstStart: earliest(rows.map((r) => r.start_date)),
    plans: rows.filter((r) => r.first_date !== null).map((r) => ({ account_id: r.account_id, start_date: r.start_date, capital: Number(r.capital) })),
  };
}

const monthKeyOf = (date: string) => (date === '-infinity' ? 0 : Number(date.slice(0, 4)) * 100 + Number(date.slice(5, 7)));

export async function clearAccountRows(tx: Tx, work: AccountWork): Promise<void> {
  const from = work.firstFrom;
  // One statement (the four tables are distinct): each round trip counts in a one-day run.
  await tx`
    with ${accountsCte(tx, work)},
    curve as (
      delete from warehouse.equity_curve e using rollup_accounts a
      where e.account_id = a.account_id and e.date >= a.from_date and e.date >= ${from}::text::date
    ), metrics as (
      delete from warehouse.performance_metrics m using rollup_accounts a
      where m.account_id = a.account_id and m.as_of_date >= a.from_date and m.as_of_date >= ${from}::text::date
    ), positions as (
      delete from warehouse.fact_positions_daily p using rollup_accounts a
      where p.account_id = a.account_id and p.trade_date >= a.from_date and p.trade_date >= ${from}::text::date
    )
    delete from warehouse.agg_performance_monthly m using rollup_accounts a
    where m.account_id = a.account_id and m.month_key >= ${monthKeyOf(from)}
      and m.month_key >= case when a.from_date = '-infinity' then 0 else to_char(a.from_date, 'YYYYMM')::int end`;
}

/**
 * DESIGN.md "Equity curve": every NYSE trading day from the first fill's date through the
 * as-of date, plus any other date with fills; days without fills have net_pnl 0. The peak
 * starts at the capital (or the kept row's peak); daily_return is NULL only when the
 * previous equity is not positive (a wiped-out account has no return).
 */
export async function insertEquityCurve(tx: Tx, work: AccountWork, asOf: string, tz: string): Promise<number> {
  const result = await tx`
    insert into warehouse.equity_curve (account_id, date, account_key, date_key, is_trading_day, total_trades, winning_trades,
      losing_trades, gross_profit, gross_loss, realized_pnl, commissions, fees, net_pnl, equity, peak_equity, drawdown,
      drawdown_pct, daily_return)
    with ${accountsCte(tx, work)},
    pnl as (
      select f.account_id, f.trade_date, sum(f.total_trades)::int as total_trades, sum(f.winning_trades)::int as winning_trades,
             sum(f.losing_trades)::int as losing_trades, sum(f.gross_profit) as gross_profit, sum(f.gross_loss) as gross_loss,
             sum(f.realized_pnl) as realized_pnl, sum(f.commissions) as commissions, sum(f.fees) as fees, sum(f.net_pnl) as net_pnl
      from warehouse.fact_performance_daily f join rollup_accounts a on a.account_id = f.account_id and f.trade_date >= a.start_date
      where f.trade_date >= ${work.firstStart}::text::date
      group by f.account_id, f.trade_date
    ),
    days as (
      select a.account_id, d.date from rollup_accounts a
      join warehouse.dim_date d on d.date >= a.start_date and d.date <= ${asOf}::date and d.is_trading_day
      where a.first_date is not null
      union
      select account_id, trade_date from pnl
    ),
    running as (
      select d.account_id, d.date, p.total_trades, p.winning_trades, p.losing_trades, p.gross_profit, p.gross_loss,
             p.realized_pnl, p.commissions, p.fees, coalesce(p.net_pnl, 0) as net_pnl,
             a.base_equity + sum(coalesce(p.net_pnl, 0)) over w as equity, a.base_peak
      from days d
      join rollup_accounts a on a.account_id = d.account_id
      left join pnl p on p.account_id = d.account_id and p.trade_date = d.date
      window w as (partition by d.account_id order by d.date)
    ),
    peaked as (
      select r.*, greatest(r.base_peak, max(r.equity) over (partition by r.account_id order by r.date)) as peak_equity from running r
    )
    select p.account_id, p.date, k.account_key, dd.date_key, dd.is_trading_day,
           coalesce(p.total_trades, 0), coalesce(p.winning_trades, 0), coalesce(p.losing_trades, 0),
           coalesce(p.gross_profit, 0), coalesce(p.gross_loss, 0), coalesce(p.realized_pnl, 0),
           coalesce(p.commissions, 0), coalesce(p.fees, 0), p.net_pnl, p.equity, p.peak_equity,
           p.equity - p.peak_equity, ((p.equity - p.peak_equity) / p.peak_equity)::float8,
           case when p.equity - p.net_pnl > 0 then (p.net_pnl / (p.equity - p.net_pnl))::float8 end
    from peaked p
    join warehouse.dim_date dd on dd.date = p.date
    -- The account's dimension version in force at the end of the date (exchange time).
    cross join lateral (
      select da.account_key from warehouse.dim_account da
      where da.account_id = p.account_id and da.effective_from < ((p.date + 1)::timestamp at time zone ${tz})
      order by da.effective_from desc limit 1
    ) k`;
  return result.count;
}

export interface CurveRowRecord {
  account_id: string;
  date: string;
  account_key: number;
  net_pnl: number;
  equity: number;
  daily_return: number | null;
  realized_pnl: number;
  winning_trades: number;
  losing_trades: number;
  gross_profit: number;
  gross_loss: number;
}

/**
 * The whole curves of some accounts (the 'all' window reads every row), as floats for the
 * metrics. One JSON array per account: JSON.parse reads it several times faster than
 * postgres.js parses as many rows, and numerics become the nearest double either way. The
 * JSON is joined as text: json_agg(json_build_array(…)) costs PostgreSQL twice as much, and
 * every value's text form is already JSON (numeric never prints an exponent or NaN here, the
 * float daily return is finite or NULL).
 */
export async function loadCurves(tx: Tx, accountIds: readonly string[]): Promise<Map<string, () => CurveRowRecord[]>> {
  const rows = await tx<{ account_id: string; curve: string }[]>`
    select account_id::text,
           '[[' || string_agg(concat_ws(',', '"' || date || '"', account_key, net_pnl, equity, coalesce(daily_return::text, 'null'),
             realized_pnl, winning_trades, losing_trades, gross_profit, gross_loss), '],[' order by date) || ']]' as curve
    from warehouse.equity_curve where account_id = any(${accountIds as string[]}::bigint[]) group by account_id`;
  // Parsed when the caller gets to each account, so that it can let I/O in between.
  const curves = new Map<string, () => CurveRowRecord[]>();
  for (const { account_id, curve } of rows) {
    curves.set(account_id, () =>
      (JSON.parse(curve) as Array<[string, number, number, number, number | null, number, number, number, number, number]>).map(
        ([date, account_key, net_pnl, equity, daily_return, realized_pnl, winning_trades, losing_trades, gross_profit, gross_loss]) => ({
          account_id, date, account_key, net_pnl, equity, daily_return, realized_pnl, winning_trades, losing_trades, gross_profit, gross_loss,
        }),
      ),
    );
  }
  return curves;
}

/** A performance_metrics row as src/rollups.ts computes it. */
export interface MetricRecord {
  account_id: string;
  window_name: string;
  as_of_date: string;
  account_key: number;
  window_start: string;
  days: number;
  sharpe: number | null;
  sortino: number | null;
  calmar: number | null;
  annual_return: number | null;
  max_drawdown: number | null;
  profit_factor: number | null;
  recovery_factor: number | null;
  win_rate: number | null;
  expectancy: number | null;
  longest_losing_streak: number;
  var_95: number | null;
  var_99: number | null;
}

/**
 * One statement with one array parameter per column: a round trip whatever the count, and
 * PostgreSQL reads arrays several times faster than the same rows as JSON. (A postgres.js
 * COPY costs ~40 ms of acknowledgement latency even for a handful of rows, which would be most
 * of an incremental rebuild.)
 */
export async function insertMetrics(tx: Tx, rows: readonly MetricRecord[]): Promise<void> {
  if (rows.length === 0) return;
  const column = <K extends keyof MetricRecord>(key: K) => rows.map((r) => r[key]) as never;
  await tx`
    insert into warehouse.performance_metrics (account_id, window_name, as_of_date, account_key, window_start, days, sharpe, sortino,
      calmar, annual_return, max_drawdown, profit_factor, recovery_factor, win_rate, expectancy, longest_losing_streak, var_95, var_99)
    select * from unnest(
      ${column('account_id')}::bigint[], ${column('window_name')}::text[], ${column('as_of_date')}::date[], ${column('account_key')}::int[],
      ${column('window_start')}::date[], ${column('days')}::int[], ${column('sharpe')}::float8[], ${column('sortino')}::float8[],
      ${column('calmar')}::float8[], ${column('annual_return')}::float8[], ${column('max_drawdown')}::float8[],
      ${column('profit_factor')}::float8[], ${column('recovery_factor')}::float8[], ${column('win_rate')}::float8[],
      ${column('expectancy')}::float8[], ${column('longest_losing_streak')}::int[], ${column('var_95')}::float8[], ${column('var_99')}::float8[])`;
}

/**
 * Symbols whose 1d bars are calendar days in UTC, not sessions in EXCHANGE_TZ: crypto (a 24x7
 * series' 1d bar opens at 00:00 UTC of its date; src/analytics/timeframes.ts), known as such by
 * the instrument's type or by the asset class its bars were fetched with.
 */
const roundTheClockSymbols = (tx: Tx) => tx`
  select symbol from warehouse.dim_instrument where lower(instrument_type) like 'crypto%'
  union
  select symbol from enrichment.status where asset_class = 'crypto'`;

/**
 * The zone a 1d bar's date is read in (`rc`: the symbol's row of roundTheClockSymbols, if any):
 * EXCHANGE_TZ, or for a coin UTC. Read in New York, a coin's bar of date D opens at 19:00 or
 * 20:00 on D − 1 and closes then on D: the last close known on D.
 */
const barZone = (tx: Tx, tz: string) => tx`case when rc.symbol is null then ${tz} else 'UTC' end`;
/** The date a 1d bar `b` prices (see barZone). */
const barDate = (tx: Tx, tz: string) => tx`(b.ts at time zone ${barZone(tx, tz)})::date`;

/**
 * End-of-day state of each account × instrument from the FIFO results on the facts: the last
 * fill of each (pair, date) from the start date on, and the positions kept on the last curve
 * row before it, each held until the pair's next fill date, on every date of the account's equity curve. max() over
 * an array [instant, execution id, …] picks a group's last fill in DESIGN order in one
 * hash aggregate, without sorting the facts. Marked at that date's 1d close where a bar exists.
 */
export async function insertPositions(tx: Tx, full: boolean, work: AccountWork, tz: string): Promise<number> {
  const firstStart = work.firstStart;
  const lastFills = tx`
    select t.account_id, t.instrument_id, t.trade_date,
           max(array[extract(epoch from t.executed_at), t.execution_id, t.position_after, t.open_cost, t.account_key, t.instrument_key]) as last
    from ${full ? tx`warehouse.fact_trades t` : tx`warehouse.fact_trades t join rollup_accounts a on a.account_id = t.account_id and t.trade_date >= a.start_date
              where t.trade_date >= ${firstStart}`}
    group by t.account_id, t.instrument_id, t.trade_date`;
  // Over every fact this aggregate is most of the statement's cost: staged, it runs in parallel
  // (CREATE TABLE AS may use parallel workers, INSERT … SELECT never does).
  if (full) await tx`create temp table rollup_last_fills on commit drop as ${lastFills}`;
  const result = await tx`
    insert into warehouse.fact_positions_daily (account_id, instrument_id, trade_date, date_key, account_key, instrument_key,
      quantity, side, cost_basis, avg_entry_price, close_price, market_value, unrealized_pnl)
    with ${accountsCte(tx, work)},
    eod as (
      ${full ? tx`select * from rollup_last_fills` : lastFills}
      union all
      -- The state before the start: the positions kept on the last curve row before it (no row: flat).
      select a.account_id, p.instrument_id, a.start_date - 1,
             array[0, 0, p.quantity, p.cost_basis, p.account_key, p.instrument_key]
      from rollup_accounts a
      join warehouse.fact_positions_daily p on p.account_id = a.account_id and p.trade_date = a.base_date
      where a.start_date > a.first_date
    ),
    -- One 1d close per symbol and date (see barDate), joined by hash: a lookup per position row
    -- would cost more than reading the bars once. A day earlier: a coin's day starts before New York's.
    closes as (
      select distinct on (symbol, date) symbol, date, close
      from (
        select b.symbol, ${barDate(tx, tz)} as date, b.close::numeric as close, b.ts from market.bars b
        left join (${roundTheClockSymbols(tx)}) rc on rc.symbol = b.symbol
        where b.timeframe = '1d' and b.ts >= (${firstStart}::date::timestamp at time zone ${tz}) - interval '1 day'
      ) b
      order by symbol, date, ts desc
    ),
    spans as (
      select e.account_id, e.instrument_id, greatest(e.trade_date, a.start_date) as from_date, e.last[3] as quantity,
             e.last[4] as cost_basis, e.last[5]::int as account_key, e.last[6]::int as instrument_key,
             coalesce(lead(e.trade_date) over (partition by e.account_id, e.instrument_id order by e.trade_date), 'infinity') as next_date
      from eod e join rollup_accounts a on a.account_id = e.account_id
    )
    select s.account_id, s.instrument_id, e.date, e.date_key, s.account_key, di.instrument_key, s.quantity,
           case when s.quantity > 0 then 'LONG' else 'SHORT' end, s.cost_basis, s.cost_basis / abs(s.quantity),
           bar.close, s.quantity * bar.close, s.quantity * bar.close - sign(s.quantity) * s.cost_basis
    from spans s
    join warehouse.equity_curve e on e.account_id = s.account_id and e.date >= s.from_date and e.date < s.next_date
    join warehouse.dim_instrument fill_di on fill_di.instrument_key = s.instrument_key
    -- The instrument as it is at the end of the date: the version of the last fill, unless a new
    -- one has started since (a ticker rename while the position is held: marked at the new
    -- symbol's bars from then on). Looked up only then, so the plan stays the one without it.
    cross join lateral (select ((e.date + 1)::timestamp at time zone ${tz}) as day_end) d
    join warehouse.dim_instrument di on di.instrument_key = case when fill_di.effective_to >= d.day_end then fill_di.instrument_key else (
      select v.instrument_key from warehouse.dim_instrument v
      where v.instrument_id = s.instrument_id and v.effective_from < d.day_end order by v.effective_from desc limit 1) end
    left join closes bar on bar.symbol = di.symbol and bar.date = e.date
    where s.quantity <> 0`;
  return result.count;
}

/**
 * How far back (calendar days before the as-of date, itself included) a run marks positions: a
 * day's bar comes the next morning, or a few days later after a weekend or a failed fetch
 * retried. Older positions without a close are marked when a backfill stores their bars (see
 * markPositionsOf), or by a range restatement or a full rebuild.
 */
export const MARK_POSITIONS_DAYS = 7;

/** Which unmarked positions markPositions looks at: dates from..to (ISO, inclusive), of one symbol or all. */
export interface MarkScope {
  from: string;
  to?: string;
  symbol?: string;
}

/** Positions marked: how many, and the first of their dates (null: none). */
export interface MarkedPositions {
  rows: number;
  from: string | null;
}

/**
 * Marks positions whose close is still NULL at their date's 1d close, where that bar now
 * exists. A day's bar is stored after the day was rolled up (enrichment-daily fetches day D
 * on D+1) and later incremental runs rebuild positions only from their own dates on, so
 * without this an earlier date would stay unmarked until a full rebuild. The bars are matched
 * as insertPositions matches them: the last 1d bar of the position's date (barDate; a range on
 * the bars' key). The partial index fact_positions_daily_unmarked_idx
 * keeps it to the unmarked rows of the dates asked for. Answers how many rows it marked and the
 * first of their dates: the stored reports showing those positions are out of date from there.
 */
export async function markPositions(tx: Tx, tz: string, scope: MarkScope): Promise<MarkedPositions> {
  const [marked] = await tx<{ rows: number; first_date: string | null }[]>`
    with unmarked as (
      select p.account_id, p.trade_date, p.instrument_id, di.symbol
      from warehouse.fact_positions_daily p join warehouse.dim_instrument di on di.instrument_key = p.instrument_key
      where p.close_price is null and p.trade_date >= ${scope.from}::date
        ${scope.to === undefined ? tx`` : tx`and p.trade_date <= ${scope.to}::date`}
        ${scope.symbol === undefined ? tx`` : tx`and di.symbol = ${scope.symbol}`}
    ),
    -- One probe of the bars' key per symbol and date, first (materialized): the unmarked rows are
    -- few, the bars of every timeframe many, and positions are only looked up for closes found.
    closes as materialized (
      select u.symbol, u.trade_date, b.close
      from (
        select distinct u.symbol, u.trade_date, ${barZone(tx, tz)} as zone
        from unmarked u left join (${roundTheClockSymbols(tx)}) rc on rc.symbol = u.symbol
      ) u
      cross join lateral (
        select b.close from market.bars b
        where b.symbol = u.symbol and b.timeframe = '1d'
          and b.ts >= (u.trade_date::timestamp at time zone u.zone) and b.ts < ((u.trade_date + 1)::timestamp at time zone u.zone)
        order by b.ts desc limit 1
      ) b
    ),
    marked as (
      update warehouse.fact_positions_daily p
      set close_price = c.close, market_value = p.quantity * c.close,
          unrealized_pnl = p.quantity * c.close - sign(p.quantity) * p.cost_basis
      from unmarked u join closes c on c.symbol = u.symbol and c.trade_date = u.trade_date
      where p.account_id = u.account_id and p.trade_date = u.trade_date and p.instrument_id = u.instrument_id
        and p.close_price is null
      returning p.trade_date
    )
    select count(*)::int as rows, min(trade_date)::text as first_date from marked`;
  return { rows: marked?.rows ?? 0, from: marked?.first_date ?? null };
}

/**
 * Month × account × strategy from the daily rows, for every month from each account's
 * start on; the month's Sharpe from the strategy's daily contribution returns (net PnL over
 * the account's equity at the start of the day, 0 on curve days it did not trade).
 */
export async function insertMonthly(tx: Tx, work: AccountWork): Promise<number> {
  const firstMonth = work.firstStart === '-infinity' ? work.firstStart : `${work.firstStart.slice(0, 7)}-01`;
  // The daily rows are bounded by date_key, their primary key's first column (yyyymmdd): no
  // index leads with trade_date, and a scan of every day costs more than the months themselves.
  const firstDateKey = monthKeyOf(work.firstStart) * 100;
  const result = await tx`
    insert into warehouse.agg_performance_monthly (month_key, account_key, strategy_key, account_id, year, month, trading_days,
      total_trades, winning_trades, losing_trades, total_volume, total_notional, gross_profit, gross_loss, realized_pnl,
      commissions, fees, net_pnl, win_rate, profit_factor, best_day_pnl, worst_day_pnl, sharpe_ratio, max_drawdown)
    with ${accountsCte(tx, work)},
    f as (
      select f.*, f.date_key / 100 as month_key
      from warehouse.fact_performance_daily f
      join rollup_accounts a on a.account_id = f.account_id and f.trade_date >= date_trunc('month', a.start_date)::date
      where f.date_key >= ${firstDateKey}
    ),
    totals as (
      select month_key, account_key, strategy_key, account_id, count(*)::int as trading_days,
             sum(total_trades)::int as total_trades, sum(winning_trades)::int as winning_trades, sum(losing_trades)::int as losing_trades,
             sum(total_volume) as total_volume, sum(total_notional) as total_notional, sum(gross_profit) as gross_profit,
             sum(gross_loss) as gross_loss, sum(realized_pnl) as realized_pnl, sum(commissions) as commissions, sum(fees) as fees,
             sum(net_pnl) as net_pnl, max(net_pnl) as best_day_pnl, min(net_pnl) as worst_day_pnl
      from f group by month_key, account_key, strategy_key, account_id
    ),
    curve_days as (
      select e.account_id, e.date, e.date_key, e.date_key / 100 as month_key, e.equity - e.net_pnl as opening_equity
      from warehouse.equity_curve e
      join rollup_accounts a on a.account_id = e.account_id and e.date >= date_trunc('month', a.start_date)::date
      where e.date >= ${firstMonth}::text::date
    ),
    daily as (
      select t.month_key, t.account_key, t.strategy_key, d.date, coalesce(day.net_pnl, 0) as net_pnl,
             case when d.opening_equity > 0 then (coalesce(day.net_pnl, 0) / d.opening_equity)::float8 end as r
      from totals t
      join curve_days d on d.account_id = t.account_id and d.month_key = t.month_key
      -- By the table's key, not through f: this side's rows are easily underestimated (a handful
      -- for a month of days), and a nested loop over f, which has no index, then rescans all
      -- of it for each curve day (a one-day run went from 10 ms to 140 after a long restatement).
      left join warehouse.fact_performance_daily day
        on day.date_key = d.date_key and day.account_key = t.account_key and day.strategy_key = t.strategy_key
    ),
    cumulative as (
      select *, sum(net_pnl) over w as cum from daily
      window w as (partition by month_key, account_key, strategy_key order by date)
    ),
    stats as (
      select month_key, account_key, strategy_key,
             avg(r) / nullif(stddev_samp(r), 0) * sqrt(252) as sharpe_ratio,
             min(cum - greatest(peak, 0)) as max_drawdown
      from (select *, max(cum) over (partition by month_key, account_key, strategy_key order by date) as peak from cumulative) c
      group by month_key, account_key, strategy_key
    )
    select t.month_key, t.account_key, t.strategy_key, t.account_id, t.month_key / 100, t.month_key % 100, t.trading_days,
           t.total_trades, t.winning_trades, t.losing_trades, t.total_volume, t.total_notional, t.gross_profit, t.gross_loss,
           t.realized_pnl, t.commissions, t.fees, t.net_pnl,
           t.winning_trades::numeric / nullif(t.winning_trades + t.losing_trades, 0), t.gross_profit / nullif(t.gross_loss, 0),
           t.best_day_pnl, t.worst_day_pnl, s.sharpe_ratio, least(coalesce(s.max_drawdown, 0), 0)
    from totals t join stats s using (month_key, account_key, strategy_key)`;
  return result.count;
}

/**
 * Fresh statistics for tables a full rebuild has just rewritten, before the statements that read
 * them: on a new warehouse they say "empty", and the months statement, planned for a handful of
 * rows, then nested-loops over every day (minutes instead of a second). Within the transaction,
 * so its own statements see them; committed with it.
 */
export async function analyzeRebuilt(tx: Tx, tables: Readonly<Record<string, readonly string[]>>): Promise<void> {
  // Only the key columns the joins and filters use: statistics of every numeric column cost six times as much.
  await tx.unsafe(`analyze ${Object.entries(tables).map(([table, columns]) => `${table} (${columns.join(', ')})`).join(', ')}`);
}

/**
 * Inside the run's transaction, so the views commit with the tables they summarise.
 * CONCURRENTLY takes an exclusive lock that readers do not wait for; the views read the daily
 * tables and the curve's last date, so they can refresh while the metrics are computed.
 */
export async function refreshMaterializedViews(tx: Tx): Promise<void> {
  await Promise.all([
    tx`refresh materialized view concurrently warehouse.mv_top_performing_strategies`,
    tx`refresh materialized view concurrently warehouse.mv_instrument_statistics`,
  ]);
}
